"""``build_rnn(name, ...)``: every model of both papers by name, and ``count_parameters``.

| name | model | field |
|---|---|---|
| antisymmetric | AntisymmetricRNN (eq. 12), W strictly upper triangular | AntisymmetricField |
| gated | gated AntisymmetricRNN (eq. 13) | GatedAntisymmetricField |
| afrnn | AFRNN (eq. 17-18 / Theorem 3) | AFRNNField |
| arnn | ARNN of the AFRNN paper (one antisymmetric layer, full R - R^T) | AntisymmetricField(full) |
| arnn2 | 2-ARNN (stacked, no feedback) | StackedAntisymmetricField |
| frnn | FRNN (free feedback matrix) | FRNNField |
| ablation | eq. 13 with unstructured W (gated; ``gated=False`` for eq. 12) | UnstructuredField |
| lstm, gru | torch baselines | LSTMBaseline, GRUBaseline |
"""
from __future__ import annotations

import inspect

from typing import Any, Optional, Sequence, Union

from torch import nn

from .baselines import GRUBaseline, LSTMBaseline
from .fields import (AFRNNField, AntisymmetricField, CoRNNField, FRNNField, GatedAntisymmetricField, LEMField,
                     LipschitzField, NeuralODEField, StackedAntisymmetricField, UnICORNNField, UnstructuredField)
from .rnn import ODERNN

MODEL_NAMES = ("antisymmetric", "gated", "afrnn", "arnn", "arnn2", "frnn", "ablation", "cornn", "unicornn", "lem", "lipschitz",
               "neural-ode", "lstm", "gru")
ODERNN_OPTIONS = tuple(name for name in inspect.signature(ODERNN.__init__).parameters
                       if name not in ("self", "field", "solver", "step_size"))
"""Every keyword ODERNN takes beyond the field, solver and step (derived from its signature, so a new setting
of ODERNN reaches build_rnn without a second list)."""
SINGLE_LAYER = {"antisymmetric": AntisymmetricField, "gated": GatedAntisymmetricField, "arnn": AntisymmetricField,
                "ablation": UnstructuredField, "cornn": CoRNNField, "lem": LEMField, "lipschitz": LipschitzField,
                "neural-ode": NeuralODEField}
MULTI_LAYER = {"afrnn": AFRNNField, "arnn2": StackedAntisymmetricField, "frnn": FRNNField,
               "unicornn": UnICORNNField}
NUM_LAYERS = {"unicornn": 3}
"""Default layer counts where the paper's is not 2."""
LAYERED_MODELS = (*MULTI_LAYER, "lstm", "gru")
"""The models that take ``num_layers``."""
FIELD_OPTIONS = {"antisymmetric": ("parameterization", "sigma_w", "init"),
                 "gated": ("parameterization", "sigma_w", "init"), "arnn": ("parameterization", "sigma_w", "init"),
                 "ablation": ("gated", "sigma_w", "init"), "cornn": ("epsilon",), "lem": (),
                 "lipschitz": ("beta", "alpha", "init_std"), "unicornn": ("alpha",),
                 "neural-ode": ("width", "depth", "out_scale"),
                 **{name: ("coupling", "parameterization", "sigma_w", "init") for name in ("afrnn", "arnn2", "frnn")}}
DEFAULTS = {"arnn": {"parameterization": "full"}, "ablation": {"gated": True}}


def layer_sizes(hidden_size: Union[int, Sequence[int]], num_layers: int) -> list[int]:
    return [hidden_size] * num_layers if isinstance(hidden_size, int) else list(hidden_size)


def check_options(name: str, options: dict[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for model {name!r}; allowed: {', '.join(allowed)}")


def field_class(name: str) -> type:
    """The field class behind model ``name`` (ODE models only)."""
    return MULTI_LAYER[name] if name in MULTI_LAYER else SINGLE_LAYER[name]


def default_gamma(name: str) -> Optional[float]:
    """The field's own default for ``gamma`` (its diffusion, coRNN's stiffness, Lipschitz RNN's shift), read from
    the field class, or None for a model without one (lem, unicornn, lstm, gru)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")
    if name in ("lstm", "gru"):
        return None
    parameter = inspect.signature(field_class(name)).parameters.get("gamma")
    return None if parameter is None else parameter.default


def build_rnn(name: str, input_size: int, hidden_size: Union[int, Sequence[int]], *, solver: str = "euler",
              step_size: float = 0.01, gamma: Optional[float] = None, **kw: Any) -> nn.Module:
    """A sequence module by name (``MODEL_NAMES``). Multi-layer names (afrnn, arnn2, frnn) take ``hidden_size``
    as an int per layer (``num_layers``, default 2) or a list of layer sizes; lstm/gru take ``num_layers``
    (default 1) and, being discrete-time, ignore ``solver``, ``step_size`` and ``gamma`` (so one command line
    can sweep over every model). ``cornn`` (coRNN) reads ``gamma`` as its oscillators' stiffness and takes
    ``epsilon`` (damping); ``lipschitz`` reads it as the shift of A_beta and W_beta and takes ``beta``, ``alpha``,
    ``init_std``; ``lem`` and ``neural-ode`` (h' = MLP(h, x), ``width``, ``depth``, ``out_scale``) have no gamma
    and ignore it, as lstm/gru do. ``gamma=None`` (the default) leaves
    each field its own default (``default_gamma``). The family's authors' schemes:
    ``partitioned_euler`` for cornn and lem, ``euler`` for lipschitz. Other keywords go to the field (coupling,
    parameterization, sigma_w, init, gated, epsilon, ...) or to ``ODERNN`` (``ODERNN_OPTIONS``)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")
    if name in ("lstm", "gru"):
        check_options(name, kw, ("num_layers", "batch_first"))
        if not isinstance(hidden_size, int):
            raise ValueError(f"model {name!r} takes hidden_size as an int, got {hidden_size!r}")
        cls = LSTMBaseline if name == "lstm" else GRUBaseline
        return cls(input_size, hidden_size, **kw)
    num_layers = kw.pop("num_layers", NUM_LAYERS.get(name, 2)) if name in MULTI_LAYER else None
    check_options(name, kw, FIELD_OPTIONS[name] + ODERNN_OPTIONS)
    field_kw = {**DEFAULTS.get(name, {}), **{k: v for k, v in kw.items() if k in FIELD_OPTIONS[name]}}
    rnn_kw = {k: v for k, v in kw.items() if k in ODERNN_OPTIONS}
    if name in MULTI_LAYER:
        cls, size = MULTI_LAYER[name], layer_sizes(hidden_size, num_layers)
    else:
        if not isinstance(hidden_size, int):
            raise ValueError(f"model {name!r} has one layer and takes hidden_size as an int, got {hidden_size!r}")
        cls, size = SINGLE_LAYER[name], hidden_size
    if gamma is not None and "gamma" in inspect.signature(cls).parameters:  # lem and unicornn have none and,
        field_kw["gamma"] = gamma                                           # like lstm/gru, ignore it
    field = cls(input_size, size, **field_kw)
    return ODERNN(field, solver=solver, step_size=step_size, **rnn_kw)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars (each shared parameter counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
