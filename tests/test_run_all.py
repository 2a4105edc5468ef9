"""`make bench` (benchmarks/run_all.py) re-runs every committed report with the command written in its header,
except the shipped encoder's report (rebuilding the weights is a separate, deliberate step)."""

from __future__ import annotations

from pathlib import Path


def test_make_bench_reproduces_every_committed_report() -> None:
    from benchmarks.run_all import BENCHMARKS, committed_commands

    planned = {" ".join(arguments) for arguments in BENCHMARKS}
    committed = committed_commands(Path(__file__).parents[1] / "benchmarks" / "results")
    missing = {c for c in committed if not c.startswith("benchmarks.pretrain_backbone")} - planned
    assert not missing, f"committed reports that make bench would not regenerate: {sorted(missing)}"
