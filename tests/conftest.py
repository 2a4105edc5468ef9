"""Shared test set-up: one torch thread (tests run beside other processes), and the ../shared locator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
#: Copies of the synthetic golden vectors of ../shared/golden (inputs + the reference implementations' outputs), so
#: the numerics are proven on any clone; real-data material (kitti_eval_realgt, data/) stays in ../shared only.
GOLDEN = Path(__file__).resolve().parent / "golden"


def shared_path(*parts: str) -> Path:
    """Path under ``tests/golden`` (for ``"golden", ...`` parts copied there) or ../shared; skips the calling test
    with a clear reason when it is absent."""
    if parts and parts[0] == "golden" and GOLDEN.joinpath(*parts[1:]).exists():
        return GOLDEN.joinpath(*parts[1:])
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference material {path} is absent (../shared ships only with the development checkout)")
    return path
