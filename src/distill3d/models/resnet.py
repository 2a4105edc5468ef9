"""ResNet (He et al., CVPR 2016) with torchvision-compatible parameter names.

The module tree (``conv1``, ``bn1``, ``layer1``…``layer4`` of ``BasicBlock``/``Bottleneck`` with ``conv1``,
``bn1``, …, ``downsample.0/1``, and ``fc``) matches torchvision's, so a user can load their own ImageNet
checkpoint offline with :func:`load_torchvision_state_dict` — torchvision itself is not needed.
``base_width`` < 64 gives narrow variants for CPU-sized experiments; ``small_input=True`` replaces the 7×7/2
stem and max-pool with a 3×3/1 stem for 32–64 px images.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from distill3d.errors import Distill3dError


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


ARCHITECTURES: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
}


class ResNet(nn.Module):
    """Image (B, 3, H, W) → logits (B, num_classes), or pooled features (B, feature_dim) if num_classes == 0.

    Args:
        depth: one of ``resnet18/34/50/101/152``.
        num_classes: size of ``fc``; 0 makes ``fc`` the identity (feature extractor).
        base_width: channels of ``layer1`` (64 in the paper); stages double it.
        small_input: 3×3 stride-1 stem without max-pool, for 32–64 px inputs.
    """

    def __init__(self, depth: str = "resnet18", num_classes: int = 0, base_width: int = 64,
                 small_input: bool = False) -> None:
        super().__init__()
        if depth not in ARCHITECTURES:
            raise Distill3dError(f"unknown ResNet depth '{depth}' (known: {', '.join(ARCHITECTURES)})")
        block, counts = ARCHITECTURES[depth]
        self.conv1 = (nn.Conv2d(3, base_width, 3, 1, 1, bias=False) if small_input
                      else nn.Conv2d(3, base_width, 7, 2, 3, bias=False))
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        channels = base_width
        stages = []
        for index, count in enumerate(counts):
            width = base_width * 2**index
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or channels != width * block.expansion:
                downsample = nn.Sequential(nn.Conv2d(channels, width * block.expansion, 1, stride, bias=False),
                                           nn.BatchNorm2d(width * block.expansion))
            blocks = [block(channels, width, stride, downsample)]
            channels = width * block.expansion
            blocks += [block(channels, width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = channels
        self.fc = nn.Linear(channels, num_classes) if num_classes > 0 else nn.Identity()
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Dense features of the four stages for detection / dense heads: (B, 3, H, W) →
        [(B, C, H/4, W/4), (B, 2C, H/8, W/8), (B, 4C, H/16, W/16), (B, 8C, H/32, W/32)] (C = base width × expansion;
        strides halve with ``small_input``)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        maps = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            maps.append(x)
        return maps

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → pooled features (B, feature_dim)."""
        return torch.flatten(self.avgpool(self.feature_maps(images)[-1]), 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(images))


def load_torchvision_state_dict(model: ResNet, path: str | Path, strict_backbone: bool = True) -> list[str]:
    """Load a torchvision ResNet checkpoint file (``.pth``) into ``model``, skipping ``fc`` if shapes differ.

    Returns the names of the parameters that were not loaded.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state:
        state = state["state_dict"]
    own = model.state_dict()
    skipped = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    if strict_backbone and any(not k.startswith("fc.") for k in skipped):
        raise Distill3dError(f"{path}: backbone parameters do not match this ResNet: {skipped[:5]}")
    model.load_state_dict({k: v for k, v in state.items() if k not in skipped}, strict=False)
    return skipped


def save_encoder_weights(model: nn.Module, path: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """Write a feature extractor's weights (``fc`` excluded) as safetensors, floats stored as ``dtype``."""
    from safetensors.torch import save

    from distill3d.files import atomic_write_bytes

    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous()
               for k, v in model.state_dict().items() if not k.startswith("fc.")}
    atomic_write_bytes(Path(path), save(tensors))
    return Path(path)


def load_encoder_weights(model: nn.Module, path: str | Path) -> None:
    """Load weights written by :func:`save_encoder_weights` (offline, no code execution) into ``model``.

    Floats are cast to the model's dtype; every parameter and buffer except ``fc`` must be present with the
    same shape, else :class:`~distill3d.errors.Distill3dError` names the file and the first mismatches.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as error:
        raise Distill3dError(f"{path}: cannot read pretrained weights ({error})") from None
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    wrong = [k for k in own if k not in tensors or tensors[k].shape != own[k].shape]
    if wrong:
        raise Distill3dError(f"{path}: weights do not match this encoder (missing or different shape: {wrong[:4]})")
    model.load_state_dict({k: tensors[k].to(own[k].dtype) for k in own}, strict=False)
