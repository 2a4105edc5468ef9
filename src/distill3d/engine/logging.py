"""Metric logging: a long-format CSV (always) and TensorBoard (when the ``tensorboard`` package is installed)."""

from __future__ import annotations

import csv
import io
import math
import os
import time
import warnings
from pathlib import Path

from distill3d.errors import DataFormatError
from distill3d.files import atomic_write_text

CSV_COLUMNS = ("epoch", "step", "metric", "value")
#: Largest metrics.csv :func:`read_metrics` accepts (a run logs ~100 bytes per row).
MAX_METRICS_BYTES = 1 << 30


class MetricLogger:
    """Appends ``(epoch, step, metric, value)`` rows to ``<run_dir>/metrics.csv``.

    On resume the file is rewritten (atomically: a kill leaves the old or the new file, never a cut one) with
    the rows of epochs ``<= start_epoch``, so an interrupted and resumed run has the same log as an
    uninterrupted one. A torn last row (a kill mid-append) is dropped.
    """

    def __init__(self, run_dir: Path, enabled: bool = True, keep_until_epoch: int | None = None) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.csv"
        self._tb = None
        if not enabled:
            return
        kept = []
        if keep_until_epoch is not None and self.path.exists():
            try:
                kept = [row for row in read_metrics(self.path) if row[0] <= keep_until_epoch]
            except DataFormatError as err:  # keep the damaged log for the user, start a new one
                aside = self.path.with_name(f"metrics.corrupt-{time.strftime('%Y%m%d-%H%M%S')}.csv")
                os.replace(self.path, aside)
                warnings.warn(f"{err}; moved to {aside.name}, the log restarts at epoch {keep_until_epoch + 1}",
                              stacklevel=2)
        atomic_write_text(self.path, _format_rows(kept, header=True))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))
        except Exception:  # tensorboard is optional
            self._tb = None

    def log(self, epoch: int, step: int, values: dict[str, float]) -> None:
        if not self.enabled or not values:
            return
        with self.path.open("a", newline="") as handle:
            handle.write(_format_rows([(epoch, step, k, float(v)) for k, v in values.items()], header=False))
        if self._tb is not None:
            for key, value in values.items():
                if math.isfinite(float(value)):
                    self._tb.add_scalar(key, float(value), step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _format_rows(rows: list[tuple[int, int, str, float]], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue()


def read_metrics(path: str | Path) -> list[tuple[int, int, str, float]]:
    """Rows of a ``metrics.csv`` as ``(epoch, step, metric, value)``.

    A torn last row (no final newline: the run was killed while appending) is dropped; any other malformed
    row, a wrong header, a non-UTF-8 or oversized file raises :class:`DataFormatError` naming file and line.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_METRICS_BYTES:
            raise DataFormatError(path, f"{size} bytes is too large for a metrics log (limit {MAX_METRICS_BYTES})")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except IsADirectoryError:
        raise DataFormatError(path, "is a folder, expected metrics.csv") from None
    except UnicodeDecodeError as err:
        raise DataFormatError(path, f"not a UTF-8 text file ({err.reason})") from None
    lines = text.split("\n")
    torn = lines[-1] != ""  # the last line lacks its newline
    if not lines[0].strip():
        raise DataFormatError(path, "empty file (expected the header 'epoch,step,metric,value')", line=1)
    if lines[0].rstrip("\r") != ",".join(CSV_COLUMNS):
        if len(lines) == 1 and ",".join(CSV_COLUMNS).startswith(lines[0]):
            return []  # the header itself was torn
        raise DataFormatError(path, f"not a distill3d metrics log (header {lines[0][:80]!r})", line=1)
    rows = []
    body = lines[1:-1] if not torn else lines[1:]
    for number, line in enumerate(body, start=2):
        is_last = number == len(body) + 1
        try:
            fields = next(csv.reader([line]))
            epoch, step, metric, value = fields
            row = (int(epoch), int(step), metric, float(value))
            if row[0] < 0 or row[1] < 0 or not metric:
                raise ValueError("negative epoch/step or empty metric")
        except (ValueError, csv.Error, StopIteration) as err:
            if torn and is_last:
                break  # a kill mid-append: the row is incomplete
            message = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
            raise DataFormatError(path, f"malformed row {line[:80]!r} ({message})", line=number) from None
        rows.append(row)
    return rows
