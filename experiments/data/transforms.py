"""Images -> sequences: pixel by pixel, rows, a fixed permutation, noise padding.

Shapes (batch first, like the models): MNIST pixel by pixel (N, 784, 1); CIFAR-10 pixel by pixel
(N, 1024, 3) with the three channels of a pixel as one input (AntisymmetricRNN Sec. 5.2); CIFAR-10 rows
(N, 32, 96); noise-padded CIFAR-10 (N, 1000, 96): the 32 rows, then 968 steps of N(0, 1) noise
(AntisymmetricRNN Sec. 5.3). Padding happens per batch in the training loop's ``batch_transform`` hook
(:func:`pad_with_noise`), so only the 32 rows are stored: noise is fresh for every sample and every epoch,
drawn from the generator the loop seeds by (seed, epoch, batch) (evaluation batches get their own seeded
stream, so evaluation is deterministic). The option ``fixed`` pads every sample with one noise tensor,
the convention of the coRNN / LEM code.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def to_unit_interval(images: np.ndarray, max_value: float) -> Tensor:
    """Pixel values 0..max_value as float32 in [0, 1]."""
    return torch.as_tensor(np.asarray(images, dtype=np.float32) / np.float32(max_value))


def standardize_channels(images: np.ndarray, reference: np.ndarray) -> Tensor:
    """Images (N, C, H, W) as float32 standardised per channel with the mean and std of ``reference``
    (the training set; statistics accumulated in float64 without a float64 copy of the data). A constant
    channel (std 0) is only centred."""
    mean = reference.mean(axis=(0, 2, 3), dtype=np.float64, keepdims=True).astype(np.float32)
    std = reference.std(axis=(0, 2, 3), dtype=np.float64, keepdims=True).astype(np.float32)
    std[std == 0] = 1.0
    return torch.as_tensor((np.asarray(images, dtype=np.float32) - mean) / std)


def pixel_sequence(images: Tensor) -> Tensor:
    """One pixel per step in scan-line order: (N, L) -> (N, L, 1), (N, H, W) -> (N, H*W, 1),
    (N, C, H, W) -> (N, H*W, C) (the C channel values of a pixel form one input)."""
    if images.ndim == 2:
        return images.unsqueeze(-1)
    if images.ndim == 3:
        return images.reshape(images.shape[0], -1, 1)
    if images.ndim == 4:
        return images.flatten(2).transpose(1, 2).contiguous()
    raise ValueError(f"pixel_sequence expects (N, L), (N, H, W) or (N, C, H, W), got shape {tuple(images.shape)}")


def row_sequence(images: Tensor) -> Tensor:
    """One image row per step: (N, H, W) -> (N, H, W); (N, C, H, W) -> (N, H, C*W), each row holding the
    W values of channel 0, then of channel 1, ... (the layout of the coRNN / LEM noise-padded CIFAR code)."""
    if images.ndim == 3:
        return images
    if images.ndim == 4:
        n, c, h, w = images.shape
        return images.permute(0, 2, 1, 3).reshape(n, h, c * w)
    raise ValueError(f"row_sequence expects (N, H, W) or (N, C, H, W), got shape {tuple(images.shape)}")


def fixed_permutation(length: int, seed: int) -> Tensor:
    """The permutation of ``range(length)`` drawn from a generator seeded with ``seed`` (same seed, same order)."""
    if length < 1:
        raise ValueError(f"a permutation needs a positive length, got {length}")
    return torch.randperm(length, generator=torch.Generator().manual_seed(seed))


def permute_steps(sequences: Tensor, permutation: Tensor) -> Tensor:
    """Reorder the time axis of (N, T, m) sequences with a permutation of ``range(T)``."""
    if sorted(permutation.tolist()) != list(range(sequences.shape[1])):
        raise ValueError(f"permutation must reorder range({sequences.shape[1]}), got one of length {len(permutation)}")
    return sequences[:, permutation]


def pad_with_noise(x: Tensor, generator: torch.Generator, length: int, noise: Tensor | None = None) -> Tensor:
    """Append noise steps until (B, T0, m) becomes (B, length, m): N(0, 1) drawn from ``generator``, or the
    one fixed ``noise`` tensor of shape (length - T0, m) for every sample when given.

    The signature is the training loop's ``batch_transform(x, generator)`` once ``length`` (and ``noise``)
    are bound with ``functools.partial``.
    """
    if x.ndim != 3 or x.shape[1] > length:
        raise ValueError(f"cannot pad sequences of shape {tuple(x.shape)} (B, T0, m) to {length} steps")
    shape = (x.shape[0], length - x.shape[1], x.shape[2])
    if noise is None:
        noise = torch.randn(shape, generator=generator, dtype=x.dtype, device=generator.device)
    elif tuple(noise.shape) != shape[1:]:
        raise ValueError(f"fixed noise must have shape {shape[1:]}, got {tuple(noise.shape)}")
    return torch.cat([x, noise.to(device=x.device, dtype=x.dtype).expand(shape)], dim=1)


def fixed_noise(steps: int, features: int, seed: int) -> Tensor:
    """One (steps, features) N(0, 1) tensor shared by every sample (the ``fixed`` noise option)."""
    return torch.randn(steps, features, generator=torch.Generator().manual_seed(seed))
