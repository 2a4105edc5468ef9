"""FreiHAND (Zimmermann et al., ICCV 2019) from a local copy, and its submission format.

Layout of the official download (``FreiHAND_pub_v2``)::

    ROOT/training_K.json        [N][3][3]   intrinsics of the 224×224 crops (N = 32,560)
    ROOT/training_xyz.json      [N][21][3]  camera-frame joints, metres (FreiHAND joint order)
    ROOT/training_scale.json    [N]         reference bone length (middle MCP → PIP), metres
    ROOT/training/rgb/%08d.jpg  4·N images: frame i in background version k is image i + k·N
    ROOT/evaluation_K.json, evaluation_scale.json, evaluation/rgb/%08d.jpg  (3,960 frames)
    ROOT/evaluation_xyz.json    optional (released with the evaluation annotations)

Submissions for the Codalab server (and ``eval.py`` of ``lmb-freiburg/freihand``) are one JSON file holding
``[xyz_list, verts_list]``: per evaluation frame a (21, 3) joint list and a (778, 3) MANO vertex list, metres.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from distill3d.errors import DataFormatError, Distill3dError
from distill3d.files import atomic_write_text, read_json

__all__ = [
    "FREIHAND_IMAGE_SIZE",
    "FREIHAND_NUM_VERTICES",
    "FreiHANDDataset",
    "read_freihand_predictions",
    "write_freihand_predictions",
]

FREIHAND_IMAGE_SIZE = 224
FREIHAND_NUM_VERTICES = 778
_SPLITS = ("training", "evaluation")


def _numeric_array(path: Path, data: Any, what: str) -> np.ndarray:
    try:
        return np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise DataFormatError(path, f"{what} must be numeric arrays of one shape") from None


def _load_json_array(path: Path, trailing_shape: tuple[int, ...]) -> np.ndarray:
    """A JSON list of arrays of ``trailing_shape`` → float64 array (N, *trailing_shape); errors name the file."""
    data = read_json(path, "file not found (expected part of a FreiHAND download)")
    if not isinstance(data, list):
        raise DataFormatError(path, f"expected a JSON list, got {type(data).__name__}")
    array = _numeric_array(path, data, f"entries of shape {trailing_shape}")
    if array.shape[1:] != trailing_shape or array.ndim != 1 + len(trailing_shape):
        raise DataFormatError(path, f"expected entries of shape {trailing_shape}, got array of shape {array.shape}")
    if not np.isfinite(array).all():
        raise DataFormatError(path, "contains non-finite values")
    return array


def _check_intrinsics(path: Path, K: np.ndarray) -> None:
    """Every K must be a pinhole camera: positive focal lengths, last row (0, 0, 1)."""
    bad = (K[:, 0, 0] <= 0) | (K[:, 1, 1] <= 0) | np.any(K[:, 2] != np.array([0.0, 0.0, 1.0]), axis=1)
    if np.any(bad):
        index = int(np.argmax(bad))
        raise DataFormatError(path, f"entry {index} is not a camera matrix (focal ≤ 0 or last row ≠ 0 0 1)")


class FreiHANDDataset(Dataset):
    """FreiHAND samples: image (3, S, S) float32 in [0, 1], K (3, 3) (rescaled to S), scale () m, index (), and
    when the split has annotations joints_xyz (21, 3) m and joints_uv (21, 2) px (at S).

    Args:
        root: folder of the download (see the module docstring).
        split: ``training`` or ``evaluation``.
        background_versions: which of the 4 training background versions to serve (image ``i + k·N``);
            sample ``n`` is frame ``n mod N`` of version ``background_versions[n // N]``. Versions whose images
            are absent (an export of the hands world writes one) are left out with a warning.
        image_size: output side S (images are resized from 224 with bilinear filtering; K follows).
        frames: optional subset of frame indices (e.g. a labelled fraction).
    """

    def __init__(self, root: str | Path, split: str = "training", background_versions: Sequence[int] = (0,),
                 image_size: int = FREIHAND_IMAGE_SIZE, frames: Sequence[int] | None = None) -> None:
        if split not in _SPLITS:
            raise Distill3dError(f"FreiHAND split must be one of {_SPLITS}, got {split!r}")
        self.root, self.split, self.image_size = Path(root), split, int(image_size)
        if not self.root.is_dir():
            raise Distill3dError(f"{self.root}: FreiHAND folder not found")
        self.K = _load_json_array(self.root / f"{split}_K.json", (3, 3))
        self.scale = _load_json_array(self.root / f"{split}_scale.json", ())
        xyz_path = self.root / f"{split}_xyz.json"
        self.xyz = _load_json_array(xyz_path, (21, 3)) if (split == "training" or xyz_path.is_file()) else None
        self.num_frames = len(self.K)
        _check_intrinsics(self.root / f"{split}_K.json", self.K)
        if np.any(self.scale <= 0):
            raise DataFormatError(self.root / f"{split}_scale.json",
                                  f"entry {int(np.argmax(self.scale <= 0))} is not a positive length")
        for name, array in (("scale", self.scale), ("xyz", self.xyz)):
            if array is not None and len(array) != self.num_frames:
                raise DataFormatError(self.root / f"{split}_{name}.json",
                                      f"has {len(array)} entries but {split}_K.json has {self.num_frames}")
        versions = tuple(int(v) for v in background_versions)
        if split == "evaluation":
            versions = (0,)
        if not versions or any(v < 0 or v > 3 for v in versions):
            raise Distill3dError(f"background_versions must be a non-empty subset of 0..3, got {versions}")
        self.versions = versions
        rgb = self.root / split / "rgb"
        if self.num_frames and (rgb / f"{0:08d}.jpg").is_file():  # the release has 4 versions, a world export 1
            present = tuple(v for v in versions if (rgb / f"{v * self.num_frames:08d}.jpg").is_file())
            if present != versions:
                warnings.warn(f"{rgb}: has background versions {present or '(none)'} of the requested {versions}; "
                              f"serving those", stacklevel=2)
                self.versions = versions = present or (0,)
        self.frames = np.arange(self.num_frames) if frames is None else np.asarray(frames, dtype=np.int64)
        if len(self.frames) and (self.frames.min() < 0 or self.frames.max() >= self.num_frames):
            raise Distill3dError(f"frames must lie in 0..{self.num_frames - 1}")

    def __len__(self) -> int:
        return len(self.frames) * len(self.versions)

    def image_path(self, index: int) -> Path:
        frame = int(self.frames[index % len(self.frames)])
        version = self.versions[index // len(self.frames)]
        return self.root / self.split / "rgb" / f"{frame + version * self.num_frames:08d}.jpg"

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        frame = int(self.frames[index % len(self.frames)])
        path = self.image_path(index)
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
                factor = (self.image_size / rgb.width, self.image_size / rgb.height)
                if rgb.size != (self.image_size, self.image_size):
                    rgb = rgb.resize((self.image_size, self.image_size), Image.BILINEAR)
                pixels = np.asarray(rgb, dtype=np.float32) / 255.0
        except FileNotFoundError:
            raise DataFormatError(path, "image not found") from None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:  # PIL's error types
            raise DataFormatError(path, f"unreadable image ({err})") from None
        K = self.K[frame].copy()
        K[0] *= factor[0]
        K[1] *= factor[1]
        # pixel centres at integers: resizing by f maps pixel x to (x + 0.5)·f − 0.5
        K[0, 2] += 0.5 * factor[0] - 0.5
        K[1, 2] += 0.5 * factor[1] - 0.5
        sample: dict[str, torch.Tensor] = {
            "image": torch.from_numpy(pixels).permute(2, 0, 1).contiguous(),
            "K": torch.from_numpy(K).float(),
            "scale": torch.tensor(self.scale[frame], dtype=torch.float32),
            "index": torch.tensor(index, dtype=torch.int64),
        }
        if self.xyz is not None:
            xyz = self.xyz[frame]
            projected = xyz @ K.T
            sample["joints_xyz"] = torch.from_numpy(xyz).float()
            sample["joints_uv"] = torch.from_numpy(projected[:, :2] / projected[:, 2:3]).float()
        return sample


def write_freihand_predictions(path: str | Path, xyz: torch.Tensor | np.ndarray,
                               verts: torch.Tensor | np.ndarray | None = None) -> Path:
    """Write ``[xyz_list, verts_list]`` (FreiHAND ``pred.py::dump``): xyz (N, 21, 3) m, verts (N, 778, 3) m.

    Without ``verts`` zero meshes are written so the file is accepted by ``eval.py``; its mesh scores are then
    meaningless (this library predicts joints only).
    """
    xyz_array = np.asarray(xyz, dtype=np.float64)
    if xyz_array.ndim != 3 or xyz_array.shape[1:] != (21, 3):
        raise Distill3dError(f"xyz must have shape (N, 21, 3), got {xyz_array.shape}")
    if verts is None:
        verts_array = np.zeros((len(xyz_array), FREIHAND_NUM_VERTICES, 3))
    else:
        verts_array = np.asarray(verts, dtype=np.float64)
        if verts_array.shape != (len(xyz_array), FREIHAND_NUM_VERTICES, 3):
            raise Distill3dError(f"verts must have shape ({len(xyz_array)}, 778, 3), got {verts_array.shape}")
    path = Path(path)
    atomic_write_text(path, json.dumps([xyz_array.tolist(), verts_array.tolist()]))
    return path


def read_freihand_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``pred.json`` → (xyz (N, 21, 3), verts (N, 778, 3)); errors name the file."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, list) or len(data) != 2:
        raise DataFormatError(path, "expected [xyz_list, verts_list]")
    xyz = _numeric_array(path, data[0], "the xyz list's entries")
    verts = _numeric_array(path, data[1], "the verts list's entries")
    if xyz.ndim != 3 or xyz.shape[1:] != (21, 3):
        raise DataFormatError(path, f"xyz entries must be (21, 3), got {xyz.shape}")
    if verts.shape != (len(xyz), FREIHAND_NUM_VERTICES, 3):
        raise DataFormatError(path, f"verts must be ({len(xyz)}, 778, 3), got {verts.shape}")
    if not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(verts))):
        raise DataFormatError(path, "holds non-finite coordinates")
    return xyz, verts
