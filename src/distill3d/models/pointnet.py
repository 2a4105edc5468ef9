"""PointNet (Qi et al., CVPR 2017) without the input/feature T-Nets: a shared per-point MLP and max pooling.

Two families: the small :class:`PointNetEncoder` / :class:`PointNetClassifier` used by the shape-classification
baseline and the pose student, and the paper-width :class:`PointNetPaperEncoder` (3-64-64-64-128-1024) with its
classifier and part-segmentation networks (PointMCD's PointNet student).

Points are kept as (B, N, C) so the shared MLP is a plain matrix multiply over B·N rows (faster on CPU than
Conv1d over (B, C, N)); BatchNorm normalises over all B·N points, as Conv1d + BatchNorm1d does.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from distill3d.errors import check_shape
from distill3d.models.dgcnn import category_one_hot, max_mean_pool


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


PAPER_WIDTHS = (64, 64, 64, 128, 1024)
"""PointNet's shared per-point MLP widths in the paper (classification network, T-Nets left out)."""


class PointNetPaperEncoder(nn.Module):
    """PointNet encoder at the paper's widths: shared per-point Linear → BN → ReLU layers 3 → 64 → 64 → 64 → 128 →
    1024, then max pooling over the points. Without the input and feature T-Nets (and so without their
    orthogonality regulariser).

    ``forward(points (B, N, in_channels))`` → (global_feature (B, widths[-1]), point_features (B, N, widths[-1]));
    the per-point features are post-ReLU (≥ 0), as PointMCD's visibility-aware max projection assumes.
    ``layer_features(points)`` → the outputs of every layer, [(B, N, w) for w in widths].
    """

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] = PAPER_WIDTHS) -> None:
        super().__init__()
        self.in_channels, self.widths = in_channels, tuple(widths)
        channels = (in_channels, *widths)
        self.layers = nn.ModuleList(SharedMLP([c_in, c_out]) for c_in, c_out in pairwise(channels))
        self.feature_dim = widths[-1]

    def layer_features(self, points: torch.Tensor) -> list[torch.Tensor]:
        check_shape("points", points, (None, None, self.in_channels))
        outputs, x = [], points
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return outputs

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        point_features = self.layer_features(points)[-1]
        return max_mean_pool(point_features)[0], point_features


class PointNetPaperClassifier(nn.Module):
    """PointNet classifier at the paper's widths: :class:`PointNetPaperEncoder` → Linear 512 → BN → ReLU → Dropout →
    Linear 256 → BN → ReLU → Dropout → Linear num_classes (dropout 0.3 = the official keep probability 0.7).

    ``forward(points (B, N, in_channels), return_point_features=False)`` → logits (B, num_classes), or
    (logits, point_features (B, N, 1024)).
    """

    def __init__(self, num_classes: int, in_channels: int = 3, widths: tuple[int, ...] = PAPER_WIDTHS,
                 head_widths: tuple[int, int] = (512, 256), dropout: float = 0.3) -> None:
        super().__init__()
        self.encoder = PointNetPaperEncoder(in_channels, widths)
        first, second = head_widths
        self.head = nn.Sequential(
            nn.Linear(widths[-1], first, bias=False), nn.BatchNorm1d(first), nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(first, second, bias=False), nn.BatchNorm1d(second), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(second, num_classes),
        )

    def forward(self, points: torch.Tensor, return_point_features: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        global_feature, point_features = self.encoder(points)
        logits = self.head(global_feature)
        return (logits, point_features) if return_point_features else logits


class PointNetPartSegmenter(nn.Module):
    """PointNet part segmentation after the official network's structure (T-Nets left out): per point, the outputs
    of every shared layer (64 + 64 + 64 + 128 + 1024), the global max-pooled feature (1024) and the category one-hot
    → Linear → BN → ReLU layers 256 → Dropout → 256 → Dropout → 128 → Linear num_parts (dropout 0.2 = keep 0.8).
    The official part-segmentation encoder is wider (64-128-128-512-2048); the classification widths are used
    here so that the per-point features are the 1024-d ones PointMCD projects onto the views.

    ``forward(points (B, N, in_channels), category (B,) int64 or (B, num_categories) one-hot,
    return_point_features=False)`` → logits (B, N, num_parts), or (logits, point_features (B, N, 1024)).
    """

    def __init__(self, num_parts: int, num_categories: int, in_channels: int = 3,
                 widths: tuple[int, ...] = PAPER_WIDTHS, head_widths: tuple[int, ...] = (256, 256, 128),
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.num_categories = num_categories
        self.encoder = PointNetPaperEncoder(in_channels, widths)
        in_dims = sum(widths) + widths[-1] + num_categories
        layers: list[nn.Module] = []
        for index, width in enumerate(head_widths):
            layers += [nn.Linear(in_dims, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            if index < 2 and dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_dims = width
        layers.append(nn.Linear(in_dims, num_parts))
        self.head = nn.Sequential(*layers)

    def forward(self, points: torch.Tensor, category: torch.Tensor, return_point_features: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        layers = self.encoder.layer_features(points)
        point_features = layers[-1]
        b, n, _ = point_features.shape
        one_hot = category_one_hot(category, self.num_categories, b, point_features.dtype)
        shape_context = torch.cat([max_mean_pool(point_features)[0], one_hot], dim=-1)  # (B, 1024 + categories)
        per_point = torch.cat([*layers, shape_context.unsqueeze(1).expand(b, n, -1)], dim=-1)
        logits = self.head(per_point.reshape(b * n, -1)).view(b, n, -1)
        return (logits, point_features) if return_point_features else logits
