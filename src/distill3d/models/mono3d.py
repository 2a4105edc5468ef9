"""Networks of SKD-WM3D (Jiang et al., CVPR 2024): the monocular 3D detection network (MDN) and the depth-guided
self-teaching network (DSN), CenterNet-style dense detectors in the monodle layout.

* :class:`Mono3DHead`: per output of :data:`HEAD_OUTPUT_NAMES` one ``3×3 conv → ReLU → 1×1 conv`` branch
  (CenterNet / monodle heads); the maps and their units are described in :mod:`distill3d.geometry.mono3d`.
* :class:`TopDownNeck`: the ResNet stages fused top-down to stride 4 (FPN-style 1×1 laterals, nearest ×2
  upsampling and addition, one 3×3 conv), a light stand-in for monodle's DLA-up.
* :class:`Mono3DNet` (MDN): image (B, 3, H, W) → maps at (H/4, W/4); the only network needed at inference.
* :class:`DepthFusedMono3DNet` (DSN): image + depth map (B, 1, H, W) metres → the same maps. The depth, encoded
  as inverse depth ``1/(1 + z)`` and a validity mask, runs through a small convolutional encoder whose stage
  features are concatenated with the image encoder's at strides 4, 8, 16, 32 and mixed by ``1×1 conv → BN →
  ReLU`` (the "3D-like" representation), followed by the DSN's own neck and head.
* :class:`SelfDistilledMono3D`: both branches; with ``shared_encoder`` they share one image encoder (computed
  once per batch), as the paper trains them "jointly"; ``mdn_parameters`` / ``dsn_parameters`` split them for
  the gradient modulation.

The architecture of the DSN's depth fusion is not described in the paper (METHODS.md §3.1); this is a plausible
reconstruction.

Cost at ResNet-18, base width 32, 96×320 input, per image (multiply-adds, forward): encoder ≈0.30 G, neck
≈0.08 G, head ≈0.57 G (eight 64-channel 3×3 branches at 24×80 cells) or ≈0.08 G with ``shared_trunk``; the DSN
adds its depth encoder and fusion (≈0.03 G), neck and head. The heads dominate: on 2 busy CPU cores a training
step (batch 16) ran at ≈14 samples/s for the encoder alone, ≈1-5 for the MDN with the default head, about twice
that with ``shared_trunk``; the DSN roughly doubles the head cost again.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from distill3d.errors import Distill3dError, ShapeError
from distill3d.models.resnet import ResNet

__all__ = [
    "HEAD_OUTPUT_NAMES",
    "DepthEncoder",
    "DepthFusedMono3DNet",
    "Mono3DHead",
    "Mono3DNet",
    "SelfDistilledMono3D",
    "TopDownNeck",
    "build_self_distilled_mono3d",
    "encode_depth",
    "encoder_stride",
    "head_output_channels",
    "stage_channels",
]

HEAD_OUTPUT_NAMES = ("heatmap", "size2d", "offset2d", "offset3d", "depth", "depth_log_sigma", "dimensions",
                     "orientation")
"""The keys of every head's output dict, in a fixed order."""

HEATMAP_PRIOR_BIAS = -2.19
"""CenterNet's heat-map bias init: ``−log((1 − π)/π)`` with prior π ≈ 0.1."""


def head_output_channels(num_classes: int = 3, num_bins: int = 12) -> dict[str, int]:
    """Channels of each head output (see :mod:`distill3d.geometry.mono3d`)."""
    return {"heatmap": num_classes, "size2d": 2, "offset2d": 2, "offset3d": 2, "depth": 1, "depth_log_sigma": 1,
            "dimensions": 3, "orientation": 2 * num_bins}


def stage_channels(encoder: ResNet) -> list[int]:
    """Channels of the four ResNet stages' outputs (``layer1`` … ``layer4``)."""
    return [(stage[-1].bn3 if hasattr(stage[-1], "bn3") else stage[-1].bn2).num_features
            for stage in (encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4)]


