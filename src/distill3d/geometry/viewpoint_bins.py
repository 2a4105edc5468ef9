"""Viewpoint labels as bins + in-bin offsets (PoseFromShape / 3DAug-Pose), and the mirror of a viewpoint label.

Label space (PoseFromShape ``dataset.py``): from Pascal3D+ angles in degrees,
``a' = (360 − a) mod 360``, ``e' = e + 90``, ``θ' = (θ + 180) mod 360``, so each angle lies in [0, 360) (elevation
in [0, 180]). Each is classified into bins of ``bin_size`` degrees (24 azimuth, 12 elevation, 24 in-plane bins of
15°) with a per-bin offset regressed in (−0.5, 0.5): target ``k = ⌊x/B⌋``, ``δ = (x mod B)/B − 0.5``; decoding
``x̂ = (k* + tanh(r_{k*})/2 + 0.5)·B``, k* = argmax. The task loss on these bins is in
:mod:`distill3d.losses.viewpoint`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from distill3d.errors import check_shape

HEAD_NAMES = ("azimuth", "elevation", "inplane")


@dataclass(frozen=True)
class ViewpointBins:
    """Bin layout: ``bin_size`` degrees; azimuth and in-plane cover 360°, elevation 180°."""

    bin_size: float = 15.0

    @property
    def counts(self) -> tuple[int, int, int]:
        return (round(360 / self.bin_size), round(180 / self.bin_size), round(360 / self.bin_size))

    def to_label_space(self, viewpoint: torch.Tensor) -> torch.Tensor:
        """Pascal3D+ (azimuth, elevation, inplane) radians (B, 3) → label-space degrees (B, 3)."""
        deg = viewpoint * (180 / math.pi)
        return torch.stack([torch.remainder(360 - deg[:, 0], 360), (deg[:, 1] + 90).clamp(0, 180 - 1e-6),
                            torch.remainder(deg[:, 2] + 180, 360)], dim=1)

    def from_label_space(self, label_deg: torch.Tensor) -> torch.Tensor:
        """Label-space degrees (B, 3) → Pascal3D+ radians (B, 3): azimuth [0, 2π), elevation, inplane [−π, π)."""
        azimuth = torch.remainder(360 - label_deg[:, 0], 360)
        # (plain multiplications: deg2rad has no ONNX export)
        return torch.stack([azimuth, label_deg[:, 1] - 90, label_deg[:, 2] - 180], dim=1) * (math.pi / 180)

    def encode(self, viewpoint: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Viewpoints (B, 3) radians → (bin indices (B, 3) int64, offsets δ (B, 3) in [−0.5, 0.5))."""
        check_shape("viewpoint", viewpoint, (None, 3))
        label = self.to_label_space(viewpoint)
        bins = torch.floor(label / self.bin_size).long()
        limits = torch.tensor(self.counts, device=bins.device) - 1
        bins = torch.minimum(bins, limits)
        offsets = (label - bins * self.bin_size) / self.bin_size - 0.5
        return bins, offsets

    def decode(self, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        """Head outputs → viewpoints (B, 3) radians (argmax bin + tanh offset)."""
        angles = []
        for name in HEAD_NAMES:
            k = logits[f"{name}_cls"].argmax(dim=1)
            raw = logits[f"{name}_reg"].gather(1, k[:, None]).squeeze(1)
            angles.append((k.to(raw.dtype) + torch.tanh(raw) / 2 + 0.5) * self.bin_size)
        return self.from_label_space(torch.stack(angles, dim=1))


def flip_viewpoint(viewpoint: torch.Tensor) -> torch.Tensor:
    """Viewpoint label of a horizontally mirrored image: a → 2π − a, e → e, θ → −θ (radians, (B, 3))."""
    return torch.stack([torch.remainder(-viewpoint[:, 0], 2 * math.pi), viewpoint[:, 1], -viewpoint[:, 2]], dim=1)
