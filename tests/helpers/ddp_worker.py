"""Entry point for the 2-process DDP test: ``torchrun --nproc_per_node=2 ddp_worker.py OUT_JSON RUN_DIR``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distill3d.engine.config import TrainConfig
from distill3d.engine.distributed import init_distributed, shutdown_distributed
from distill3d.engine.trainer import Trainer
from helpers.toy_task import ToyRegressionTask


def main() -> None:
    torch.set_num_threads(1)
    out_json, run_dir = sys.argv[1], sys.argv[2]
    info = init_distributed()
    cfg = TrainConfig(epochs=2, batch_size=32, optimizer={"name": "sgd", "lr": 0.05},
                      schedule={"name": "constant"}, deterministic=True)
    result = Trainer(cfg, run_dir, seed=7, dist_info=info, progress=False).fit(ToyRegressionTask(dropout=0.0))
    if info.is_main:
        Path(out_json).write_text(json.dumps({"world_size": info.world_size, "losses": result.step_losses}))
    shutdown_distributed()


if __name__ == "__main__":
    main()
