"""The predictor: any sequence module of ``odernn.build_rnn`` under an ``odernn.TrajectoryRegressor`` (a
linear readout of the top layer at every step), with its initial hidden state and observation times.

- ``h0="state"``: h_0 is a learned affine map of the first observation y_0 (for the LSTM, of both h and c
  of every layer); ``"encoder"``: a learned MLP (one tanh layer as wide as a hidden layer) of all the context
  observations, the latent-ODE setup's encoder for a fixed context; ``"zeros"`` / ``"ones"``: constant.
- Times (see :mod:`experiments.trajectory.task`): on a uniform grid the ODE models run on their own grid
  k * eps (``times=None``). Otherwise the model times s_1..s_{T-1} go to ``ODERNN.forward(x, h0,
  times=...)``, as (T-1,) when the whole batch shares them, else per sample (B, T-1); an ``ODERNN`` without that argument is refused with a clear error.
  LSTM and GRU have no notion of time: on non-uniform data they read the interval length (relative to eps)
  as one more input feature.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

import odernn
from experiments.trajectory.settings import DISCRETE_MODELS, TaskSettings
from experiments.trajectory.task import ALIGNMENTS


def accepts_times(rnn: nn.Module) -> bool:
    """Whether ``rnn.forward`` takes a ``times`` argument (per-sample observation times)."""
    try:
        return "times" in inspect.signature(rnn.forward).parameters
    except (TypeError, ValueError):
        return False


def _hidden_layout(rnn: nn.Module) -> tuple[str, int, int]:
    """(kind, layers, width) of the hidden state ``rnn`` takes as h0."""
    if isinstance(rnn, odernn.LSTMBaseline):
        return "lstm", rnn.core.num_layers, rnn.core.hidden_size
    if isinstance(rnn, odernn.GRUBaseline):
        return "gru", rnn.core.num_layers, rnn.core.hidden_size
    return "ode", 1, rnn.field.state_size


class TrajectoryPredictor(nn.Module):
    """``forward(packed (B, T - 1 + lead, d + 2)) -> predictions (B, T - first_target, d)`` (inputs packed by
    :func:`experiments.trajectory.task.pack_inputs`; ``lead`` reading steps come before the first observation's
    time, see :data:`experiments.trajectory.task.ALIGNMENTS`)."""

    def __init__(self, rnn: nn.Module, state_dim: int, first_target: int, h0: str = "state", pass_times: bool = False,
                 interval_feature: bool = False, lead: int = 0, encoded: int = 1) -> None:
        super().__init__()
        if pass_times and not accepts_times(rnn):
            raise ValueError(
                f"these observation times are not a uniform grid, and {type(rnn).__name__}.forward has no `times` "
                f"argument in this version of odernn (signature {inspect.signature(rnn.forward)}), so an ODE model "
                f"cannot follow them; train the ODE models on uniformly sampled data, or use lstm/gru (they read "
                f"the interval length as an input)")
        self.regressor = odernn.TrajectoryRegressor(rnn, state_dim)
        self.state_dim, self.first_target, self.h0_mode = state_dim, first_target, h0
        self.pass_times, self.interval_feature = pass_times, interval_feature
        self.lead = lead  # reading steps before the first observation (task.ALIGNMENTS)
        kind, layers, width = _hidden_layout(rnn)
        self._layout = (kind, layers, width)
        copies = 2 if kind == "lstm" else 1
        self.encoded = encoded  # context observations the "encoder" h0 reads
        size = copies * layers * width
        if h0 == "state":
            self.encoder: nn.Module | None = nn.Linear(state_dim, size)
        elif h0 == "encoder":
            self.encoder = nn.Sequential(nn.Linear(encoded * state_dim, width), nn.Tanh(), nn.Linear(width, size))
        else:
            self.encoder = None

    @property
    def rnn(self) -> nn.Module:
        return self.regressor.rnn

    def initial_state(self, context: Tensor) -> Any:
        """h_0 for a batch whose first observations are ``context (B, k, d)``: the "state" map reads the first,
        the "encoder" MLP all ``encoded`` of them."""
        kind, layers, width = self._layout
        batch = context.shape[0]
        if self.h0_mode == "zeros":
            return None
        if self.h0_mode == "encoder":
            flat = self.encoder(context[:, :self.encoded].flatten(1))
        elif self.encoder is not None:
            flat = self.encoder(context[:, 0])
        else:
            flat = torch.ones(batch, (2 if kind == "lstm" else 1) * layers * width, dtype=context.dtype,
                              device=context.device)
        if kind == "ode":
            return flat
        states = flat.reshape(batch, -1, layers, width).permute(1, 2, 0, 3).contiguous()  # (copies, L, B, H)
        return (states[0], states[1]) if kind == "lstm" else states[0]

    def rnn_inputs(self, packed: Tensor) -> Tensor:
        """The sequence the recurrent module reads: the state inputs (and the interval length, if asked)."""
        return packed[..., :self.state_dim + (1 if self.interval_feature else 0)]

    def forward(self, packed: Tensor) -> Tensor:
        x = self.rnn_inputs(packed)
        h0 = self.initial_state(packed[:, :self.encoded, :self.state_dim])
        if self.pass_times:
            times = packed[..., -1]
            if bool((times == times[:1]).all()):  # one grid for the whole batch: (T,)
                times = times[0]
            outputs, _ = self.rnn(x, h0, times=times)
            predictions = self.regressor.readout(outputs[..., self.rnn.readout_slice])
        else:
            predictions = self.regressor(x, h0)
        return predictions[:, self.first_target - 1 + self.lead:]


def build_predictor(settings: TaskSettings, model: str, state_dim: int, first_target: int,
                    uniform: bool) -> TrajectoryPredictor:
    """The model named ``model`` with ``settings``' sizes, solver and input alignment, seeded by ``settings.seed``."""
    torch.manual_seed(settings.seed)
    discrete = model in DISCRETE_MODELS
    interval_feature = discrete and not uniform
    input_size = state_dim + (1 if interval_feature else 0)
    rnn = odernn.build_rnn(model, input_size, settings.hidden_width(model), solver=settings.solver,
                           step_size=settings.step_size, gamma=settings.gamma, **settings.rnn_kwargs(model))
    settings.configure(rnn)  # rtol, atol, max_steps of adaptive solvers
    return TrajectoryPredictor(rnn, state_dim, first_target, settings.h0, pass_times=not discrete and not uniform,
                               interval_feature=interval_feature, lead=ALIGNMENTS[settings.alignment],
                               encoded=1 if settings.objective == "one-step" else settings.context)
