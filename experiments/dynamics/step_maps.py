"""One-step maps s_k = Phi(s_{k-1}, u_k) of the recurrent models, written for ``torch.func``.

The accumulated Jacobian of a run (AFRNN (002) section 4.2, Fig. 4) is the product of per-step Jacobians,
  d s_T / d s_(T-j) = Phi'_T Phi'_(T-1) ... Phi'_(T-j+1),
so one ``vmap(jacrev(Phi))`` over the T visited states gives every factor at once (no T backward passes).
- ODERNN: one step of its solver on dh/dt = f(t, h, u_k) with the input held (``substeps`` substeps of
  step_size / substeps), taken by the method's own ``stepper`` (explicit tableau, implicit tableau with
  Newton's method, or partitioned Euler over the field's blocks). Adaptive methods use their tableau at the
  fixed step (their controller is data-dependent control flow); for the fields and steps of these figures it
  accepts that step anyway.
- Implicit methods: Newton's loop stops on a data-dependent test, which ``vmap`` cannot trace, so their
  per-step Jacobians come from the implicit function theorem instead: one batched step of all T states
  (rows independent, each with its own input) and n backward passes through the solver's implicit-function
  gradient give every (n, n) factor (``StepMap.jacobians``).
- LSTM (``torch.nn.LSTM``, one layer): the cell on the flat state s = (h, c), gates i, f, g, o as in PyTorch.
"""
from __future__ import annotations

import functools

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor, nn

import solvers

Step = Callable[[Tensor, Tensor], Tensor]
Jacobians = Callable[[Tensor, Tensor], Tensor]


@dataclass
class StepMap:
    """``step(s (n,), u (p,)) -> s'``; ``inputs(x (T, m)) -> u (T, p)``; ``top`` is the block Fig. 4 reads.

    ``jacobians(states (T, n), u (T, p)) -> (T, n, n)``, when set, computes d step / d s at every row itself
    (implicit methods, whose Newton loop ``vmap`` cannot run); otherwise ``step_jacobians`` vmaps jacrev(step).
    """

    step: Step
    inputs: Callable[[Tensor], Tensor]
    state_size: int
    top: slice
    jacobians: Optional[Jacobians] = None


def _held(f: Callable, u: Tensor, t: Tensor, h: Tensor) -> Tensor:
    return f(t, h, u)


def odernn_step_map(rnn: nn.Module) -> StepMap:
    """Phi of an ODERNN with a held input (the states it produces equal ``rnn(x)``'s)."""
    if getattr(rnn, "interpolation", "hold") != "hold":
        raise ValueError(f"step maps hold the input on each interval; got interpolation={rnn.interpolation!r}")
    method = solvers.get_method(getattr(rnn.solver, "name", rnn.solver))
    substeps = int(getattr(rnn, "substeps", 1))
    dt = float(rnn.step_size) / substeps
    field = rnn.field
    f = field.prepare()
    stepper = method.stepper(state_size=field.state_size, rows=True, **method.select(
        partition=[b.stop - b.start for b in field.blocks], newton=getattr(rnn, "newton", None)))

    span = torch.tensor([0.0, substeps * dt], dtype=torch.float64)

    def steps(y: Tensor, u: Tensor) -> Tensor:
        """``substeps`` steps of y (B, n) with the inputs u (B, p), row b with u[b]: solvers' one fixed-step
        loop over one input interval."""
        held = functools.partial(_held, f, u)
        held.linear_part = field.linear_part  # for IMEX methods
        ys, _ = solvers.integrate_fixed(held, y, span, stepper, dt, check_finite=False)
        return ys[-1]

    def step(s: Tensor, u: Tensor) -> Tensor:
        return steps(s.unsqueeze(0), u.unsqueeze(0)).squeeze(0)

    jacobians = None
    if method.implicit:
        def jacobians(states: Tensor, u: Tensor) -> Tensor:
            return _implicit_function_jacobians(steps, states, u)

    return StepMap(step, field.input_projection, field.state_size, field.blocks[-1], jacobians)