def encoder_stride(encoder: ResNet) -> int:
    """Input pixels per cell of ``layer1``: 4 for the standard stem, 1 for ``small_input``."""
    return 1 if isinstance(encoder.maxpool, nn.Identity) and encoder.conv1.stride == (1, 1) else 4


class _ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Mono3DHead(nn.Module):
    """Features (B, in_channels, h, w) → dict of maps (B, C_k, h, w), one branch per :data:`HEAD_OUTPUT_NAMES`.

    Each branch is ``Conv3×3(in → head_channels) → ReLU → Conv1×1(head_channels → C_k)`` with biases
    (monodle's heads). Init as monodle: heat-map bias −2.19 (CenterNet's focal-loss prior, default weights); the
    other branches' weights N(0, 10⁻³) and biases 0, except the depth bias ``raw_from_depth(initial_depth)``
    (0 ⇔ 1 m, monodle's start), so every regression starts near its neutral value.

    ``shared_trunk=True`` is a light variant (SMOKE-like): ONE ``Conv3×3 → ReLU`` (default init) shared by all
    outputs, then a 1×1 conv per output; its 3×3 costs 1/8 of the eight branches' (these dominate the MDN's
    compute at ResNet-18 / width 32, see the module docstring).

    ``dimension_bound`` b > 0 keeps the ``dimensions`` log-ratios in (−b, b): ``b·tanh(raw / b)`` (identity near
    0), so sizes stay within ``exp(±b)`` of the class mean (b = 0.3: ×0.74 … ×1.35). Without 3D labels nothing
    else stops the weak losses from trading size for depth and yaw (WeakM3D keeps sizes near class priors too).
    """

    def __init__(self, in_channels: int, num_classes: int = 3, num_bins: int = 12, head_channels: int = 64,
                 initial_depth: float = 1.0, shared_trunk: bool = False,
                 dimension_bound: float | None = None) -> None:
        super().__init__()
        if dimension_bound is not None and dimension_bound <= 0:
            raise ValueError(f"dimension_bound must be > 0 or None, got {dimension_bound}")
        self.num_classes, self.num_bins, self.dimension_bound = num_classes, num_bins, dimension_bound

        def hidden() -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(in_channels, head_channels, 3, padding=1), nn.ReLU(inplace=True))

        self.trunk = hidden() if shared_trunk else None
        self.branches = nn.ModuleDict({
            name: nn.Sequential(*([] if shared_trunk else hidden()), nn.Conv2d(head_channels, channels, 1))
            for name, channels in head_output_channels(num_classes, num_bins).items()
        })
        for name, branch in self.branches.items():
            if name == "heatmap":
                nn.init.constant_(branch[-1].bias, HEATMAP_PRIOR_BIAS)
                continue
            for conv in (layer for layer in branch if isinstance(layer, nn.Conv2d)):  # monodle's fill_fc_weights
                nn.init.normal_(conv.weight, std=1e-3)
                nn.init.zeros_(conv.bias)
            if name == "depth":
                nn.init.constant_(branch[-1].bias, -math.log(initial_depth))  # raw_from_depth(initial_depth)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.trunk is not None:
            features = self.trunk(features)
        outputs = {name: branch(features) for name, branch in self.branches.items()}
        if self.dimension_bound is not None:
            bound = self.dimension_bound
            outputs["dimensions"] = bound * torch.tanh(outputs["dimensions"] / bound)
        return outputs


