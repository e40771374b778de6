"""The vector-field interface shared by every continuous-time recurrent model.

A field is the right-hand side f(t, h, u) of dh/dt = f(t, h, u), where u = input_projection(x) is the affine
input term (V x + b) computed once for a whole sequence (docs/design.md section 2). Fields own their diffusion
gamma and activation and never know the step size.

Every concrete field splits its evaluation into ``matrices()`` (parameter-derived matrices such as
W - W^T - gamma I, formed once per forward) and ``evaluate(mats, t, h, u)`` (pure tensor code, so
``torch.func.vmap``/``jacrev`` work on it with respect to h).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn

Field = Callable[[object, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class TanhForm:
    """What a field of the form f(h, x) = act(C h + V x + b) tells an integrator that may exploit it.

    ``matrix`` C (n, n) acts on the whole flat state, ``weight`` V (p, m) and ``bias`` b (p,) map the raw
    input to the pre-activation offsets (p = n; rows of layers that see no input are zero in V). ``gated``:
    act is AntisymmetricRNN eq. 13, sigmoid(C h + u_z) * tanh(C h + u_h) with u = [u_z, u_h] (p = 2n);
    otherwise act = tanh (eq. 8 / 12, and AFRNN eq. 11 with its blocks stacked). All are tensors built from
    the parameters with autograd, so gradients flow back to the field.
    """

    matrix: Tensor
    weight: Tensor
    bias: Tensor
    gated: bool = False


@dataclass(frozen=True)
class OscillatorForm:
    """What a field of coupled damped oscillators tells an integrator that may exploit it: on h = [z, y]
    (velocities, then positions, n each),

        z' = tanh(C [z, y] + V x + b) - gamma y - epsilon z,      y' = z

    (coRNN, eq. 1 of its paper, first-order). ``coupling`` C (n, 2n) acts on [z, y], ``weight`` V (n, m) and
    ``bias`` b (n,) on the raw input; built from the parameters with autograd, so gradients reach the field.
    """

    coupling: Tensor
    weight: Tensor
    bias: Tensor
    gamma: float
    epsilon: float

    def linear_part(self) -> Tensor:
        """L = [[-epsilon I, 0], [I, 0]] on (z, y) (2n, 2n): the damping and y' = z. IMEX Euler with it implicit
        is the coRNN paper's eq. 3: z' = (z + dt (tanh(...) - gamma y)) / (1 + dt epsilon), y' = y + dt z'."""
        n = self.coupling.shape[0]
        linear = self.coupling.new_zeros(2 * n, 2 * n)
        index = torch.arange(n, device=linear.device)
        linear[index, index] = -self.epsilon
        linear[n + index, index] = 1.0
        return linear


@dataclass(frozen=True)
class IndependentOscillatorForm:
    """Stacked layers of independent undamped oscillators with per-neuron time scales (UnICORNN): layer l on
    [z_l, y_l] reads the positions of the layer below (layer 1 the input) through ``weights[l]``,
    ``biases[l]``:

        z_l' = -sigmoid(c_l) [tanh(w_l y_l + V_l y_{l-1} + b_l) + alpha y_l],      y_l' = sigmoid(c_l) z_l,

    with ``w`` and ``c`` per-neuron vectors (the recurrence is elementwise). Tensors of the parameters, so
    gradients reach the field.
    """

    weights: tuple[Tensor, ...]
    biases: tuple[Tensor, ...]
    w: tuple[Tensor, ...]
    c: tuple[Tensor, ...]
    alpha: float


@dataclass(frozen=True)
class LEMForm:
    """LEM's layers (``fields.lem``), for its fused partitioned Euler scan: ``weight``, ``bias`` of inp2hid
    (4n, m), ``w_h``, ``b_h`` of hid2hid (3n, n) and ``w_z``, ``b_z`` of transform_z (n, n)."""

    weight: Tensor
    bias: Tensor
    w_h: Tensor
    b_h: Tensor
    w_z: Tensor
    b_z: Tensor


@dataclass(frozen=True)
class LinearTanhForm:
    """A field h' = h L + tanh(h W + U x + b) on the row state h (Lipschitz RNN: L = alpha A_beta, W = W_beta):
    ``linear`` L and ``matrix`` W (n, n), ``weight`` U (n, m), ``bias`` b (n,), built from the parameters with
    autograd, for the fused forward Euler scan."""

    linear: Tensor
    matrix: Tensor
    weight: Tensor
    bias: Tensor


class VectorField(nn.Module):
    """Base class: ``forward(t, h, u) -> dh/dt`` with h ``(B, state_size)`` and u ``(B, input_proj_size)``.

    Attributes: ``input_size`` (m), ``state_size`` (n, the flat state of all layers), ``blocks`` (one slice
    per layer, bottom first; the last one is the top layer), ``gamma`` (diffusion), ``input_proj_size``.
    """

    input_size: int
    state_size: int
    input_proj_size: int
    blocks: tuple[slice, ...]
    gamma: float

    def reset_parameters(self) -> None:
        """Re-draw every parameter from the field's initialisation (``init="paper"`` App. C, or ``"afrnn"``)."""
        raise NotImplementedError

    def input_projection(self, x: Tensor) -> Tensor:
        """The affine input term for a whole sequence: x ``(..., input_size)`` -> u ``(..., input_proj_size)``."""
        raise NotImplementedError

    def matrices(self) -> tuple[Tensor, ...]:
        """The parameter-derived matrices the evaluation needs, formed once (see ``prepare``)."""
        raise NotImplementedError

    def evaluate(self, mats: tuple[Tensor, ...], t: object, h: Tensor, u: Tensor) -> Tensor:
        """f(t, h, u) from pre-formed ``matrices()``."""
        raise NotImplementedError

    def coupling_matrix(self) -> Tensor:
        """The effective recurrent matrix acting on h inside the nonlinearity (row i: pre-activation of h_i)."""
        return self.matrices()[0]

    def forward(self, t: object, h: Tensor, u: Tensor) -> Tensor:
        return self.evaluate(self.matrices(), t, h, u)

    def prepare(self) -> Field:
        """``forward`` with the matrices formed once; call it once per sequence, not per step."""
        return functools.partial(self.evaluate, self.matrices())

    @property
    def linear_part(self) -> Optional[Tensor]:
        """L when the field is f(t, h, u) = L h + N(t, h, u) with L not depending on h: a vector (diagonal L) or
        an (n, n) matrix in column convention (on the row state: h L^T), which IMEX methods
        (``solvers.methods.imex_rk``) take implicitly; None (the default) when the field declares none. A
        linear term inside the nonlinearity (AntisymmetricRNN's -gamma I) is not one."""
        return None

    def tanh_form(self) -> Optional[TanhForm]:
        """The field as act(C h + V x + b) (``TanhForm``), for integrators with a fused scan; None when the
        field has no such form (the default: integrators then evaluate ``forward``)."""
        return None

    def oscillator_form(self) -> Optional[OscillatorForm]:
        """The field as coupled damped tanh oscillators (``OscillatorForm``), for the fused symplectic scan;
        None when it is not one (the default)."""
        return None

    def independent_oscillator_form(self) -> Optional[IndependentOscillatorForm]:
        """The field as stacked independent oscillators (``IndependentOscillatorForm``), for the fused
        symplectic scan; None when it is not one (the default)."""
        return None

    def lem_form(self) -> Optional[LEMForm]:
        """The field as LEM's layers (``LEMForm``), for its fused scan; None when it is not LEM (the default)."""
        return None

    def linear_tanh_form(self) -> Optional[LinearTanhForm]:
        """The field as h L + tanh(h W + U x + b) (``LinearTanhForm``), for the fused Euler scan; None when it is
        not one (the default)."""
        return None

    def extra_repr(self) -> str:
        sizes = [b.stop - b.start for b in self.blocks]
        return f"input_size={self.input_size}, layer_sizes={sizes}, gamma={self.gamma}"


def make_blocks(layer_sizes: Sequence[int]) -> tuple[slice, ...]:
    """Consecutive slices of a flat state for the given layer widths (bottom layer first)."""
    sizes = check_sizes(layer_sizes)
    ends = torch.tensor(sizes).cumsum(0).tolist()
    return tuple(slice(end - size, end) for size, end in zip(sizes, ends))


def check_sizes(layer_sizes: Sequence[int]) -> list[int]:
    sizes = [int(s) for s in layer_sizes]
    if not sizes or any(s < 1 for s in sizes) or any(s != t for s, t in zip(sizes, layer_sizes)):
        raise ValueError(f"layer sizes must be a non-empty list of positive integers, got {list(layer_sizes)}")
    return sizes


def check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_gamma(gamma: float) -> float:
    gamma = float(gamma)
    if not gamma == gamma or abs(gamma) == float("inf") or gamma < 0:
        raise ValueError(f"gamma (diffusion) must be a finite number >= 0, got {gamma}")
    return gamma
