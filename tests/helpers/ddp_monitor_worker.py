"""Entry point for the 2-process monitor test: ``torchrun --nproc_per_node=2 ddp_monitor_worker.py OUT_DIR RUN_DIR``.

The task's validation metrics lose ``neg_mse`` after the probe before training, so the check after epoch 1 (run by
rank 0 alone) finds ``train.monitor`` missing. Each rank writes the error it raised to ``OUT_DIR/rank<r>.txt``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill3d.engine.config import TrainConfig
from distill3d.engine.distributed import init_distributed, shutdown_distributed
from distill3d.engine.trainer import Trainer
from distill3d.errors import Distill3dError
from helpers.toy_task import ToyRegressionTask


class MetricVanishesTask(ToyRegressionTask):
    """Reports ``neg_mse`` at the probe before training only: the monitor goes missing after epoch 1."""

    def __init__(self) -> None:
        super().__init__(dropout=0.0)
        self.evaluations = 0

    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> dict[str, float]:
        self.evaluations += 1
        metrics = super().evaluate(model, batches)
        return metrics if self.evaluations == 1 else {"mse": metrics["mse"]}


def main() -> None:
    torch.set_num_threads(1)
    out_dir, run_dir = Path(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))  # a rank left waiting fails in 60 s, not 30 min
    info = init_distributed()
    cfg = TrainConfig(epochs=2, batch_size=32, optimizer={"name": "sgd", "lr": 0.05}, schedule={"name": "constant"},
                      monitor="val/neg_mse")
    try:
        Trainer(cfg, run_dir, seed=0, dist_info=info, progress=False).fit(MetricVanishesTask())
        message = "no error"
    except Distill3dError as err:
        message = f"{type(err).__name__}: {err}"
    (out_dir / f"rank{info.rank}.txt").write_text(message)
    shutdown_distributed()
    sys.exit(2 if message != "no error" else 0)


if __name__ == "__main__":
    main()
