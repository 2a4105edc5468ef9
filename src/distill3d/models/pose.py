"""Viewpoint networks of 3DAug-Pose (Liu et al., ICMR 2022), built on PoseFromShape (Xiao et al., BMVC 2019).

- :class:`ViewpointHeads`: six linear heads on a feature — bin logits and per-bin offsets for azimuth (24),
  elevation (12) and in-plane rotation (24).
- :class:`PoseTeacher` (stage 1): image encoder + point-cloud shape encoder, fused by an MLP into the
  "3D-augmented" feature (tanh, ``fused_dim`` = 200) that feeds the heads; a projector maps the image-only
  feature to the same size, and the contrastive term pulls it towards the fused feature.
- :class:`PoseStudent` (stage 2): image encoder → compress MLP → ``feature_dim`` (200) → the same heads, plus a
  projector whose output is distilled from the teacher's projected image feature.

Encoders are injected (any module mapping images (B, 3, H, W) → (B, D) with a ``feature_dim`` attribute), so the
same classes serve the CPU-sized benchmark (narrow ResNet at 64 px) and the paper recipe (ResNet-50/VGG at 224 px).
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from distill3d.geometry.viewpoint_bins import HEAD_NAMES, ViewpointBins
from distill3d.models.pointnet import PointNetEncoder


def mlp(sizes: list[int], final_activation: nn.Module | None = None) -> nn.Sequential:
    """Linear → BatchNorm → ReLU between the given sizes; the last layer is plain Linear (+ final_activation)."""
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(pairwise(sizes)):
        last = i == len(sizes) - 2
        layers.append(nn.Linear(c_in, c_out, bias=last))
        if not last:
            layers += [nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]
    if final_activation is not None:
        layers.append(final_activation)
    return nn.Sequential(*layers)


class ViewpointHeads(nn.Module):
    """Feature (B, D) → dict of six (B, n_bins) tensors: ``{azimuth,elevation,inplane}_{cls,reg}``."""

    def __init__(self, feature_dim: int, bins: ViewpointBins = ViewpointBins()) -> None:
        super().__init__()
        self.bins = bins
        self.heads = nn.ModuleDict()
        for name, count in zip(HEAD_NAMES, bins.counts, strict=True):
            self.heads[f"{name}_cls"] = nn.Linear(feature_dim, count)
            self.heads[f"{name}_reg"] = nn.Linear(feature_dim, count)

    def forward(self, feature: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(feature) for name, head in self.heads.items()}


class PoseTeacher(nn.Module):
    """Image + shape → viewpoint. ``forward(images, points)`` returns (head outputs, fused (B, F), projected (B, F)).

    Args:
        image_encoder: images (B, 3, H, W) → (B, image_encoder.feature_dim).
        shape_channels: 3 (xyz) for the PointNet shape encoder; shape_dim its global feature size.
        fused_dim: size of the 3D-augmented feature (200 in the official code).
    """

    def __init__(self, image_encoder: nn.Module, shape_dim: int = 256, fused_dim: int = 200,
                 shape_widths: tuple[int, ...] = (64, 128)) -> None:
        super().__init__()
        image_dim = image_encoder.feature_dim
        self.image_encoder = image_encoder
        self.shape_encoder = PointNetEncoder(3, shape_widths, shape_dim)
        total = image_dim + shape_dim
        self.fusion = mlp([total, total, max(total // 2, fused_dim), max(total // 4, fused_dim), fused_dim], nn.Tanh())
        self.projector = mlp([image_dim, max(image_dim * 3 // 4, fused_dim), max(image_dim // 2, fused_dim), fused_dim])
        self.heads = ViewpointHeads(fused_dim)

    def forward(self, images: torch.Tensor, points: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor,
                                                                              torch.Tensor]:
        image_feature = self.image_encoder(images)
        shape_feature = self.shape_encoder(points)[0]
        fused = self.fusion(torch.cat([image_feature, shape_feature.to(image_feature.dtype)], dim=1))
        return self.heads(fused), fused, self.projector(image_feature)


class PoseStudent(nn.Module):
    """Image-only viewpoint network. ``forward(images)`` returns (head outputs, projected feature (B, F)).

    ``predict(images)`` returns viewpoints (B, 3) radians (azimuth, elevation, inplane) — the deployable model.
    """

    def __init__(self, image_encoder: nn.Module, feature_dim: int = 200) -> None:
        super().__init__()
        image_dim = image_encoder.feature_dim
        self.image_encoder = image_encoder
        self.compress = mlp([image_dim, max(image_dim * 3 // 4, feature_dim), max(image_dim // 2, feature_dim),
                             feature_dim], nn.Sequential(nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True)))
        self.heads = ViewpointHeads(feature_dim)
        self.projector = mlp([feature_dim, feature_dim, feature_dim])

    def forward(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        feature = self.compress(self.image_encoder(images))
        return self.heads(feature), self.projector(feature)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.heads.bins.decode(self(images)[0])
