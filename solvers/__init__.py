"""solvers: numerical integration of any ``f(t, y) -> dy/dt`` (torchdiffeq's convention).

Explicit and implicit Runge-Kutta methods from Butcher tableaus (implicit stages solved by functional
iteration or Newton's method, differentiated by the implicit function theorem), embedded adaptive pairs,
explicit and diagonally implicit (for stiff problems), with a step-size controller that steps onto every
output time and detects stiffness, partitioned (Gauss-Seidel) Euler, tuple states,
terminal events (``odeint_event``), torchdiffeq as an optional backend and for the adjoint, and stability
regions of the methods. Knows nothing about neural networks.
"""
from solvers.controller import DEFAULT_MAX_STEPS, StepController
from solvers.errors import StepFailure, StiffnessError
from solvers.events import odeint_event
from solvers.explicit import integrate_fixed, rk_step, step_counts
from solvers.implicit import NewtonCounter, NewtonError, NewtonOptions, functional_iteration, implicit_rk_step
from solvers.methods import (ARS222, IMEX_EULER, AdaptiveDIRK, EmbeddedRK, ExplicitRK, ImexPair, ImexRK, ImplicitRK,
                             PartitionedEuler, ReversibleHeun, Stepper, one_step_matrix_eigenvalues)
from solvers.odeint import odeint
from solvers.partitioned import partitioned_euler_step
from solvers.reversible import reversible_heun_inverse, reversible_heun_step
from solvers.registry import Method, available, get_method, get_tableau
from solvers.stability import imaginary_axis_limit, in_stability_region, plot_stability_region, stability_function
from solvers.stats import SolveStats
from solvers.tableaus import ButcherTableau

__all__ = [
    "ButcherTableau", "Method", "ExplicitRK", "EmbeddedRK", "ImplicitRK", "AdaptiveDIRK", "PartitionedEuler",
    "ReversibleHeun", "ImexRK", "ImexPair", "IMEX_EULER", "ARS222",
    "Stepper", "get_tableau", "get_method", "available", "rk_step", "integrate_fixed", "step_counts",
    "one_step_matrix_eigenvalues",
    "implicit_rk_step", "functional_iteration", "NewtonOptions", "NewtonCounter", "NewtonError",
    "partitioned_euler_step", "reversible_heun_step", "reversible_heun_inverse", "DEFAULT_MAX_STEPS", "odeint", "odeint_event", "SolveStats", "StepController", "StepFailure",
    "StiffnessError",
    "stability_function", "in_stability_region", "imaginary_axis_limit", "plot_stability_region",
]
