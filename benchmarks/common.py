"""Shared helpers for benchmarks: where results go, how a report records the command that made it."""

from __future__ import annotations

import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


#: Coarse azimuth bins used by the Pose CKD diagnostics: 12 bins of 30° (the Acc@π/6 tolerance).
AZIMUTH_BINS = 12


def azimuth_bin(azimuth: torch.Tensor) -> torch.Tensor:
    """30° bin index (0..11, int64) of azimuths (N,) in radians, any sign (wrapped into [0, 2π) first)."""
    wrapped = azimuth.double().remainder(2 * math.pi)
    return (wrapped / (2 * math.pi / AZIMUTH_BINS)).long().clamp(max=AZIMUTH_BINS - 1)


def machine_line() -> str:
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}, python {platform.python_version()}")


def write_report(name: str, body: str, out_dir: Path | None = None) -> Path:
    """Write ``<out_dir>/<name>.md`` (default ``benchmarks/results``) with the command, date and machine in its
    header."""
    out_dir = RESULTS if out_dir is None else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks." + Path(sys.argv[0]).stem + " " + " ".join(sys.argv[1:])
    header = (f"<!-- written by benchmarks/{Path(sys.argv[0]).name}; do not edit by hand -->\n"
              f"Command: `{command.strip()}`  \nDate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  \n"
              f"Machine: {machine_line()}\n\n")
    path = out_dir / f"{name}.md"
    path.write_text(header + body)
    return path


def mean_std(values: list[float], digits: int = 1) -> str:
    """``mean ± sample std`` of one metric over seeds (the bare value for a single seed)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def summarize(values: list[float]) -> dict[str, float | list[float]]:
    """``{"mean", "std", "per_seed"}`` of one metric over seeds (sample std; 0 for a single seed)."""
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "per_seed": values}


def write_results_json(name: str, arms: dict[str, dict[str, list[float]]], out_dir: Path | None = None,
                       extra: dict | None = None) -> Path:
    """Write ``<out_dir>/<name>.json`` in the results schema:
    ``{"command": ..., "arms": {ARM: {METRIC: {"mean", "std", "per_seed"}}}}`` (plus ``extra`` keys)."""
    import json

    out_dir = RESULTS if out_dir is None else Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks." + Path(sys.argv[0]).stem + " " + " ".join(sys.argv[1:])
    document = {"command": command.strip(),
                "arms": {arm: {metric: summarize(values) for metric, values in metrics.items()}
                         for arm, metrics in arms.items()},
                **(extra or {})}
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