class TopDownNeck(nn.Module):
    """Four stage maps (strides s, 2s, 4s, 8s) → one map (B, out_channels, h₁, w₁) at the finest stride.

    ``x = lateral₄(c₄)``; for k = 3, 2, 1: ``x = upsample(x to c_k's size) + lateral_k(c_k)`` (1×1 laterals,
    nearest upsampling); then ``Conv3×3 → BN → ReLU``.
    """

    def __init__(self, in_channels: list[int], out_channels: int = 64) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.smooth = _ConvBNReLU(out_channels, out_channels)

    def forward(self, stage_maps: list[torch.Tensor]) -> torch.Tensor:
        x = self.laterals[-1](stage_maps[-1])
        for lateral, skip in zip(reversed(self.laterals[:-1]), reversed(stage_maps[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest") + lateral(skip)
        return self.smooth(x)


class Mono3DNet(nn.Module):
    """MDN: images (B, 3, H, W) → dict of maps (B, C_k, H/4, W/4) (:data:`HEAD_OUTPUT_NAMES`; units in
    :mod:`distill3d.geometry.mono3d`). Needs no depth.

    Args:
        encoder: a :class:`ResNet` (``feature_maps`` gives its stages); standard stem → output stride 4
            (``small_input`` → 1; see ``output_stride``).
        num_classes, num_bins: heat-map classes and orientation bins.
        neck_channels: width of the fused stride-4 features; head_channels: width of each head branch.
        initial_depth: depth (m) the head predicts at init; shared_trunk, dimension_bound: see
            :class:`Mono3DHead`.
    """

    def __init__(self, encoder: ResNet, num_classes: int = 3, num_bins: int = 12, neck_channels: int = 64,
                 head_channels: int = 64, initial_depth: float = 1.0, shared_trunk: bool = False,
                 dimension_bound: float | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.output_stride = encoder_stride(encoder)
        self.neck = TopDownNeck(stage_channels(encoder), neck_channels)
        self.head = Mono3DHead(neck_channels, num_classes, num_bins, head_channels, initial_depth, shared_trunk,
                               dimension_bound)

    def forward_stages(self, stage_maps: list[torch.Tensor],
                       return_features: bool = False) -> dict[str, torch.Tensor]:
        """Maps from precomputed ``encoder.feature_maps(images)``; ``return_features`` adds ``"features"``
        (B, neck_channels, H/4, W/4), the neck output the head reads."""
        features = self.neck(stage_maps)
        outputs = self.head(features)
        if return_features:
            outputs["features"] = features
        return outputs

    def forward(self, images: torch.Tensor, return_features: bool = False) -> dict[str, torch.Tensor]:
        return self.forward_stages(self.encoder.feature_maps(images), return_features)


def encode_depth(depth: torch.Tensor) -> torch.Tensor:
    """Depth (B, 1, H, W) or (B, H, W) metres, 0 (or less, or NaN) = invalid → (B, 2, H, W): inverse depth
    ``1/(1 + z)`` (0 where invalid) and the validity mask (1 valid, 0 invalid)."""
    if depth.dim() == 3:
        depth = depth.unsqueeze(1)
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ShapeError(f"depth must have shape (B, 1, H, W) or (B, H, W), got {tuple(depth.shape)}")
    valid = depth > 0  # False for NaN too
    inverse = torch.where(valid, 1 / (1 + depth.clamp_min(0)), torch.zeros_like(depth))
    return torch.cat([inverse, valid.to(depth.dtype)], dim=1)


class DepthEncoder(nn.Module):
    """Encoded depth (B, 2, H, W) → four maps (B, width·2^k, ⌈H/(s·2^k)⌉, …), k = 0..3, at the strides of a
    ResNet's stages (s = 4 for the standard stem, 1 for ``small_input``).

    Stem: two ``Conv3×3 → BN → ReLU`` (stride 2 each for s = 4); each further stage: a stride-2 and a
    stride-1 ``Conv3×3 → BN → ReLU``.
    """

    def __init__(self, width: int = 16, first_stride: int = 4, in_channels: int = 2) -> None:
        super().__init__()
        if first_stride not in (1, 4):
            raise Distill3dError(f"DepthEncoder first_stride must be 1 or 4, got {first_stride}")
        step = 2 if first_stride == 4 else 1
        self.stem = nn.Sequential(_ConvBNReLU(in_channels, width, stride=step), _ConvBNReLU(width, width, stride=step))
        widths = [width * 2**k for k in range(4)]
        self.stages = nn.ModuleList(
            nn.Sequential(_ConvBNReLU(c_in, c_out, stride=2), _ConvBNReLU(c_out, c_out))
            for c_in, c_out in itertools.pairwise(widths)
        )
        self.widths = widths

    def forward(self, encoded_depth: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(encoded_depth)
        maps = [x]
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps


class DepthFusedMono3DNet(nn.Module):
    """DSN: images (B, 3, H, W) + depth (B, 1, H, W) metres (0 = invalid) → dict of maps (B, C_k, H/4, W/4),
    the same outputs as :class:`Mono3DNet`, from image features fused with depth features.

    At each stride k the image stage map x (C_k channels) and the depth encoder's map d (D_k) are fused as a
    residual, ``x + BN(Conv1×1([x, d]))`` with the BN's scale initialised to 0: the DSN starts from exactly the
    (warm-started) image features and learns what depth adds. (A plain ``Conv → BN → ReLU`` mix of the
    concatenation, the first version here, scrambled the warm-started features: after 464 steps that DSN was a
    worse detector than the MDN it teaches — validation AP_BEV 5 vs 12–19.) The fused stages go through the
    DSN's own neck and head. [reconstruction: the paper does not specify the fusion, METHODS.md §3.2]

    Args:
        encoder: the image :class:`ResNet` (may be the MDN's, see :class:`SelfDistilledMono3D`).
        depth_width: channels of the depth encoder's first stage (doubling per stage).
        Others as :class:`Mono3DNet`.
    """

    def __init__(self, encoder: ResNet, num_classes: int = 3, num_bins: int = 12, depth_width: int = 16,
                 neck_channels: int = 64, head_channels: int = 64, initial_depth: float = 1.0,
                 shared_trunk: bool = False, dimension_bound: float | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.output_stride = encoder_stride(encoder)
        image_channels = stage_channels(encoder)
        self.depth_encoder = DepthEncoder(depth_width, first_stride=self.output_stride)
        self.fusions = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c + d, c, 1, bias=False), nn.BatchNorm2d(c))
            for c, d in zip(image_channels, self.depth_encoder.widths, strict=True))
        for fusion in self.fusions:
            nn.init.zeros_(fusion[1].weight)  # the residual starts at 0: fused = image features
        self.neck = TopDownNeck(image_channels, neck_channels)
        self.head = Mono3DHead(neck_channels, num_classes, num_bins, head_channels, initial_depth, shared_trunk,
                               dimension_bound)

    def forward_stages(self, image_stage_maps: list[torch.Tensor], depth: torch.Tensor,
                       return_features: bool = False) -> dict[str, torch.Tensor]:
        """Maps from precomputed ``encoder.feature_maps(images)`` and the depth (B, 1, H, W) metres."""
        depth_maps = self.depth_encoder(encode_depth(depth.to(image_stage_maps[0].dtype)))
        fused = []
        for fusion, image_map, depth_map in zip(self.fusions, image_stage_maps, depth_maps, strict=True):
            if depth_map.shape[-2:] != image_map.shape[-2:]:
                depth_map = F.interpolate(depth_map, size=image_map.shape[-2:], mode="bilinear", align_corners=False)
            fused.append(image_map + fusion(torch.cat([image_map, depth_map], dim=1)))
        features = self.neck(fused)
        outputs = self.head(features)
        if return_features:
            outputs["features"] = features
        return outputs

    def forward(self, images: torch.Tensor, depth: torch.Tensor,
                return_features: bool = False) -> dict[str, torch.Tensor]:
        return self.forward_stages(self.encoder.feature_maps(images), depth, return_features)


class SelfDistilledMono3D(nn.Module):
    """MDN and DSN trained jointly: ``forward(images, depth=None)`` → ``{"mdn": maps, "dsn": maps}`` (``"dsn"``
    absent when ``depth`` is None, e.g. at inference, or when there is no DSN; only the MDN is needed then).

    Args:
        mdn: the image-only detector.
        dsn: the depth-fused detector, or None (MDN alone, e.g. an ablation without self-distillation).
        shared_encoder: the two branches share the MDN's image encoder: ``dsn.encoder`` is replaced by
            ``mdn.encoder`` (if it is another module, that one is dropped); the encoder then runs once per batch
            and both branches' losses train it. False: each branch keeps its own encoder (they must differ).
    """

    def __init__(self, mdn: Mono3DNet, dsn: DepthFusedMono3DNet | None = None, shared_encoder: bool = True) -> None:
        super().__init__()
        if dsn is not None:
            if mdn.output_stride != dsn.output_stride:
                raise Distill3dError(f"MDN and DSN output strides differ ({mdn.output_stride} vs "
                                     f"{dsn.output_stride})")
            if shared_encoder and dsn.encoder is not mdn.encoder:
                if stage_channels(dsn.encoder) != stage_channels(mdn.encoder):
                    raise Distill3dError("shared_encoder=True needs MDN and DSN encoders of the same stage widths, "
                                         f"got {stage_channels(mdn.encoder)} and {stage_channels(dsn.encoder)}")
                dsn.encoder = mdn.encoder
            if not shared_encoder and dsn.encoder is mdn.encoder:
                raise Distill3dError("shared_encoder=False but the DSN uses the MDN's encoder; give it its own")
        self.mdn, self.dsn, self.shared_encoder = mdn, dsn, shared_encoder
        self.output_stride = mdn.output_stride

    def mdn_parameters(self) -> list[nn.Parameter]:
        """The MDN's parameters (with the shared encoder, if any)."""
        return list(self.mdn.parameters())

    def dsn_parameters(self) -> list[nn.Parameter]:
        """The DSN's own parameters: all of them without a shared encoder, else all but the (MDN's) encoder.
        Empty without a DSN."""
        if self.dsn is None:
            return []
        mdn_ids = {id(p) for p in self.mdn.parameters()}
        return [p for p in self.dsn.parameters() if id(p) not in mdn_ids]

    def forward(self, images: torch.Tensor, depth: torch.Tensor | None = None,
                return_features: bool = False) -> dict[str, dict[str, torch.Tensor]]:
        stage_maps = self.mdn.encoder.feature_maps(images)
        outputs = {"mdn": self.mdn.forward_stages(stage_maps, return_features)}
        if depth is not None and self.dsn is not None:
            image_maps = stage_maps if self.shared_encoder else self.dsn.encoder.feature_maps(images)
            outputs["dsn"] = self.dsn.forward_stages(image_maps, depth, return_features)
        return outputs


def build_self_distilled_mono3d(architecture: str = "resnet18", base_width: int = 32, num_classes: int = 3,
                                num_bins: int = 12, shared_encoder: bool = True, depth_width: int = 16,
                                neck_channels: int = 64, head_channels: int = 64, initial_depth: float = 1.0,
                                shared_trunk: bool = False,
                                dimension_bound: float | None = None) -> SelfDistilledMono3D:
    """MDN + DSN on fresh ResNet(s) of ``architecture`` (``resnet18`` …) and ``base_width`` (standard stem,
    output stride 4)."""
    encoder = ResNet(architecture, num_classes=0, base_width=base_width)
    mdn = Mono3DNet(encoder, num_classes, num_bins, neck_channels, head_channels, initial_depth, shared_trunk,
                    dimension_bound)
    dsn_encoder = encoder if shared_encoder else ResNet(architecture, num_classes=0, base_width=base_width)
    dsn = DepthFusedMono3DNet(dsn_encoder, num_classes, num_bins, depth_width, neck_channels, head_channels,
                              initial_depth, shared_trunk, dimension_bound)
    return SelfDistilledMono3D(mdn, dsn, shared_encoder)
