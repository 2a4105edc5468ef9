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


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """Run the ``distill3d`` command line in this process → (exit status, stdout, stderr)."""
    from distill3d.cli.main import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def shared_path(*parts: str) -> Path:
    """Path under ``tests/golden`` (for ``"golden", ...`` parts copied there) or ../shared; skips the calling test
    with a clear reason when it is absent."""
    if parts and parts[0] == "golden" and GOLDEN.joinpath(*parts[1:]).exists():
        return GOLDEN.joinpath(*parts[1:])
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference material {path} is absent (../shared ships only with the development checkout)")
    return path
