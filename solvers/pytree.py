"""Tuple states: a tuple of tensors solved as one flat vector, as torchdiffeq does.

torchdiffeq accepts ``y0`` as a tuple of tensors (any shapes), ``f(t, y)`` taking and returning such a tuple,
and returns a tuple of stacked solutions. It implements that by concatenating the flattened components into
one vector before the solve and splitting the results after it (``torchdiffeq._impl.misc._TupleFunc`` and
``_flat_to_shape``); this module does the same. A plain tensor state is left as it is (no flattening), so
every solver sees its original shape.

The error norm of an adaptive solve over a tuple state is torchdiffeq's default: the largest RMS norm over
the components (``mixed_norm``), so one badly scaled component cannot hide behind the others.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

State = Union[Tensor, tuple[Tensor, ...]]
Norm = Callable[[Tensor], Tensor]


def rms_norm(x: Tensor) -> Tensor:
    """sqrt(mean(x^2)) over all entries, a 0-d tensor (Hairer, Norsett, Wanner I, eq. II.4.11)."""
    return x.pow(2).mean().sqrt()


@dataclass(frozen=True)
class TreeSpec:
    """How a state is laid out: ``shapes`` of the components of a tuple state, or None for a plain tensor."""

    shapes: Optional[tuple[torch.Size, ...]]

    @property
    def is_tuple(self) -> bool:
        return self.shapes is not None

    def check(self, tree: State, what: str = "state") -> None:
        """``ValueError`` naming ``what`` when ``tree`` does not have this layout (type, length, shapes)."""
        if self.shapes is None:
            if not isinstance(tree, Tensor):
                raise ValueError(f"{what} must be a tensor like y0, got {type(tree).__name__}")
            return
        if not isinstance(tree, (tuple, list)) or len(tree) != len(self.shapes):
            got = f"{type(tree).__name__} of length {len(tree)}" if isinstance(tree, (tuple, list)) else \
                type(tree).__name__
            raise ValueError(f"{what} must be a tuple of {len(self.shapes)} tensors like y0, got {got}")
        for i, (leaf, shape) in enumerate(zip(tree, self.shapes)):
            if not isinstance(leaf, Tensor) or leaf.shape != shape:
                got = tuple(leaf.shape) if isinstance(leaf, Tensor) else type(leaf).__name__
                raise ValueError(f"{what}: component {i} must be a tensor of shape {tuple(shape)} like y0[{i}], "
                                 f"got {got}")

    def flatten(self, tree: State, what: str = "state") -> Tensor:
        """The state as the solver sees it: a tensor unchanged; a tuple as one 1-D concatenation (``check``ed)."""
        self.check(tree, what)
        if self.shapes is None:
            return tree
        return torch.cat([leaf.reshape(-1) for leaf in tree])

    def unflatten(self, flat: Tensor, lead: Sequence[int] = ()) -> State:
        """Inverse of ``flatten`` for a tensor of shape (*lead, n): the components get shapes (*lead, *shape)."""
        if self.shapes is None:
            return flat
        leaves, start = [], 0
        for shape in self.shapes:
            stop = start + shape.numel()
            leaves.append(flat[..., start:stop].reshape((*lead, *shape)))  # a tuple: 0-d leaves give ()
            start = stop
        return tuple(leaves)

    def mixed_norm(self, flat: Tensor) -> Tensor:
        """torchdiffeq's norm for tuple states: the largest RMS norm over the components (rms for a tensor)."""
        if self.shapes is None:
            return rms_norm(flat)
        leaves = [leaf for leaf in self.unflatten(flat) if leaf.numel() > 0]
        if not leaves:
            return flat.new_zeros(())
        return torch.stack([rms_norm(leaf) for leaf in leaves]).amax()

    def wrap_norm(self, norm: Callable[[State], Tensor]) -> Norm:
        """A norm of the state as the user sees it (tensor or tuple) as a norm of the flat state."""
        if self.shapes is None:
            return norm
        return lambda flat: norm(self.unflatten(flat))


def tree_spec(y0: State) -> TreeSpec:
    """The layout of ``y0``: a tensor, or a non-empty tuple (or list) of tensors with one dtype and device.

    ``ValueError`` naming the offending component otherwise (dtype and finiteness are checked by the caller
    on the flat state).
    """
    if isinstance(y0, Tensor):
        return TreeSpec(None)
    if not isinstance(y0, (tuple, list)) or len(y0) == 0:
        raise ValueError(f"y0 must be a tensor or a non-empty tuple of tensors, got {type(y0).__name__}"
                         + (" of length 0" if isinstance(y0, (tuple, list)) else ""))
    for i, leaf in enumerate(y0):
        if not isinstance(leaf, Tensor):
            raise ValueError(f"y0[{i}] must be a tensor, got {type(leaf).__name__}")
        if (leaf.dtype, leaf.device) != (y0[0].dtype, y0[0].device):
            raise ValueError(f"the components of a tuple y0 must share one dtype and device (they are solved as "
                             f"one vector); y0[0] is {y0[0].dtype} on {y0[0].device}, y0[{i}] is {leaf.dtype} "
                             f"on {leaf.device}")
    return TreeSpec(tuple(leaf.shape for leaf in y0))
