"""Integrators: how ``ODERNN`` integrates a field over a sequence, one object per way (``Integrator``).

``resolve(method, field, settings)`` picks, once, the first integrator in ``REGISTRY`` that supports the
method on the field: a fused scan where the field has a ``TanhForm``, an ``OscillatorForm`` or an
``IndependentOscillatorForm``, a ``LEMForm`` or a ``LinearTanhForm`` (and ``fast_path`` is on), the
reversible scan (O(1)-memory backward) for reversible Heun, else the generic stepped scan (every fixed,
implicit and partitioned method on every field) or the adaptive solve.
"""
from __future__ import annotations

import solvers

from ..fields.base import VectorField
from .adaptive import AdaptiveSolve
from .base import Integrator, Settings, Solution
from .grid import Grid
from .fused import (FusedGaussSeidelScan, FusedImplicitScan, FusedIndependentOscillatorScan, FusedLEMScan,
                    FusedLinearTanhEulerScan, FusedOscillatorScan, FusedRKScan)
from .reversible import ReversibleScan
from .stepped import SteppedScan

REGISTRY: tuple[type[Integrator], ...] = (FusedRKScan, FusedImplicitScan, FusedGaussSeidelScan, FusedOscillatorScan,
                                          FusedIndependentOscillatorScan, FusedLEMScan, FusedLinearTanhEulerScan,
                                          ReversibleScan, SteppedScan, AdaptiveSolve)
"""Integrators in order of preference; the fused scans come first."""

FUSED: tuple[type[Integrator], ...] = (FusedRKScan, FusedImplicitScan, FusedGaussSeidelScan, FusedOscillatorScan,
                                       FusedIndependentOscillatorScan, FusedLEMScan, FusedLinearTanhEulerScan)


def resolve(method: solvers.Method, field: VectorField, settings: Settings, fast_path: bool = True) -> Integrator:
    """The integrator for ``method`` on ``field`` with ``settings``; ``fast_path=False`` skips the fused scans
    (their hand-written backward is differentiable once)."""
    for candidate in REGISTRY:
        if (fast_path or candidate not in FUSED) and candidate.supports(method, field, settings):
            return candidate(method)
    raise ValueError(f"no integrator runs method {method.name!r} ({method.kind}) on {type(field).__name__}")


__all__ = ["Integrator", "Settings", "Solution", "Grid", "resolve", "REGISTRY", "FUSED", "FusedRKScan", "FusedImplicitScan", "FusedGaussSeidelScan", "FusedOscillatorScan", "FusedIndependentOscillatorScan", "FusedLEMScan", "FusedLinearTanhEulerScan",
           "SteppedScan", "AdaptiveSolve", "ReversibleScan"]
