"""The ODE-RNN family's updates as their authors' code runs them: a Python loop over time of the cell's
formulas, differentiated by autograd, from zero initial states. They read the parameters of our fields (the
same layers: one ``nn.Linear`` on [x, z, y] for coRNN, LEM's inp2hid, hid2hid and transform_z, UnICORNN's
per-layer input maps, w and c, Lipschitz RNN's M_A, M_W and input map), so a field under its paper's
discretisation must equal them (tests/test_cornn.py, test_lem_lipschitz.py, test_unicornn.py), and they are
the baseline the benchmark's family rows are timed against (``experiments.family_benchmark``).

Each takes batch-first x (B, T, m) and returns the sequence the readout sees (B, T, n): coRNN's and LEM's y,
UnICORNN's top layer's y, Lipschitz RNN's h.
"""
from __future__ import annotations

import torch
from torch import Tensor

from odernn.fields import CoRNNField, LEMField, LipschitzField, UnICORNNField


def cornn(x: Tensor, field: CoRNNField, dt: float) -> Tensor:
    """hz = hz + dt (tanh(Linear([x_t, hz, hy])) - gamma hy - epsilon hz); hy = hy + dt hz."""
    n = field.hidden_size
    hy = hz = x.new_zeros(x.shape[0], n)
    ys = []
    for t in range(x.shape[1]):
        hz = hz + dt * (torch.tanh(field.linear(torch.cat([x[:, t], hz, hy], dim=1))) - field.gamma * hy
                        - field.epsilon * hz)
        hy = hy + dt * hz
        ys.append(hy)
    return torch.stack(ys, dim=1)


def lem(x: Tensor, field: LEMField, dt: float) -> Tensor:
    """Both rates from y_{n-1}; z first, then y with the new z (the authors' LEMCell)."""
    n = field.hidden_size
    y = z = x.new_zeros(x.shape[0], n)
    ys = []
    for t in range(x.shape[1]):
        i_dt1, i_dt2, i_z, i_y = field.inp2hid(x[:, t]).chunk(4, 1)
        h_dt1, h_dt2, h_y = field.hid2hid(y).chunk(3, 1)
        dt_bar, dt_z = dt * torch.sigmoid(i_dt1 + h_dt1), dt * torch.sigmoid(i_dt2 + h_dt2)
        z = (1.0 - dt_z) * z + dt_z * torch.tanh(i_y + h_y)
        y = (1.0 - dt_bar) * y + dt_bar * torch.tanh(field.transform_z(z) + i_z)
        ys.append(y)
    return torch.stack(ys, dim=1)


def unicornn(x: Tensor, field: UnICORNNField, dt: float) -> Tensor:
    """Layer by layer over the whole sequence: hz -= dt sigmoid(c) (tanh(w hy + V u_t + b) + alpha hy);
    hy += dt sigmoid(c) hz; the next layer reads this layer's hy sequence. As in the authors' code, a layer's
    dense map is applied to its whole input sequence at once before the recurrence (its drives unbound once:
    indexing a sequence that needs gradients step by step would cost O(T^2) in the backward)."""
    sequence = x
    for linear, w, c in zip(field.inputs, field.w, field.c):
        hy = hz = x.new_zeros(x.shape[0], w.shape[0])
        outs, step = [], dt * torch.sigmoid(c)
        for drive in linear(sequence).unbind(1):
            hz = hz - step * (torch.tanh(w * hy + drive) + field.alpha * hy)
            hy = hy + step * hz
            outs.append(hy)
        sequence = torch.stack(outs, dim=1)
    return sequence


def lipschitz(x: Tensor, field: LipschitzField, eps: float) -> Tensor:
    """h = h + eps alpha h A + eps tanh(h W + E x), A and W from the authors' beta formula."""
    n = field.state_size
    eye = torch.eye(n, dtype=x.dtype, device=x.device)
    b, c, beta, gamma = field.m_a, field.m_w, field.beta, field.gamma
    A = beta * (b - b.T) + (1 - beta) * (b + b.T) - gamma * eye
    W = beta * (c - c.T) + (1 - beta) * (c + c.T) - gamma * eye
    h, hs = x.new_zeros(x.shape[0], n), []
    for t in range(x.shape[1]):
        h = h + eps * field.alpha * h @ A + eps * torch.tanh(h @ W + field.input(x[:, t]))
        hs.append(h)
    return torch.stack(hs, dim=1)
