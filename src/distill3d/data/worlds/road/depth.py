"""The monocular depth estimator stand-in (SKD-WM3D never sees true depth; see the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from distill3d.data.worlds.road.scene import WORLD_ID

# ----------------------------------------------------------------------------------------------------------
# Monocular depth estimator stand-in
# ----------------------------------------------------------------------------------------------------------


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, H, W) images, borders replicated; kernel radius ``max(1, ⌈2.5σ⌉)`` px.

    Written as a sum of shifted slices: a single-channel ``conv2d`` is several times slower on CPU, and
    element-wise sums give every frame the same result whatever the batch it is in.
    """
    radius = max(1, math.ceil(2.5 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    weights = (kernel / kernel.sum()).tolist()
    height, width = image.shape[-2:]
    padded = F.pad(image[:, None], (radius, radius, radius, radius), mode="replicate")[:, 0]
    rows = padded[:, :, :width] * weights[0]
    for offset, weight in enumerate(weights[1:], start=1):
        rows.add_(padded[:, :, offset : offset + width], alpha=weight)
    out = rows[:, :height] * weights[0]
    for offset, weight in enumerate(weights[1:], start=1):
        out.add_(rows[:, offset : offset + height], alpha=weight)
    return out


def _estimate_draws(
    rng: np.random.Generator, count: int, height: int, width: int, scale_error: float, distortion: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The random numbers of ``count`` frames in draw order: scale (count,), grid (count, 3, 5), noise (count, H, W)."""
    scale = 1.0 + np.clip(rng.normal(0.0, scale_error, count), -2 * scale_error, 2 * scale_error)
    grid = rng.normal(0.0, distortion, (count, 3, 5))
    noise = rng.standard_normal((count, height, width)).astype(np.float32)
    return scale, grid, noise


def estimated_depth(
    true_depth: torch.Tensor,
    seed: int | np.random.Generator | Sequence[np.random.Generator],
    scale_error: float = 0.04,
    distortion: float = 0.03,
    blur_pixels: float = 1.5,
    noise_at_zero: float = 0.01,
    noise_per_metre: float = 0.0008,
    max_depth: float = 80.0,
) -> torch.Tensor:
    """A monocular depth estimator's output, simulated from the true depth (H, W) or (B, H, W) (metres,
    0 = invalid/sky).

    The estimate is ``s · (1 + d(u, v)) · blur(depth) · (1 + n)`` with a global scale error
    ``s ~ 1 + N(0, scale_error)`` (clipped to ±2σ), a smooth multiplicative distortion ``d`` (a bicubic
    up-sampling of a 3×5 grid of N(0, distortion) values), discontinuities smeared by a Gaussian blur of
    ``blur_pixels`` (in inverse depth, like a network's output), and per-pixel noise ``n ~ N(0, σ(z))`` with
    ``σ(z) = noise_at_zero + noise_per_metre · z`` (larger far away).  Sky / invalid pixels get ``max_depth``;
    the result lies in ``(0, max_depth]``.  Deterministic given ``seed``: an int or a numpy generator (one
    stream for the batch), or one generator per frame (frame b then gets exactly what a call on frame b alone
    with generator b gives, so a batch is estimated in one vectorised pass without tying frames together).
    """
    depth = true_depth if true_depth.dim() == 3 else true_depth[None]
    batch, height, width = depth.shape
    if isinstance(seed, Sequence):
        if len(seed) != batch:
            raise ValueError(f"got {len(seed)} generators for {batch} depth maps")
        draws = [_estimate_draws(rng, 1, height, width, scale_error, distortion) for rng in seed]
        scale, grid, noise = (np.concatenate(parts) for parts in zip(*draws, strict=True))
    else:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng([WORLD_ID, 99, int(seed)])
        scale, grid, noise = _estimate_draws(rng, batch, height, width, scale_error, distortion)
    depth = depth.to(torch.float32)
    filled = torch.where(depth > 0, depth, torch.full_like(depth, max_depth)).clamp(max=max_depth)
    inverse = 1.0 / filled
    if blur_pixels > 0:
        inverse = _gaussian_blur(inverse, blur_pixels)
    blurred = 1.0 / inverse
    grid_t = torch.from_numpy(grid[:, None].astype(np.float32))
    field_ = F.interpolate(grid_t, size=(height, width), mode="bicubic", align_corners=True)[:, 0]
    sigma = noise_at_zero + noise_per_metre * blurred
    scale_t = torch.from_numpy(scale.astype(np.float32))[:, None, None]
    estimate = (scale_t * (1.0 + field_) * blurred * (1.0 + torch.from_numpy(noise) * sigma)).clamp(
        min=1e-3, max=max_depth
    )
    return estimate if true_depth.dim() == 3 else estimate[0]
