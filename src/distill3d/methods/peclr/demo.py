"""Single-image prediction with a fine-tuned PeCLR model (the demo itself is in :mod:`distill3d.cli.demos`)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from distill3d.errors import DataFormatError, Distill3dError
from distill3d.geometry.hand25d import hand25d_to_xyz, root_depth_from_bones
from distill3d.geometry.hand_skeleton import FINGERS, PARENTS
from distill3d.methods.peclr.task import (
    MEAN_BONE_UNITS,
    ROOT_DEPTH_RANGE,
    FinetuneTask,
    Options,
    normalise_images,
)
from distill3d.viz import draw_hand_skeleton, save_image

__all__ = ["predict", "predict_hand"]

DEFAULT_REFERENCE_BONE_M = 0.042
"""Reference bone (middle MCP → PIP) length assumed by :func:`predict_hand` when none is given (adult mean)."""


def _load_finetuned(checkpoint: str | Path | dict[str, Any]) -> tuple[torch.nn.Module, Options]:
    """The fine-tuned model of a checkpoint path/run folder or of an already loaded checkpoint state."""
    from distill3d.engine.checkpoint import load_checkpoint, resolve_checkpoint
    from distill3d.engine.config import validate_section

    if isinstance(checkpoint, dict):
        path, state = "checkpoint", checkpoint
    else:
        path = resolve_checkpoint(checkpoint)
        state = load_checkpoint(path)
    config = state.get("config", {})
    if config.get("method") != "peclr" or config.get("options", {}).get("stage") != "finetune":
        raise Distill3dError(f"{path}: not a peclr fine-tuning checkpoint (method: peclr, stage: finetune)")
    head_weight = state["model"].get("head.weight")
    head = "linear" if head_weight is not None and head_weight.dim() == 2 else "heatmap"  # older runs: linear
    options = validate_section(Options, {**config["options"], "head": head, "pretrained_checkpoint": None,
                                         "imagenet_checkpoint": None, "pretrained_backbone": None}, "options")
    model = FinetuneTask(options, int(config.get("seed", 0))).build_model()
    model.load_state_dict(state["model"])
    return model.eval(), options


@lru_cache(maxsize=4)
def _freihand_split(root: Path, split: str, stamp: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """K (N, 3, 3) and reference bones (N,) of a FreiHAND-layout split, validated by the loader (errors name
    the file); ``stamp`` (the files' mtimes) keys the cache."""
    from distill3d.data.freihand import FreiHANDDataset

    del stamp
    data = FreiHANDDataset(root, split)
    return data.K, data.scale


def _freihand_entry(image_path: Path) -> tuple[np.ndarray, float, Path] | None:
    """(K (3, 3) px, reference bone m, K file) of an image inside a FreiHAND-layout folder (a download or a
    ``distill3d world export hands``): ``ROOT/<split>/rgb/<id>.jpg`` is frame ``id mod N`` of
    ``ROOT/<split>_K.json`` and ``<split>_scale.json`` (FreiHAND's 4 background versions share a frame's
    camera). None for an image elsewhere."""
    rgb = image_path.parent
    split, root = rgb.parent.name, rgb.parent.parent
    if rgb.name != "rgb" or split not in ("training", "evaluation") or not image_path.stem.isdigit():
        return None
    K_path, scale_path = root / f"{split}_K.json", root / f"{split}_scale.json"
    if not (K_path.is_file() and scale_path.is_file()):
        return None
    K, scale = _freihand_split(root.resolve(), split, (K_path.stat().st_mtime_ns, scale_path.stat().st_mtime_ns))
    if not len(K):
        raise DataFormatError(K_path, "holds no camera matrix")
    frame = int(image_path.stem) % len(K)
    return K[frame].copy(), float(scale[frame]), K_path


def _intrinsics_for(image_path: Path, width: int, height: int) -> tuple[np.ndarray, Path | None]:
    """K of ``image_path`` and the file it came from, searched in this order:

    1. ``<stem>_K.npy`` beside the image (FreiHAND demo layout ``N_img.jpg`` + ``N_K.npy``; ``N_img`` → ``N``);
    2. the FreiHAND layout (download or ``distill3d world export hands``): ``ROOT/<split>/rgb/<id>.jpg`` takes
       entry ``id mod N`` of ``ROOT/<split>_K.json``;
    3. else a default (focal 1.6·width px, centred principal point: FreiHAND's median camera), file ``None``.
    """
    stem = image_path.stem.removesuffix("_img")
    for candidate in (image_path.with_name(f"{stem}_K.npy"), image_path.with_name(f"{image_path.stem}_K.npy")):
        if candidate.is_file():
            try:
                K = np.asarray(np.load(candidate, allow_pickle=False), dtype=np.float64)
            except (OSError, ValueError, TypeError, EOFError) as err:
                raise DataFormatError(candidate, f"not a readable .npy intrinsics matrix ({err})") from None
            if K.shape != (3, 3):
                raise DataFormatError(candidate, f"expected a (3, 3) intrinsics matrix, got {K.shape}")
            if not (np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0 and np.allclose(K[2], [0, 0, 1])):
                raise DataFormatError(candidate, "not a camera matrix (finite, positive focals, last row 0 0 1)")
            return K, candidate
    entry = _freihand_entry(image_path)
    if entry is not None:
        return entry[0], entry[2]
    focal = 1.6 * width
    return np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]]), None


