"""PointNet (Qi et al., CVPR 2017) without the input/feature T-Nets: a shared per-point MLP and max pooling.

Points are kept as (B, N, C) so the shared MLP is a plain matrix multiply over B·N rows (faster on CPU than
Conv1d over (B, C, N)); BatchNorm normalises over all B·N points, as Conv1d + BatchNorm1d does.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from distill3d.errors import check_shape


class SharedMLP(nn.Module):
    """Per-point Linear → BatchNorm → ReLU layers. Input (B, N, C_in) → output (B, N, C_out)."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in pairwise(channels):
            layers += [nn.Linear(c_in, c_out, bias=False), nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        x = x.reshape(b * n, -1)
        for layer in self.layers:
            x = layer(x)
        return x.reshape(b, n, -1)


class PointNetEncoder(nn.Module):
    """(B, N, in_channels) points → global feature (B, feature_dim) and per-point features (B, N, widths[-1]).

    Args:
        in_channels: 3 for xyz, 6 for xyz + normals.
        widths: hidden widths of the shared MLP before pooling.
        feature_dim: size of the global descriptor (last shared layer).
    """

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] = (64, 128), feature_dim: int = 256) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.point_mlp = SharedMLP([in_channels, *widths])
        self.global_mlp = SharedMLP([widths[-1], feature_dim])
        self.feature_dim = feature_dim
        self.point_dim = widths[-1]

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_shape("points", points, (None, None, self.in_channels))
        point_features = self.point_mlp(points)
        global_feature = self.global_mlp(point_features).amax(dim=1)
        return global_feature, point_features


class PointNetClassifier(nn.Module):
    """PointNet classifier: encoder → MLP head with dropout → logits (B, num_classes)."""

    def __init__(self, num_classes: int, in_channels: int = 3, widths: tuple[int, ...] = (64, 128),
                 feature_dim: int = 256, dropout: float = 0.3) -> None:
        super().__init__()
        self.encoder = PointNetEncoder(in_channels, widths, feature_dim)
        self.head = nn.Sequential(
            nn.Linear(feature_dim, feature_dim // 2, bias=False), nn.BatchNorm1d(feature_dim // 2),
            nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(feature_dim // 2, num_classes),
        )

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(points)[0])
