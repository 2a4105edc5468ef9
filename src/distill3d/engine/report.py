"""Run reports: a markdown summary and PNG learning curves from a run folder's ``metrics.csv``."""

from __future__ import annotations

import io
import os
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from distill3d.engine.checkpoint import checkpoint_info
from distill3d.engine.logging import read_metrics
from distill3d.errors import Distill3dError
from distill3d.files import atomic_write_bytes, atomic_write_text


@dataclass
class RunReport:
    markdown: str
    markdown_path: Path
    plot_path: Path | None


def _series(rows: list[tuple[int, int, str, float]]) -> dict[str, list[tuple[int, int, float]]]:
    series: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    for epoch, step, metric, value in rows:
        series[metric].append((epoch, step, value))
    return series


MAX_VALIDATION_PANELS = 11
"""Curves drawn at most (a KITTI evaluation logs ≈ 130 metrics; drawing each took ≈ 10 s per report)."""


def validation_panels(series: dict[str, list[tuple[int, int, float]]], monitor: str | None = None) -> list[str]:
    """The validation metrics drawn: the monitored one first, then the shortest names (the headline metrics), at
    most :data:`MAX_VALIDATION_PANELS`."""
    keys = sorted((k for k in series if k.startswith("val/")), key=lambda k: (k != monitor, len(k), k))
    return keys[:MAX_VALIDATION_PANELS]


def plot_curves(series: dict[str, list[tuple[int, int, float]]], path: Path, title: str,
                monitor: str | None = None) -> Path | None:
    """Training loss against step and the validation metrics against epoch, one panel each: the monitored one
    first, then the shortest names (the headline metrics), at most :data:`MAX_VALIDATION_PANELS`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    val_keys = validation_panels(series, monitor)
    panels = (["train/loss"] if "train/loss" in series else []) + val_keys
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, key in zip(axes.flat, panels, strict=False):
        points = series[key]
        if key.startswith("train/"):
            ax.plot([s for _, s, _ in points], [v for _, _, v in points], lw=1.2)
            ax.set_xlabel("step")
        else:
            ax.plot([e for e, _, _ in points], [v for _, _, v in points], marker="o", ms=3, lw=1.2)
            ax.set_xlabel("epoch")
        ax.set_title(key, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def write_run_report(run_dir: str | Path) -> RunReport:
    """Write ``report.md`` and ``curves.png`` into ``run_dir``; return the markdown."""
    run_dir = Path(run_dir)
    csv_path = run_dir / "metrics.csv"
    if not run_dir.is_dir():
        raise Distill3dError(f"{run_dir}: no such run folder")
    if not csv_path.is_file():
        raise Distill3dError(f"{run_dir}: not a run folder (no metrics.csv)")
    for target in (run_dir / "report.md", run_dir / "curves.png"):
        if target.is_dir():
            raise Distill3dError(f"{target} is a folder; cannot write the report there")
    if not os.access(run_dir, os.W_OK):
        raise Distill3dError(f"{run_dir}: folder is not writable; cannot write report.md")
    rows = read_metrics(csv_path)
    series = _series(rows)
    last_epoch = max((e for e, _, _, _ in rows), default=0)
    best_epoch = best_value = monitor = None
    ckpt = run_dir / "last.pt"
    if ckpt.is_file():
        try:
            state = checkpoint_info(ckpt)
        except Distill3dError as err:  # the curves and tables do not need it
            warnings.warn(f"{err}; the report leaves out model selection", stacklevel=2)
            state = {}
        best_epoch, best_value = state.get("best_epoch"), state.get("best_value")
        monitor = state.get("monitor")
    lines = [f"# Run report: `{run_dir.name}`", "", f"Epochs completed: {last_epoch}"]
    if monitor and best_epoch is not None and isinstance(best_value, (int, float)):
        lines.append(f"Model selection: best `{monitor}` = {best_value:.4f} at epoch {best_epoch} (validation split)")
    val_epochs = sorted({e for k, pts in series.items() if k.startswith("val/") for e, _, _ in pts})
    if val_epochs:
        keys = sorted(k for k in series if k.startswith("val/"))
        lines += ["", "## Validation metrics per epoch", "", "| epoch | " + " | ".join(keys) + " |",
                  "|---" * (len(keys) + 1) + "|"]
        by_epoch = {k: {e: v for e, _, v in series[k]} for k in keys}
        for epoch in val_epochs:
            cells = [f"{by_epoch[k][epoch]:.4f}" if epoch in by_epoch[k] else "" for k in keys]
            lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    train_keys = sorted(k for k in series if k.startswith("train_epoch/"))
    if train_keys:
        lines += ["", "## Training (epoch means)", "", "| epoch | " + " | ".join(train_keys) + " |",
                  "|---" * (len(train_keys) + 1) + "|"]
        by_epoch = {k: {e: v for e, _, v in series[k]} for k in train_keys}
        for epoch in sorted({e for k in train_keys for e, _, _ in series[k]}):
            lines.append(f"| {epoch} | " + " | ".join(f"{by_epoch[k].get(epoch, float('nan')):.4g}"
                                                      for k in train_keys) + " |")
    plot = plot_curves(series, run_dir / "curves.png", run_dir.name, monitor)
    if plot is not None:
        lines += ["", f"![learning curves]({plot.name})"]
    markdown = "\n".join(lines) + "\n"
    atomic_write_text(run_dir / "report.md", markdown)
    return RunReport(markdown, run_dir / "report.md", plot)
