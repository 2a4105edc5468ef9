"""Batched image augmentations (kornia) that keep viewpoint labels consistent.

As in the 3DAug-Pose / PoseFromShape training code:

- photometric: colour jitter (brightness, contrast, saturation 0.5, p = 0.8), grayscale (p = 0.2), Gaussian blur
  (p = 0.5) — labels unchanged;
- box-jitter crop: the object crop is re-cut with its box edges moved by up to ±``jitter`` of the size and
  resized back — labels unchanged (the official code ignores the small perspective change);
- horizontal flip: label ``a → 2π − a``, ``θ → −θ``;
- in-plane rotation of the image by r (counter-clockwise as displayed): label ``θ → θ + r``.

All functions take images (B, 3, H, W) in [0, 1] and draw from the torch global RNG (re-seeded per epoch by the
engine, so augmentation is reproducible and resumable).
"""

from __future__ import annotations

import math

import kornia.augmentation as K
import kornia.geometry.transform as KT
import torch
from torch import nn

from distill3d.losses.viewpoint import flip_viewpoint


def photometric_augmentation(brightness: float = 0.5, contrast: float = 0.5, saturation: float = 0.5,
                             jitter_p: float = 0.8, grayscale_p: float = 0.2, blur_p: float = 0.5) -> nn.Module:
    """Colour jitter → grayscale → blur, applied per sample with the given probabilities."""
    return nn.Sequential(
        K.ColorJitter(brightness, contrast, saturation, 0.0, p=jitter_p),
        K.RandomGrayscale(p=grayscale_p),
        K.RandomGaussianBlur((3, 3), (0.1, 1.0), p=blur_p),
    )


def box_jitter_crop(images: torch.Tensor, jitter: float = 0.1) -> torch.Tensor:
    """Re-crop each image with every box edge moved by U(−jitter, jitter)·size, resized back to (H, W)."""
    b, _, h, w = images.shape
    shift = (torch.rand(b, 4, device=images.device) * 2 - 1) * jitter
    x1, y1 = shift[:, 0] * w, shift[:, 1] * h
    x2, y2 = (w - 1) + shift[:, 2] * w, (h - 1) + shift[:, 3] * h
    boxes = torch.stack([torch.stack([x1, y1], 1), torch.stack([x2, y1], 1),
                         torch.stack([x2, y2], 1), torch.stack([x1, y2], 1)], dim=1)
    return KT.crop_and_resize(images, boxes, (h, w), mode="bilinear", padding_mode="zeros", align_corners=True)


def flip_images_and_viewpoints(images: torch.Tensor, viewpoint: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror images left↔right and their viewpoint labels (a → 2π − a, θ → −θ)."""
    return torch.flip(images, dims=[3]), flip_viewpoint(viewpoint)


def rotate_images_and_viewpoints(images: torch.Tensor, viewpoint: torch.Tensor,
                                 angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each image by ``angle`` (B,) radians counter-clockwise about its centre; θ → θ + angle (wrapped)."""
    rotated = KT.rotate(images, torch.rad2deg(angle).to(images.dtype), padding_mode="zeros", align_corners=True)
    inplane = torch.remainder(viewpoint[:, 2] + angle + math.pi, 2 * math.pi) - math.pi
    return rotated, torch.cat([viewpoint[:, :2], inplane[:, None]], dim=1)


def random_flip_and_rotate(images: torch.Tensor, viewpoint: torch.Tensor, flip_p: float = 0.5,
                           rotate_p: float = 0.5, rotate_std: float = math.radians(30),
                           rotate_limit: float = math.radians(60)) -> tuple[torch.Tensor, torch.Tensor]:
    """PoseFromShape's plain training augmentation: flip with p, in-plane rotation r ~ N(0, σ) clipped, with p."""
    b = images.shape[0]
    flip = torch.rand(b, device=images.device) < flip_p
    flipped, flipped_vp = flip_images_and_viewpoints(images, viewpoint)
    images = torch.where(flip[:, None, None, None], flipped, images)
    viewpoint = torch.where(flip[:, None], flipped_vp, viewpoint)
    angle = (torch.randn(b, device=images.device) * rotate_std).clamp(-rotate_limit, rotate_limit)
    angle = torch.where(torch.rand(b, device=images.device) < rotate_p, angle, torch.zeros_like(angle))
    return rotate_images_and_viewpoints(images, viewpoint, angle)
