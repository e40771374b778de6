"""An independent reference for the ground truth: the Euler-Lagrange equations of the double pendulum in
numpy, M(q) q'' = r(q, q') solved with a linear solve (not the closed form of eq. 19-20), integrated one
trajectory at a time by scipy's ``solve_ivp(method="DOP853", rtol=1e-12, atol=1e-12)``."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.integrate import solve_ivp

from experiments.double_pendulum.physics import DoublePendulum


def lagrangian_rhs(y: np.ndarray, p: DoublePendulum) -> np.ndarray:
    """d/dt [theta1, omega1, theta2, omega2] for one state, from the Lagrangian L = T - V."""
    th1, w1, th2, w2 = y
    d = th1 - th2
    coupling = p.m2 * p.L1 * p.L2 * np.cos(d)
    mass = np.array([[(p.m1 + p.m2) * p.L1**2, coupling], [coupling, p.m2 * p.L2**2]])
    force = np.array([-p.m2 * p.L1 * p.L2 * w2**2 * np.sin(d) - (p.m1 + p.m2) * p.g * p.L1 * np.sin(th1),
                      p.m2 * p.L1 * p.L2 * w1**2 * np.sin(d) - p.m2 * p.g * p.L2 * np.sin(th2)])
    acc = np.linalg.solve(mass, force)
    return np.array([w1, acc[0], w2, acc[1]])


def solve_scipy(p: DoublePendulum, initial: np.ndarray, times: Sequence[float], tol: float = 1e-12) -> np.ndarray:
    """States ``(k, T, 4)`` at ``times`` from ``initial (k, 4)``, one DOP853 solve per trajectory."""
    times = np.asarray(times, dtype=np.float64)
    return np.stack([solve_ivp(lambda t, y: lagrangian_rhs(y, p), (times[0], times[-1]), y0, method="DOP853",
                               t_eval=times, rtol=tol, atol=tol).y.T for y0 in np.atleast_2d(initial)])


def check_against_scipy(states: np.ndarray, initial: np.ndarray, times: np.ndarray, p: DoublePendulum,
                        k: int) -> float:
    """max |states - DOP853| over ``k`` trajectories spread evenly through the batch."""
    idx = np.unique(np.linspace(0, len(states) - 1, k).round().astype(int))
    return float(np.abs(states[idx] - solve_scipy(p, initial[idx], times)).max())
