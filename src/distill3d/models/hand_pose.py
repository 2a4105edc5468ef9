"""Networks of PeCLR (Spurr, Dahiya et al., ICCV 2021): the contrastive pre-training model and the 2.5D hand
pose regressor that fine-tunes its encoder.

* :class:`ProjectionHead`: ``Linear(F→hidden) → BN1d → ReLU → Linear(hidden→128, no bias)`` (official
  ``projection_head``; hidden 512).
* :class:`ContrastiveHandNet`: encoder (global-pooled ResNet features) + projection head; used by both the
  equivariant (PeCLR) and invariant (SimCLR) objectives.
* :class:`Hand25DNet`: encoder + linear head regressing, per joint, (u, v) in input pixels and the
  scale-normalised relative depth (Iqbal et al. 2018), like the released ``rn_25D`` model (fc → 21·3).
"""

from __future__ import annotations

import torch
from torch import nn

from distill3d.models.resnet import ResNet

__all__ = ["ContrastiveHandNet", "Hand25DNet", "ProjectionHead"]


class ProjectionHead(nn.Module):
    """(B, in_dim) features → (B, out_dim) projections (unnormalised)."""

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                                 nn.Linear(hidden_dim, out_dim, bias=False))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class ContrastiveHandNet(nn.Module):
    """Encoder + projection head: images (B, 3, S, S) → projections (B, out_dim)."""

    def __init__(self, encoder: ResNet, hidden_dim: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        self.encoder = encoder
        self.projection_head = ProjectionHead(encoder.feature_dim, hidden_dim, out_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.encoder.features(images))


class Hand25DNet(nn.Module):
    """Encoder + linear 2.5D head: images (B, 3, S, S) → (uv (B, J, 2) input pixels, z_rel (B, J) bone units).

    The head predicts ``uv / S − 0.5`` (so a zero output is the crop centre) and ``z_rel`` directly.
    ``freeze_encoder=True`` fixes the encoder's weights and keeps its BatchNorm statistics frozen (eval mode).
    """

    def __init__(self, encoder: ResNet, image_size: int, num_joints: int = 21, freeze_encoder: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.image_size, self.num_joints, self.freeze_encoder = image_size, num_joints, freeze_encoder
        self.head = nn.Linear(encoder.feature_dim, num_joints * 3)
        nn.init.zeros_(self.head.bias)
        nn.init.normal_(self.head.weight, std=1e-3)
        if freeze_encoder:
            for parameter in self.encoder.parameters():
                parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> Hand25DNet:
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder.features(images).float()
        with torch.autocast(device_type=images.device.type, enabled=False):  # coordinates in fp32
            out = self.head(features).view(-1, self.num_joints, 3)
        uv = (out[..., :2] + 0.5) * self.image_size
        return uv, out[..., 2]
