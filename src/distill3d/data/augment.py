"""Batched image augmentations (kornia) that keep viewpoint labels consistent.

As in the 3DAug-Pose / PoseFromShape training code:

- photometric: colour jitter (brightness, contrast, saturation 0.5, p = 0.8), grayscale (p = 0.2), Gaussian blur
  (p = 0.5) — labels unchanged;
- box-jitter crop: the object crop is re-cut with its box edges moved by up to ±``jitter`` of the size and
  resized back — labels unchanged (the official code ignores the small perspective change);
- horizontal flip: label ``a → 2π − a``, ``θ → −θ``;
- in-plane rotation of the image by r (counter-clockwise as displayed): label ``θ → θ + r``.

Training uses :func:`photometric_jitter` (the colour part as one per-image colour matrix) and
:func:`geometric_viewpoint_augmentation` (crop, flip and rotation as one affine warp); the single-transform
functions are kept as the readable references the tests compare them with.
All functions take images (B, 3, H, W) in [0, 1] and draw from the torch global RNG (re-seeded per epoch by the
engine, so augmentation is reproducible and resumable).
"""

from __future__ import annotations

import math

import kornia.geometry.transform as KT
import torch
import torch.nn.functional as F

from distill3d.geometry.rotations import canonical_azimuth
from distill3d.geometry.viewpoint_bins import flip_viewpoint


