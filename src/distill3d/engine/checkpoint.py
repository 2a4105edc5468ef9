"""Checkpoints and other run files: atomic writes, safe loading.

Every file the engine writes goes to a temporary file in the same folder first and is then renamed over
the target (``os.replace`` is atomic on POSIX), so a crash never leaves a half-written checkpoint.
Checkpoints are loaded with ``torch.load(weights_only=True)``: they hold only tensors and plain Python
values, never pickled objects.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from distill3d.errors import Distill3dError
from distill3d.files import atomic_write_bytes


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Serialise ``state`` (tensors, state dicts, numbers, strings) with torch.save, atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise Distill3dError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise Distill3dError(f"{path}: not a readable distill3d checkpoint ({first_line})") from None
    if not isinstance(state, dict):
        raise Distill3dError(f"{path}: not a distill3d checkpoint (top level is {type(state).__name__})")
    return state


def resolve_checkpoint(run_or_checkpoint: str | Path, prefer: str = "best.pt") -> Path:
    """A checkpoint file, or a run folder → its ``best.pt`` if present, else ``last.pt``."""
    path = Path(run_or_checkpoint)
    if path.is_dir():
        for name in (prefer, "last.pt"):
            if (path / name).is_file():
                return path / name
        raise Distill3dError(f"{path}: run folder has no checkpoint (expected {prefer} or last.pt)")
    if not path.is_file():
        raise Distill3dError(f"{path}: no such run folder or checkpoint")
    return path
