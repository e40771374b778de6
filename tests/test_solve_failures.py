"""Adaptive solves that cannot finish stop where the trouble is, within a bounded number of attempts, in
float32 as in float64: f turning NaN mid-solve (not only at t0), a blow-up at a finite time, and the same
through odeint_event. ``max_steps`` is set low so that a regression fails with the step-count error instead of
stalling the suite."""
from __future__ import annotations

import re

import pytest
import torch

import solvers


def nan_after_half(t, y):
    return torch.where(t < 0.5, -y, torch.full_like(y, float("nan")))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("method", ["dopri5", "bosh3", "adaptive_heun"])
def test_nan_appearing_mid_solve_is_named_at_its_time(dtype, method):
    with pytest.raises(FloatingPointError, match=r"NaN/Inf just after t=0\.(5|4999)") as caught:
        solvers.odeint(nan_after_half, torch.ones(2, dtype=dtype), torch.linspace(0, 1, 3, dtype=dtype),
                       method=method, max_steps=20_000)
    steps = int(re.search(r"\(step (\d+),", str(caught.value)).group(1))
    assert steps < 2_000


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_blow_up_stops_with_an_underflow_in_the_states_own_precision(dtype):
    """y' = y / (0.5 - t) blows up at t = 0.5: the step size underflows relative to t in the state's dtype
    (float32 used to creep to t = 0.4999959 through a million steps)."""
    with pytest.raises(RuntimeError, match=r"step size underflow .* at t=0\.(5|49)"):
        solvers.odeint(lambda t, y: y / (0.5 - t), torch.ones(2, dtype=dtype), torch.linspace(0, 1, 3, dtype=dtype),
                       method="dopri5", max_steps=20_000)


def test_nan_mid_solve_through_odeint_event():
    with pytest.raises(FloatingPointError, match=r"t=0\.5 .*NaN/Inf|NaN/Inf .*t=0\.5"):
        solvers.odeint_event(nan_after_half, torch.ones(2, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64),
                             event_fn=lambda t, y: y[0] - 1e-9, method="dopri5", max_steps=20_000)
