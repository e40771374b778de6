"""odernn: continuous-time recurrent networks (AntisymmetricRNN, AFRNN) under any solver of ``solvers``."""
from .baselines import GRUBaseline, LSTMBaseline
from .fields import (AFRNNField, AntisymmetricField, FRNNField, GatedAntisymmetricField, StackedAntisymmetricField,
                     UnstructuredField, VectorField)
from .heads import SequenceClassifier, TrajectoryRegressor
from .inputs import INTERPOLATIONS, InputPath
from .models import LAYERED_MODELS, MODEL_NAMES, build_rnn, count_parameters
from .rnn import ODERNN

__all__ = ["LAYERED_MODELS", "ODERNN", "VectorField", "AntisymmetricField", "GatedAntisymmetricField", "AFRNNField",
           "StackedAntisymmetricField", "FRNNField", "UnstructuredField", "SequenceClassifier",
           "TrajectoryRegressor", "LSTMBaseline", "GRUBaseline", "build_rnn", "MODEL_NAMES", "count_parameters",
           "InputPath", "INTERPOLATIONS"]
