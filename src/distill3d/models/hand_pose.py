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

__all__ = ["ContrastiveHandNet", "Hand25DHeatmapNet", "Hand25DNet", "ProjectionHead", "gaussian_heatmap_targets",
           "soft_argmax_2d"]


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


def soft_argmax_2d(logits: torch.Tensor, stride: float, offset: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Integral (soft-argmax) keypoints of heat-map logits (B, J, H, W) → (uv (B, J, 2) in input pixels,
    probabilities (B, J, H, W)); cell (x, y) is at input pixel ``(stride·x + offset, stride·y + offset)``
    (Sun et al., "Integral Human Pose Regression", ECCV 2018)."""
    batch, joints, height, width = logits.shape
    probabilities = logits.flatten(2).float().softmax(-1).view(batch, joints, height, width)
    xs = torch.arange(width, dtype=probabilities.dtype, device=logits.device) * stride + offset
    ys = torch.arange(height, dtype=probabilities.dtype, device=logits.device) * stride + offset
    u = (probabilities.sum(2) * xs).sum(-1)
    v = (probabilities.sum(3) * ys).sum(-1)
    return torch.stack([u, v], dim=-1), probabilities


class _ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int = 3) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class Hand25DHeatmapNet(nn.Module):
    """ResNet encoder + top-down decoder + integral 2.5D head: images (B, 3, S, S) → (uv (B, J, 2) input px,
    z_rel (B, J) bone units).

    The decoder merges the ResNet stages top-down (FPN-style: upsample ×2, add a 1×1 lateral of the skip, 3×3
    conv) from ``layer4`` (stride 32) down to the stem (stride 2, S/2 × S/2 cells), then predicts per joint a
    heat map (soft-argmax → uv, sub-pixel) and a depth map whose heat-map-weighted mean is z_rel (Iqbal et al.
    2018's 2.5D heat maps in their integral form).  With the standard stem (``small_input=False``) the stem
    output is 2× below the input; with the small-input stem it is 1× (cells = pixels).
    ``forward(images, return_heatmaps=True)`` also returns the heat-map probabilities (B, J, h, w) for an
    auxiliary heat-map loss.  ``freeze_encoder`` as :class:`Hand25DNet`.  ``from_stem=False`` stops the decoder at
    ``layer1`` (one level coarser: stride 4 with the standard stem): the raw training step is ≈1.7× faster at
    64 px (the finest level's 3×3 convolution costs about as much as the whole encoder).
    """

    def __init__(self, encoder: ResNet, image_size: int, num_joints: int = 21, decoder_width: int = 64,
                 freeze_encoder: bool = False, from_stem: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.image_size, self.num_joints, self.freeze_encoder = image_size, num_joints, freeze_encoder
        self.from_stem = from_stem
        self.stem_stride = 1 if isinstance(encoder.maxpool, nn.Identity) and encoder.conv1.stride == (1, 1) else 2
        self.finest_stride = self.stem_stride * (1 if from_stem or isinstance(encoder.maxpool, nn.Identity) else 2)
        stem_channels = encoder.conv1.out_channels
        stage_channels = [(stage[-1].bn3 if hasattr(stage[-1], "bn3") else stage[-1].bn2).num_features
                          for stage in (encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4)]
        skip_channels = [stem_channels, *stage_channels[:-1]] if from_stem else stage_channels[:-1]
        self.laterals = nn.ModuleList(nn.Conv2d(c, decoder_width, 1) for c in skip_channels)
        self.top = nn.Conv2d(stage_channels[-1], decoder_width, 1)
        self.smooth = nn.ModuleList(_ConvBNReLU(decoder_width, decoder_width) for _ in self.laterals)
        self.head = nn.Conv2d(decoder_width, 2 * num_joints, 1)
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)
        if freeze_encoder:
            for parameter in self.encoder.parameters():
                parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> Hand25DHeatmapNet:
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def heatmap_geometry(self) -> tuple[float, float]:
        """(stride, offset): heat-map cell x sits at input pixel ``stride·x + offset``."""
        stride = float(self.finest_stride)
        return stride, (stride - 1) / 2

    def forward(self, images: torch.Tensor, return_heatmaps: bool = False):
        e = self.encoder
        stem = e.relu(e.bn1(e.conv1(images)))
        skips = [stem] if self.from_stem else []
        x = e.maxpool(stem)
        for stage in (e.layer1, e.layer2, e.layer3):
            x = stage(x)
            skips.append(x)
        x = self.top(e.layer4(x))
        for lateral, smooth, skip in zip(reversed(self.laterals), reversed(self.smooth), reversed(skips),
                                         strict=True):
            x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = smooth(x + lateral(skip))
        out = self.head(x).float()
        logits, depth = out[:, : self.num_joints], out[:, self.num_joints :]
        uv, probabilities = soft_argmax_2d(logits, *self.heatmap_geometry())
        z_rel = (probabilities * depth).flatten(2).sum(-1)
        if return_heatmaps:
            return uv, z_rel, probabilities
        return uv, z_rel


def gaussian_heatmap_targets(uv: torch.Tensor, shape: tuple[int, int], stride: float, offset: float,
                             sigma_cells: float = 1.0) -> torch.Tensor:
    """Normalised Gaussian heat maps (B, J, H, W) centred on uv (B, J, 2) input px (σ in cells) for the
    auxiliary cross-entropy ``−Σ target·log p`` of :class:`Hand25DHeatmapNet`."""
    height, width = shape
    cells = (uv - offset) / stride  # (B, J, 2)
    xs = torch.arange(width, dtype=uv.dtype, device=uv.device)
    ys = torch.arange(height, dtype=uv.dtype, device=uv.device)
    gx = (-(xs - cells[..., :1]).square() / (2 * sigma_cells**2)).exp()  # (B, J, W)
    gy = (-(ys - cells[..., 1:]).square() / (2 * sigma_cells**2)).exp()  # (B, J, H)
    maps = gy[..., :, None] * gx[..., None, :]
    return maps / maps.flatten(2).sum(-1).clamp_min(1e-12)[..., None, None]