def flip_images_and_viewpoints(images: torch.Tensor, viewpoint: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror images left↔right and their viewpoint labels (a → 2π − a, θ → −θ)."""
    return torch.flip(images, dims=[3]), flip_viewpoint(viewpoint)


def rotate_images_and_viewpoints(images: torch.Tensor, viewpoint: torch.Tensor,
                                 angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each image by ``angle`` (B,) radians counter-clockwise about its centre; θ → θ + angle (wrapped)."""
    rotated = KT.rotate(images, torch.rad2deg(angle).to(images.dtype), padding_mode="zeros", align_corners=True)
    inplane = torch.remainder(viewpoint[:, 2] + angle + math.pi, 2 * math.pi) - math.pi
    return rotated, torch.cat([viewpoint[:, :2], inplane[:, None]], dim=1)


_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 luma weights, as kornia.color.rgb_to_grayscale

def gaussian_blur_per_sample(images: torch.Tensor, sigma: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample σ (B,) pixels, a (2·radius + 1)-tap kernel, reflected borders.

    Taps ``exp(−k²/(2σ²))`` for k = −radius … radius, normalised to sum 1 — what
    ``kornia.filters.gaussian_blur2d(images, (2r + 1, 2r + 1), σ)`` computes, as two grouped convolutions without
    kornia's per-sample kernel bookkeeping. Images (B, C, H, W) → same.
    """
    b, c, h, w = images.shape
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    taps = torch.exp(-offsets.square()[None] / (2 * sigma.to(images.dtype).square()[:, None]))
    taps = (taps / taps.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # one kernel per image channel
    x = F.pad(images.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, taps[:, None, None, :], groups=b * c)
    x = F.conv2d(x, taps[:, None, :, None], groups=b * c)
    return x.reshape(b, c, h, w)


def random_blur(images: torch.Tensor, p: float, sigma_range: tuple[float, float], radius: int) -> torch.Tensor:
    """Blur each image with probability ``p`` (σ ~ U(sigma_range) px, see :func:`gaussian_blur_per_sample`); only
    the drawn images are convolved."""
    chosen = torch.nonzero(torch.rand(images.shape[0], device=images.device) < p).squeeze(1)
    if not len(chosen):
        return images
    low, high = sigma_range
    sigma = low + (high - low) * torch.rand(len(chosen), device=images.device, dtype=images.dtype)
    return images.index_copy(0, chosen, gaussian_blur_per_sample(images[chosen], sigma, radius))


def photometric_jitter(images: torch.Tensor, brightness: float = 0.5, contrast: float = 0.5, saturation: float = 0.5,
                       jitter_p: float = 0.8, grayscale_p: float = 0.2, blur_p: float = 0.5) -> torch.Tensor:
    """Photometric augmentation (3DAug-Pose / PoseFromShape's colour jitter, grayscale, blur) as one colour matrix
    and one blur.

    Per sample, with probability ``jitter_p``: brightness ×U(1 ± b), contrast (blend with the image's mean grey)
    U(1 ± c), saturation (blend with the grey image) U(1 ± s); then grayscale with ``grayscale_p``; then a 3×3
    Gaussian blur, σ ~ U(0.1, 1) px, with ``blur_p``. Brightness, contrast, saturation and grayscale are linear
    in RGB, so they are composed into one per-sample affine colour map ``x ↦ A·x + o`` and applied in a single
    pass (clamped to [0, 1] once at the end, not after each step); only the images drawn for a blur are blurred.
    Images (B, 3, H, W) in [0, 1] → same. Several times faster than kornia's augmentation modules on a CPU, which
    matters when the model step takes only a few milliseconds per sample.
    """
    b, dev, dtype = images.shape[0], images.device, images.dtype
    jitter = torch.rand(b, device=dev) < jitter_p

    def factor(strength: float) -> torch.Tensor:
        drawn = 1 + (torch.rand(b, device=dev, dtype=dtype) * 2 - 1) * strength
        return torch.where(jitter, drawn, torch.ones_like(drawn))[:, None, None]

    bright, contr, sat = factor(brightness), factor(contrast), factor(saturation)
    luma = images.new_tensor(_LUMA)
    to_grey = torch.ones(3, 1, device=dev, dtype=dtype) @ luma[None]  # 1·wᵀ (3, 3)
    eye = torch.eye(3, device=dev, dtype=dtype)
    saturate = sat * eye + (1 - sat) * to_grey  # (B, 3, 3)
    grey = (torch.rand(b, device=dev) < grayscale_p)[:, None, None]
    colour = contr * bright * torch.where(grey, to_grey.expand(b, 3, 3), saturate)
    mean_grey = torch.einsum("bchw,c->b", images, luma) / (images.shape[2] * images.shape[3])
    offset = (1 - contr[:, 0, 0]) * bright[:, 0, 0] * mean_grey  # the contrast blend's grey, kept by S and G
    images = (torch.einsum("bij,bjhw->bihw", colour, images) + offset[:, None, None, None]).clamp(0, 1)
    images = random_blur(images, blur_p, (0.1, 1.0), radius=1)
    return images


def geometric_viewpoint_augmentation(
    images: torch.Tensor, viewpoint: torch.Tensor, symmetry_order: torch.Tensor | None = None, flip_p: float = 0.5,
    rotate_p: float = 0.5, rotate_std: float = math.radians(30), crop_jitter: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Box-jitter crop, horizontal flip and in-plane rotation as **one** affine warp per image, with labels.

    Box-jitter crop (every box edge moved by U(−``crop_jitter``, ``crop_jitter``)·size, resized back) → flip
    (p = ``flip_p``) → rotation (p = ``rotate_p``, r ~ N(0, ``rotate_std``) clipped to ±2σ), composed into a single 3×3
    pixel map
    ``M = Rot(r) · Mirror · Crop`` and resampled once (bilinear, zero padding), so the image is interpolated
    once instead of three times. Labels: flip a → 2π − a, θ → −θ; rotation θ → θ + r; with ``symmetry_order``
    (B,) the flipped azimuth is made canonical again (:func:`~distill3d.geometry.rotations.canonical_azimuth`).

    Returns (images (B, 3, H, W), viewpoints (B, 3) radians, flipped (B,) bool — e.g. to mirror a shape).
    """
    b, _, h, w = images.shape
    dev, dtype = images.device, images.dtype
    shift = (torch.rand(b, 4, device=dev, dtype=dtype) * 2 - 1) * crop_jitter
    x1, y1 = shift[:, 0] * w, shift[:, 1] * h
    x2, y2 = (w - 1) + shift[:, 2] * w, (h - 1) + shift[:, 3] * h
    crop = torch.eye(3, device=dev, dtype=dtype).repeat(b, 1, 1)
    crop[:, 0, 0], crop[:, 1, 1] = (w - 1) / (x2 - x1), (h - 1) / (y2 - y1)
    crop[:, 0, 2], crop[:, 1, 2] = -x1 * crop[:, 0, 0], -y1 * crop[:, 1, 1]
    flip = torch.rand(b, device=dev) < flip_p
    mirror = torch.eye(3, device=dev, dtype=dtype).repeat(b, 1, 1)
    mirror[:, 0, 0] = torch.where(flip, -1.0, 1.0)
    mirror[:, 0, 2] = torch.where(flip, float(w - 1), 0.0)
    angle = (torch.randn(b, device=dev, dtype=dtype) * rotate_std).clamp(-2 * rotate_std, 2 * rotate_std)
    angle = torch.where(torch.rand(b, device=dev) < rotate_p, angle, torch.zeros_like(angle))
    rotation = torch.eye(3, device=dev, dtype=dtype).repeat(b, 1, 1)
    center = torch.tensor([[(w - 1) / 2, (h - 1) / 2]], device=dev, dtype=dtype).expand(b, 2)
    rotation[:, :2] = KT.get_rotation_matrix2d(center, torch.rad2deg(angle), torch.ones(b, 2, device=dev,
                                                                                        dtype=dtype))
    matrix = rotation @ mirror @ crop  # input pixel → output pixel
    # grid_sample wants output → input in normalised coordinates (align_corners: −1 and 1 at pixel centres).
    to_unit = torch.tensor([[2 / (w - 1), 0, -1], [0, 2 / (h - 1), -1], [0, 0, 1]], device=dev, dtype=dtype)
    theta = to_unit @ torch.linalg.inv(matrix) @ torch.linalg.inv(to_unit)
    grid = F.affine_grid(theta[:, :2], list(images.shape), align_corners=True)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    viewpoint = torch.where(flip[:, None], flip_viewpoint(viewpoint), viewpoint)
    if symmetry_order is not None:
        viewpoint = torch.cat([canonical_azimuth(viewpoint[:, :1], symmetry_order[:, None]), viewpoint[:, 1:]], 1)
    inplane = torch.remainder(viewpoint[:, 2] + angle + math.pi, 2 * math.pi) - math.pi
    return images, torch.cat([viewpoint[:, :2], inplane[:, None]], dim=1), flip
