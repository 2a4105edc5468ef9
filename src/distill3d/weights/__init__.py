"""Weights shipped with the package (read offline with safetensors; no code is executed on load).

* ``shapes_resnet18_w32.safetensors`` — ResNet-18 image encoder, first-stage width 32, 64 px input, pre-trained on
  category classification of the 12 *seen* categories of the shapes world (``standard`` difficulty, its own
  data seed, disjoint from every benchmark split). It plays the role ImageNet weights play in the papers (a
  generic warm start; never the evaluation task; never an unseen category). Written by
  ``python -m benchmarks.pretrain_backbone``; report in ``benchmarks/results/pretrain_backbone.md``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from distill3d.errors import Distill3dError

BUILTIN = "builtin"


def builtin_encoder_weights(backbone: str, width: int) -> Path:
    """Path of the shipped weights for a ``(backbone, width)`` image encoder, or an error naming what exists."""
    path = Path(str(resources.files(__package__) / f"shapes_{backbone}_w{width}.safetensors"))
    if not path.is_file():
        shipped = sorted(p.name for p in Path(str(resources.files(__package__))).glob("*.safetensors"))
        raise Distill3dError(f"no built-in pretrained weights for {backbone} of width {width} (shipped: {shipped}); "
                             "set options.pretrained_backbone to a safetensors file or null")
    return path


def resolve_encoder_weights(value: str | Path, backbone: str, width: int) -> Path:
    """``"builtin"`` → the shipped file for this encoder; anything else is a path to a safetensors file."""
    return builtin_encoder_weights(backbone, width) if str(value) == BUILTIN else Path(value)
