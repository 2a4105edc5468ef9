"""Shared helpers for benchmarks: where results go, how a report records the command that made it."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine_line() -> str:
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}, python {platform.python_version()}")


def write_report(name: str, body: str) -> Path:
    """Write ``benchmarks/results/<name>.md`` with the command, date and machine in its header."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks." + Path(sys.argv[0]).stem + " " + " ".join(sys.argv[1:])
    header = (f"<!-- written by benchmarks/{Path(sys.argv[0]).name}; do not edit by hand -->\n"
              f"Command: `{command.strip()}`  \nDate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  \n"
              f"Machine: {machine_line()}\n\n")
    path = RESULTS / f"{name}.md"
    path.write_text(header + body)
    return path
