"""Shared test set-up: one torch thread (tests run beside other processes), and the ../shared locator."""

from __future__ import annotations

import os
import subprocess
import sys
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


#: Fragments of a torchrun failure that come from the machine's network (a port taken between the launcher's probe
#: and its bind, a connection reset under load), not from the code under test: such a launch is retried once.
TRANSIENT_LAUNCH_ERRORS = ("EADDRINUSE", "address already in use", "DistNetworkError", "Connection reset by peer",
                           "Connection refused", "RendezvousConnectionError", "Broken pipe")


def torchrun(*args: object, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node=2 ARGS`` with one torch thread per process.

    Fails the calling test with the launcher's stderr (its last 4,000 characters) when the launch exits non-zero;
    a failure whose stderr names a network fault (``TRANSIENT_LAUNCH_ERRORS``) is retried once first. Tests that
    expect a non-zero exit call :func:`torchrun_unchecked`."""
    result = torchrun_unchecked(*args, timeout=timeout)
    if result.returncode != 0 and any(text in result.stderr for text in TRANSIENT_LAUNCH_ERRORS):
        result = torchrun_unchecked(*args, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"torchrun exited with {result.returncode}; its stderr ends:\n{result.stderr[-4000:]}",
                    pytrace=False)
    return result


def torchrun_unchecked(*args: object, timeout: float) -> subprocess.CompletedProcess[str]:
    """The launch of :func:`torchrun` without the exit-status check (stdout and stderr captured as text)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *map(str, args)]
    return subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=timeout,
                          capture_output=True, text=True)
