"""Hand-crop augmentations with recorded parameters: geometric (rotation, crop translation, scale) and appearance.

Geometric transforms act on a batch of square hand crops (B, C, S, S) in pixel coordinates whose pixel centres
sit at integers (principal point of a centred crop at ``(S − 1)/2``). One transform is

``p_out = s·R(θ)·(p − c) + c − j``        (pixels; c = (S − 1)/2 · (1, 1))

with ``R(θ)`` OpenCV's / kornia's image rotation (``[[cos θ, sin θ], [−sin θ, cos θ]]``, θ in degrees; positive
turns the image counter-clockwise as displayed), ``s`` a zoom factor and ``j`` the crop jitter: the crop window's
origin moves by ``+j`` pixels, so the content moves by ``−j`` (PeCLR's ``sample_augmenter`` records the same
quantity). The 3×3 matrix is recorded so that keypoints follow exactly (:func:`transform_points`) and, for 2.5D
labels, ``K' = M·K`` keeps every 3D joint's projection consistent (the 3D joints themselves do not change).

Appearance transforms (colour jitter, Gaussian blur, grayscale; kornia) change no coordinate and are never undone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from kornia.geometry.transform import get_rotation_matrix2d, warp_affine
from torch import nn

from distill3d.data.augment import random_blur

__all__ = [
    "ColourJitter",
    "GeometricParams",
    "appearance_augmentation",
    "geometric_matrix",
    "sample_geometric_params",
    "transform_points",
    "warp_images",
    "warp_images_kornia",
]


@dataclass(frozen=True)
class GeometricParams:
    """Per-sample geometric transform of a batch of S×S crops.

    angle_deg (B,) degrees (OpenCV sign); jitter_px (B, 2) crop-origin shift (x, y) in pixels; scale (B,);
    matrix (B, 3, 3) mapping input pixels to output pixels; image_size S.
    """

    angle_deg: torch.Tensor
    jitter_px: torch.Tensor
    scale: torch.Tensor
    matrix: torch.Tensor
    image_size: int

    @property
    def jitter_normalised(self) -> torch.Tensor:
        """(B, 2) jitter divided by the image size (PeCLR's ``jitter / img_w``)."""
        return self.jitter_px / self.image_size


def geometric_matrix(angle_deg: torch.Tensor, jitter_px: torch.Tensor, scale: torch.Tensor,
                     image_size: int) -> torch.Tensor:
    """(B, 3, 3) pixel matrix of ``p_out = s·R(θ)(p − c) + c − j`` (see the module docstring)."""
    batch = angle_deg.shape[0]
    center = torch.full((batch, 2), (image_size - 1) / 2.0, dtype=angle_deg.dtype, device=angle_deg.device)
    affine = get_rotation_matrix2d(center, angle_deg, scale[:, None].expand(batch, 2))  # (B, 2, 3)
    affine = torch.cat([affine[:, :, :2], affine[:, :, 2:] - jitter_px[:, :, None].to(affine.dtype)], dim=2)
    bottom = affine.new_tensor([0.0, 0.0, 1.0]).expand(batch, 1, 3)
    return torch.cat([affine, bottom], dim=1)


def sample_geometric_params(batch: int, image_size: int, max_angle_deg: float = 45.0, max_jitter: float = 0.1,
                            scale_range: tuple[float, float] = (0.9, 1.1), rotate: bool = True, crop: bool = True,
                            generator: torch.Generator | None = None) -> GeometricParams:
    """Random transforms for ``batch`` crops of ``image_size`` px.

    θ: integer degrees, uniform in [−max_angle_deg, max_angle_deg] (PeCLR: ±45°, integer-valued) when ``rotate``;
    j: integer pixels, uniform in ±``max_jitter``·S per axis when ``crop``; s: uniform in ``scale_range``.
    """
    limit = int(max_angle_deg) if rotate else 0
    angle = torch.randint(-limit, limit + 1, (batch,), generator=generator).float()
    reach = round(max_jitter * image_size) if crop else 0
    jitter = torch.randint(-reach, reach + 1, (batch, 2), generator=generator).float()
    low, high = scale_range
    scale = low + (high - low) * torch.rand(batch, generator=generator)
    return GeometricParams(angle, jitter, scale, geometric_matrix(angle, jitter, scale, image_size), image_size)


def warp_images(images: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Resample images (B, C, H, W) so that input pixel p lands at ``matrix·p`` (bilinear, zeros outside).

    Pixel centres at integers (``align_corners=True``); equal to kornia's ``warp_affine`` but builds the sampling
    grid directly (cheaper on CPU).
    """
    height, width = images.shape[-2:]
    to_unit = torch.tensor([[2.0 / (width - 1), 0.0, -1.0], [0.0, 2.0 / (height - 1), -1.0], [0.0, 0.0, 1.0]],
                           dtype=torch.float64, device=images.device)
    theta = to_unit @ torch.linalg.inv(matrix.to(torch.float64)) @ torch.linalg.inv(to_unit)  # output → input
    grid = F.affine_grid(theta[:, :2].to(images.dtype), list(images.shape), align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def warp_images_kornia(images: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Reference for :func:`warp_images` through kornia's ``warp_affine``."""
    height, width = images.shape[-2:]
    return warp_affine(images, matrix[:, :2].to(images.dtype), (height, width), mode="bilinear",
                       padding_mode="zeros", align_corners=True)


def transform_points(points: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Apply (B, 3, 3) pixel matrices to points (B, N, 2) → (B, N, 2)."""
    matrix = matrix.to(points.dtype)
    return points @ matrix[:, :2, :2].transpose(1, 2) + matrix[:, None, :2, 2]


_LUMA = (0.299, 0.587, 0.114)


def _hue_rotation(angle: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) RGB matrices rotating the hue by ``angle`` (B,) radians about the gray axis (YIQ rotation)."""
    rgb_to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    yiq_to_rgb = torch.linalg.inv(rgb_to_yiq)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.zeros(angle.shape[0], 3, 3)
    rotation[:, 0, 0] = 1.0
    rotation[:, 1, 1], rotation[:, 1, 2], rotation[:, 2, 1], rotation[:, 2, 2] = cos, -sin, sin, cos
    return yiq_to_rgb @ rotation @ rgb_to_yiq


class ColourJitter(nn.Module):
    """Per-sample colour jitter of (B, 3, H, W) images in [0, 1], applied with probability ``p`` per sample:
    brightness ×U[1 ± b], saturation (blend with luma) ×U[1 ± s], hue rotation U[± h]·2π, contrast (blend with
    the image's mean luma) ×U[1 ± c]; samples chosen by ``grayscale_p`` lose their colour. The colour part is
    one 3×3 matrix per sample (vectorised; kornia's HSV-based ColorJitter is ~10× slower on CPU)."""

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.1,
                 p: float = 0.8, grayscale_p: float = 0.2) -> None:
        super().__init__()
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.p, self.grayscale_p = p, grayscale_p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = images.shape[0]

        def factor(spread: float) -> torch.Tensor:
            return 1.0 + spread * (2 * torch.rand(batch) - 1)

        active = torch.rand(batch) < self.p
        luma = torch.tensor(_LUMA)
        gray = luma[None, :].expand(3, 3)
        saturation = torch.where(torch.rand(batch) < self.grayscale_p, torch.zeros(batch), factor(self.saturation))
        saturation_matrix = saturation[:, None, None] * torch.eye(3) + (1 - saturation)[:, None, None] * gray
        hue = _hue_rotation(self.hue * 2 * torch.pi * (2 * torch.rand(batch) - 1))
        colour = factor(self.brightness)[:, None, None] * saturation_matrix @ hue
        colour = torch.where(active[:, None, None], colour, torch.eye(3).expand(batch, 3, 3))
        contrast = torch.where(active, factor(self.contrast), torch.ones(batch)).to(images)[:, None, None, None]
        out = torch.einsum("bij,bjhw->bihw", colour.to(images), images)
        mean = torch.einsum("j,bjhw->b", luma.to(images), out)[:, None, None, None] / out[0, 0].numel()
        return (contrast * out + (1 - contrast) * mean).clamp(0, 1)


class RandomBlur(nn.Module):
    """5×5 Gaussian blur, σ ~ U(0.1, 1.5) px, with probability ``p`` per image (only those images are convolved;
    :func:`distill3d.data.augment.random_blur`)."""

    def __init__(self, p: float = 0.5, sigma_range: tuple[float, float] = (0.1, 1.5)) -> None:
        super().__init__()
        self.p, self.sigma_range = p, sigma_range

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return random_blur(images, self.p, self.sigma_range, radius=2)


def appearance_augmentation(strength: float = 1.0, blur_p: float = 0.5, grayscale_p: float = 0.2) -> nn.Module:
    """SimCLR-style appearance transforms on (B, 3, H, W) in [0, 1]: :class:`ColourJitter` (p = 0.8;
    brightness, contrast, saturation 0.4·strength, hue 0.1·strength; grayscale with ``grayscale_p``) and a
    Gaussian blur (σ ∈ [0.1, 1.5] px, p = ``blur_p``). Per-sample parameters from torch's global generator."""
    return nn.Sequential(
        ColourJitter(0.4 * strength, 0.4 * strength, 0.4 * strength, 0.1 * strength, p=0.8, grayscale_p=grayscale_p),
        RandomBlur(blur_p),
    )
