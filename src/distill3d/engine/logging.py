"""Metric logging: a long-format CSV (always) and TensorBoard (when the ``tensorboard`` package is installed)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

CSV_COLUMNS = ("epoch", "step", "metric", "value")


class MetricLogger:
    """Appends ``(epoch, step, metric, value)`` rows to ``<run_dir>/metrics.csv``.

    On resume the file is truncated to the rows of epochs ``<= start_epoch``, so an interrupted and resumed
    run has the same log as an uninterrupted one.
    """

    def __init__(self, run_dir: Path, enabled: bool = True, keep_until_epoch: int | None = None) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.csv"
        self._tb = None
        if not enabled:
            return
        kept = []
        if keep_until_epoch is not None and self.path.exists():
            kept = [row for row in read_metrics(self.path) if row[0] <= keep_until_epoch]
        self._write_rows(kept, mode="w")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        except Exception:  # tensorboard is optional
            self._tb = None

    def _write_rows(self, rows: list[tuple[int, int, str, float]], mode: str) -> None:
        with self.path.open(mode, newline="") as handle:
            writer = csv.writer(handle)
            if mode == "w":
                writer.writerow(CSV_COLUMNS)
            writer.writerows(rows)

    def log(self, epoch: int, step: int, values: dict[str, float]) -> None:
        if not self.enabled or not values:
            return
        self._write_rows([(epoch, step, k, float(v)) for k, v in values.items()], mode="a")
        if self._tb is not None:
            for key, value in values.items():
                if math.isfinite(float(value)):
                    self._tb.add_scalar(key, float(value), step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> list[tuple[int, int, str, float]]:
    """Rows of a ``metrics.csv`` as ``(epoch, step, metric, value)``."""
    with Path(path).open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(header) != CSV_COLUMNS:
            return []
        return [(int(e), int(s), m, float(v)) for e, s, m, v in reader]