def _implicit_function_jacobians(steps: Callable[[Tensor, Tensor], Tensor], states: Tensor, u: Tensor) -> Tensor:
    """d steps(s, u) / d s for every row of ``states (T, n)`` at once: ``(T, n, n)``.

    Rows are independent, so one step of the whole batch and one backward pass per output coordinate j (the
    sum over rows of output j) give row j of every Jacobian. The step's backward is the implicit function
    theorem (``solvers.implicit_rk_step``), not differentiation through Newton's iterations.
    """
    n = states.shape[1]
    with torch.enable_grad():
        s = states.detach().requires_grad_(True)
        out = steps(s, u.detach())
        rows = [torch.autograd.grad(out[:, j].sum(), s, retain_graph=j < n - 1)[0] for j in range(n)]
    return torch.stack(rows, dim=1)


def lstm_step_map(model: nn.Module) -> StepMap:
    """Phi of a one-layer LSTM on s = (h, c): c' = f c + i g, h' = o tanh(c'); Fig. 4 reads the h block."""
    lstms = [m for m in model.modules() if isinstance(m, nn.LSTM)]
    if len(lstms) != 1 or lstms[0].num_layers != 1 or lstms[0].bidirectional:
        raise ValueError(f"lstm_step_map needs exactly one one-layer, one-direction nn.LSTM inside "
                         f"{type(model).__name__}")
    lstm = lstms[0]
    H = lstm.hidden_size
    w_ih, w_hh = lstm.weight_ih_l0, lstm.weight_hh_l0
    bias = lstm.bias_ih_l0 + lstm.bias_hh_l0 if lstm.bias else torch.zeros(4 * H)

    def step(s: Tensor, u: Tensor) -> Tensor:
        h, c = s[:H], s[H:]
        i, f, g, o = (w_hh @ h + u).chunk(4)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.cat([torch.sigmoid(o) * torch.tanh(c), c])

    return StepMap(step, lambda x: x @ w_ih.T + bias, 2 * H, slice(0, H))


def step_map(model: nn.Module) -> StepMap:
    """The step map of an ODERNN (has ``.field``) or a one-layer LSTM model."""
    return odernn_step_map(model) if hasattr(model, "field") else lstm_step_map(model)


def rollout(sm: StepMap, x: Tensor, s0: Tensor | None = None) -> Tensor:
    """States s_0..s_T ``(T+1, n)`` of one sequence x ``(T, m)`` (s_0 = s0 or zeros)."""
    u = sm.inputs(x)
    states = [torch.zeros(sm.state_size, dtype=x.dtype) if s0 is None else s0]
    for k in range(u.shape[0]):
        states.append(sm.step(states[-1], u[k]))
    return torch.stack(states)


def step_jacobians(sm: StepMap, states: Tensor, x: Tensor) -> Tensor:
    """Phi'_k = d s_k / d s_(k-1) at the visited states, k = 1..T: ``(T, n, n)`` in one vmap(jacrev), or by
    the implicit function theorem for implicit methods (``StepMap.jacobians``)."""
    if sm.jacobians is not None:
        return sm.jacobians(states[:-1], sm.inputs(x))
    return torch.func.vmap(torch.func.jacrev(sm.step))(states[:-1], sm.inputs(x))


def accumulated_jacobians(jacs: Tensor, block: slice) -> Tensor:
    """The ``block`` x ``block`` part of d s_T / d s_(T-j) for j = 1..T: ``(T, k, k)``, by backward products."""
    products = []
    acc = torch.eye(jacs.shape[-1], dtype=jacs.dtype)
    for k in range(jacs.shape[0] - 1, -1, -1):
        acc = acc @ jacs[k]
        products.append(acc[block, block])
    return torch.stack(products)
