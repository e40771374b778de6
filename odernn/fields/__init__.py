"""Vector fields f(t, h, u) of continuous-time recurrent networks (docs/design.md section 5)."""
from .base import IndependentOscillatorForm, LEMForm, LinearTanhForm, OscillatorForm, TanhForm, VectorField, make_blocks
from .cornn import CoRNNField
from .lem import LEMField
from .lipschitz import LipschitzField
from .neural import NeuralODEField
from .unicornn import UnICORNNField
from .layered import AFRNNField, FRNNField, LayeredField, StackedAntisymmetricField
from .params import AntisymmetricMatrix
from .single import AntisymmetricField, GatedAntisymmetricField, SingleLayerField, UnstructuredField

__all__ = ["VectorField", "TanhForm", "OscillatorForm", "IndependentOscillatorForm", "LEMForm", "LinearTanhForm", "AntisymmetricField", "GatedAntisymmetricField", "UnstructuredField", "AFRNNField",
           "StackedAntisymmetricField", "FRNNField", "LayeredField", "SingleLayerField", "AntisymmetricMatrix",
           "make_blocks", "CoRNNField", "LEMField", "LipschitzField", "UnICORNNField", "NeuralODEField"]
