"""Method classes, one module per kind (see ``base``): each owns its stepper, options, order, properties and
one-step amplification."""
from solvers.methods.adaptive_dirk import AdaptiveDIRK
from solvers.methods.base import Method, Stepper
from solvers.methods.embedded_rk import EmbeddedRK
from solvers.methods.explicit_rk import ExplicitRK
from solvers.methods.imex_rk import ARS222, IMEX_EULER, ImexPair, ImexRK
from solvers.methods.implicit_rk import ImplicitRK
from solvers.methods.partitioned_euler import PartitionedEuler, one_step_matrix_eigenvalues
from solvers.methods.reversible_heun import ReversibleHeun, ReversibleStepper

__all__ = ["Method", "Stepper", "ExplicitRK", "EmbeddedRK", "ImplicitRK", "AdaptiveDIRK", "ImexRK", "ImexPair", "IMEX_EULER", "ARS222",
           "PartitionedEuler", "ReversibleHeun", "ReversibleStepper", "one_step_matrix_eigenvalues"]
