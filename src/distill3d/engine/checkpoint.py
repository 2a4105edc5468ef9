"""Checkpoints and other run files: atomic writes, safe loading, integrity checks.

Every file the engine writes goes to a temporary file in the same folder first and is then renamed over
the target (``os.replace`` is atomic on POSIX), so a crash never leaves a half-written checkpoint.
Checkpoints are loaded with ``torch.load(weights_only=True)``: they hold only tensors and plain Python
values, never pickled objects.

Integrity: a checkpoint is torch's zip archive, which records a CRC-32 checksum of every member (each tensor's
bytes, the pickled structure); :func:`load_checkpoint` verifies all of them before unpickling, so a flipped
byte anywhere in the tensor data is an error naming the file instead of silently wrong weights.

``best.pt`` and ``last.pt``: ``last.pt`` records ``best_epoch``; :func:`best_checkpoint_problem` says when
``best.pt`` does not hold that epoch (a kill between the two writes), which resume repairs and eval refuses.
"""

from __future__ import annotations

import io
import zipfile
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


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def load_weights(model: torch.nn.Module, weights: dict[str, Any], source: str) -> torch.nn.Module:
    """``model.load_state_dict(weights)`` (strict); a mismatch is one :class:`Distill3dError` line naming
    ``source`` (the checkpoint) and the first problem."""
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, ValueError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        # torch's first line is only "Error(s) in loading state_dict for X:"; the problem is on the next one
        problem = lines[1] if len(lines) > 1 and lines[0].endswith(":") else _first_line(err)
        raise Distill3dError(f"{source}: weights do not fit the model of its config ({problem[:200]})") from None
    return model


def _read_verified(path: Path) -> bytes:
    """The bytes of checkpoint ``path`` after checking every zip member's CRC-32."""
    if not path.is_file():
        raise Distill3dError(f"{path}: checkpoint not found")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise Distill3dError(f"{path}: cannot read checkpoint ({_first_line(err)})") from None
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as err:
        raise Distill3dError(f"{path}: not a readable distill3d checkpoint ({_first_line(err)})") from None
    if damaged is not None:
        raise Distill3dError(f"{path}: checkpoint is corrupt (checksum mismatch in '{damaged}'); use another one")
    return raw


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (checksums verified, ``weights_only=True``)."""
    path = Path(path)
    raw = _read_verified(path)
    try:
        state = torch.load(io.BytesIO(raw), map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise Distill3dError(f"{path}: not a readable distill3d checkpoint ({_first_line(err)})") from None
    if not isinstance(state, dict):
        raise Distill3dError(f"{path}: not a distill3d checkpoint (top level is {type(state).__name__})")
    return state


def checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The non-tensor top-level entries of a checkpoint (epoch, best_epoch, monitor, …), read lazily
    (memory-mapped: the tensors are not loaded; no checksum check)."""
    path = Path(path)
    if not path.is_file():
        raise Distill3dError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise Distill3dError(f"{path}: not a readable distill3d checkpoint ({_first_line(err)})") from None
    if not isinstance(state, dict):
        raise Distill3dError(f"{path}: not a distill3d checkpoint (top level is {type(state).__name__})")
    return {k: v for k, v in state.items() if isinstance(v, (int, float, str, type(None)))}


def best_checkpoint_problem(run_dir: str | Path) -> tuple[str, bool] | None:
    """None when ``run_dir/best.pt`` holds the best epoch that ``last.pt`` records, else (what is wrong,
    whether ``last.pt`` can repair it: its own epoch is the best one)."""
    run_dir = Path(run_dir)
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    if not last.is_file():
        return None
    info = checkpoint_info(last)
    best_epoch = info.get("best_epoch")
    if best_epoch is None:
        return None
    repairable = info.get("epoch") == best_epoch
    if not best.is_file():
        return f"{best} is missing, but {last} records the best epoch {best_epoch}", repairable
    try:
        held = checkpoint_info(best).get("epoch")
    except Distill3dError as err:
        return str(err), repairable
    if held != best_epoch:
        return (f"{best} holds epoch {held}, but {last} records the best epoch {best_epoch} (an interrupted save)",
                repairable)
    return None


def resolve_checkpoint(run_or_checkpoint: str | Path, prefer: str = "best.pt") -> Path:
    """A checkpoint file, or a run folder → its ``best.pt`` if present, else ``last.pt``.

    A run folder whose ``best.pt`` does not hold the best epoch recorded by ``last.pt`` is refused (it would
    evaluate the wrong epoch): resume the run to repair it, or name ``last.pt`` explicitly.
    """
    path = Path(run_or_checkpoint)
    if path.is_dir():
        if prefer == "best.pt":
            problem = best_checkpoint_problem(path)
            if problem is not None:
                message, repairable = problem
                fix = f"repair it with 'distill3d train --resume {path}' or" if repairable else "to evaluate it,"
                raise Distill3dError(f"{message}; {fix} pass {path / 'last.pt'} explicitly")
        for name in (prefer, "last.pt"):
            if (path / name).is_file():
                return path / name
        raise Distill3dError(f"{path}: run folder has no checkpoint (expected {prefer} or last.pt)")
    if not path.is_file():
        raise Distill3dError(f"{path}: no such run folder or checkpoint")
    return path
