"""Partitioned (Gauss-Seidel) forward Euler over blocks of the state's last dimension.

For a state split into blocks y = (y_1, ..., y_m) and y' = f(t, y) = (f_1, ..., f_m), one step is

    y_i^{n+1} = y_i^n + dt * f_i(t_n, y_1^{n+1}, ..., y_{i-1}^{n+1}, y_i^n, ..., y_m^n),   i = 1..m

so block i sees the already-updated blocks below it. For two blocks with antisymmetric coupling this is
symplectic Euler (Hairer, Lubich, Wanner, *Geometric Numerical Integration*, eq. I.1.9), the scheme of the
AFRNN authors' code (bottom layer first, its new state feeding the top layer). First order.
"""
from __future__ import annotations

from typing import Callable, Sequence, Union

import torch
from torch import Tensor

Time = Union[float, Tensor]


def check_partition(sizes: Sequence[int], dim: int) -> tuple[int, ...]:
    """Validate block sizes against a last dimension of ``dim``; ``ValueError`` naming the mismatch."""
    try:
        sizes = tuple(int(s) for s in sizes)
    except TypeError:
        raise ValueError(f"partition must be a sequence of positive block sizes, got {sizes!r}") from None
    if not sizes or any(s <= 0 for s in sizes):
        raise ValueError(f"partition must be non-empty positive block sizes, got {sizes}")
    if sum(sizes) != dim:
        raise ValueError(f"partition sizes {sizes} sum to {sum(sizes)}, but the state's last dimension is {dim}")
    return sizes


def partitioned_euler_step(f: Callable[[Time, Tensor], Tensor], t: Time, y: Tensor, dt: Time,
                           sizes: Sequence[int]) -> Tensor:
    """One Gauss-Seidel Euler step over blocks of ``y``'s last dimension with the given ``sizes``.

    Costs one evaluation of ``f`` per block (generic ``f``; only block i of its output is used at sweep i).
    """
    sizes = check_partition(sizes, y.shape[-1])
    blocks = list(torch.split(y, sizes, dim=-1))
    offset = 0
    for i, size in enumerate(sizes):
        state = y if i == 0 else torch.cat(blocks, dim=-1)
        blocks[i] = blocks[i] + dt * f(t, state).narrow(-1, offset, size)
        offset += size
    return torch.cat(blocks, dim=-1)