def predict_hand(checkpoint: str | Path | dict[str, Any], image_paths: Sequence[str | Path], out_dir: str | Path,
                 reference_bone_m: float | None = None) -> list[dict[str, Any]]:
    """``distill3d predict`` for a peclr fine-tuned checkpoint on hand-centred crops (like FreiHAND's 224×224).

    Draws the predicted 2D skeleton on each image (``<out_dir>/<stem>_skeleton.png``) and returns per image a
    dict: ``image``, ``png``, ``joints_uv`` (21, 2) px in the original image, ``joints_xyz`` (21, 3) metres
    (camera frame, lifted from the 2.5D prediction with K and the reference bone), ``K`` (3, 3), ``K_file``
    (where K came from, or None), ``assumed_K`` (bool) and ``reference_bone_m``.

    K: ``<stem>_K.npy`` beside the image, else the FreiHAND layout's ``<split>_K.json`` for an image
    ``ROOT/<split>/rgb/<id>.jpg`` (a download or ``distill3d world export hands``), else an assumed camera
    (:func:`_intrinsics_for`). Reference bone (middle MCP → PIP, metres): ``reference_bone_m`` when given, else
    the FreiHAND layout's ``<split>_scale.json`` entry, else :data:`DEFAULT_REFERENCE_BONE_M`.
    """
    model, options = _load_finetuned(checkpoint)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = options.image_size
    results = []
    for raw in image_paths:
        path = Path(raw)
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except (FileNotFoundError, OSError) as err:
            raise Distill3dError(f"{path}: cannot read the image ({err})") from None
        width, height = image.size
        pixels = np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
        tensor = torch.from_numpy(pixels).permute(2, 0, 1)[None]
        with torch.no_grad():
            uv_small, z_rel = model(normalise_images(tensor))
        factor = np.array([width / size, height / size])
        uv = (uv_small[0].double().numpy() + 0.5) * factor - 0.5  # back to original pixels (centres at integers)
        K, K_file = _intrinsics_for(path, width, height)
        bone_m = reference_bone_m
        if bone_m is None:
            entry = _freihand_entry(path)
            bone_m = entry[1] if entry is not None else DEFAULT_REFERENCE_BONE_M
        uv_t, K_t = torch.from_numpy(uv)[None], torch.from_numpy(K)[None]
        bone = torch.tensor([bone_m], dtype=torch.float64)
        root = (root_depth_from_bones(uv_t, z_rel.double(), K_t, MEAN_BONE_UNITS, PARENTS, ROOT_DEPTH_RANGE)
                if options.root == "bones" else None)
        xyz = hand25d_to_xyz(uv_t, z_rel.double(), K_t, bone, root_depth=root,
                             root_depth_range=ROOT_DEPTH_RANGE)[0].numpy()
        png = out_dir / f"{path.stem}_skeleton.png"
        save_image(draw_hand_skeleton(image.copy(), uv, PARENTS, list(FINGERS.values())), png)
        results.append({"image": str(path), "png": str(png), "joints_uv": uv.tolist(), "joints_xyz": xyz.tolist(),
                        "K": K.tolist(), "K_file": None if K_file is None else str(K_file),
                        "assumed_K": K_file is None, "reference_bone_m": float(bone_m)})
    return results


def predict(state: dict[str, Any], image_paths: Sequence[str | Path], out_dir: str | Path) -> list[str]:
    """``distill3d predict``: one line per image with the 3D joints (mm, camera frame) and the drawn PNG."""
    lines = []
    for result in predict_hand(state, image_paths, out_dir):
        joints = np.round(np.asarray(result["joints_xyz"]) * 1000, 1).tolist()
        note = (" (K assumed: no <stem>_K.npy beside the image, and not in a FreiHAND-layout folder)"
                if result["assumed_K"] else f" (K from {result['K_file']})")
        lines.append(f"{result['image']} → {result['png']}{note}\n  joints_xyz_mm: {joints}")
    return lines
