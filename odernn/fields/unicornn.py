"""UnICORNN (Rusch & Mishra, ICML 2021): undamped independent oscillators, stacked, with learned per-neuron
time steps. Layer l (of L) holds positions y_l and velocities z_l and reads the positions of the layer below
(layer 1 reads the input):

    z_l' = -s_l * [tanh(w_l * y_l + V_l y_{l-1} + b_l) + alpha y_l],      y_l' = s_l * z_l,      s_l = sigmoid(c_l),

w_l diagonal (elementwise), so the field is the paper's y'' = -[tanh(w y + V u + b) + alpha y] with each
neuron's time rescaled by sigmoid(c) (the paper's per-neuron step dt * sigmoid(c) at step dt). The state is
[z_1, y_1, ..., z_L, y_L]; partitioned (Gauss-Seidel) Euler over these blocks in that order is the authors'
update: each layer's velocity, then its position with the new velocity, and each layer reading the new
positions of the one below, as their layer-by-layer recurrence does. Initialisation as theirs: w ~ U(0, 1),
c ~ U(-0.1, 0.1), the V_l and b_l of ``nn.Linear``. The readout reads y_L. psMNIST (n 256, 3 layers, m 1, 10
classes): 136,202 parameters. (Their backward pass reconstructs the states in reverse instead of storing them;
here ``reversible_heun`` offers O(1) memory for any field.)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import IndependentOscillatorForm, VectorField, check_positive_int, check_sizes


class UnICORNNField(VectorField):
    """UnICORNN's field on [z_1, y_1, ..., z_L, y_L]; ``layer_sizes`` one width per layer (bottom first)."""

    def __init__(self, input_size: int, layer_sizes: list[int], alpha: float = 30.65) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.layer_sizes = check_sizes(layer_sizes)
        alpha = float(alpha)
        if not (alpha == alpha and abs(alpha) != float("inf") and alpha >= 0):
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
        self.alpha = alpha
        starts, blocks = 0, []
        for n in self.layer_sizes:
            blocks += [slice(starts, starts + n), slice(starts + n, starts + 2 * n)]
            starts += 2 * n
        self.blocks = tuple(blocks)
        self.state_size = starts
        self.input_proj_size = self.layer_sizes[0]
        below = [self.input_size, *self.layer_sizes[:-1]]
        self.inputs = nn.ModuleList(nn.Linear(m, n) for m, n in zip(below, self.layer_sizes))
        self.w = nn.ParameterList(nn.Parameter(torch.empty(n)) for n in self.layer_sizes)
        self.c = nn.ParameterList(nn.Parameter(torch.empty(n)) for n in self.layer_sizes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear, w, c in zip(self.inputs, self.w, self.c):
            linear.reset_parameters()
            nn.init.uniform_(w, 0.0, 1.0)
            nn.init.uniform_(c, -0.1, 0.1)

    def input_projection(self, x: Tensor) -> Tensor:
        """V_1 x + b_1, the bottom layer's input term."""
        return self.inputs[0](x)

    def matrices(self) -> tuple[Tensor, ...]:
        return tuple(self.w) + tuple(torch.sigmoid(c) for c in self.c)

    def coupling_matrix(self) -> Tensor:
        raise ValueError("UnICORNN's recurrence is elementwise (diagonal w per layer); it has no coupling matrix")

    def evaluate(self, mats: tuple[Tensor, ...], t: object, h: Tensor, u: Tensor) -> Tensor:
        layers = len(self.layer_sizes)
        ws, rates = mats[:layers], mats[layers:]
        out, below = [], None
        for l in range(layers):
            z, y = h[..., self.blocks[2 * l]], h[..., self.blocks[2 * l + 1]]
            drive = u if l == 0 else self.inputs[l](below)
            dz = -rates[l] * (torch.tanh(ws[l] * y + drive) + self.alpha * y)
            out += [dz, rates[l] * z]
            below = y
        return torch.cat(out, dim=-1)

    def independent_oscillator_form(self) -> IndependentOscillatorForm:
        """Each layer's V_l, b_l, w_l and c_l, and alpha: the fused symplectic scan's input."""
        return IndependentOscillatorForm(tuple(layer.weight for layer in self.inputs),
                                         tuple(layer.bias for layer in self.inputs), tuple(self.w), tuple(self.c),
                                         self.alpha)

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, layer_sizes={self.layer_sizes}, alpha={self.alpha}"
