"""Pre-train the shipped image encoder: category classification on the shapes world (a generic warm start).

The four papers start their image encoders from ImageNet weights; a CPU-sized library cannot download them, so
it ships its own generic warm start: ResNet-18 (width 32, 64 px) trained to classify the 12 *seen* categories of
the shapes world (``standard`` preset), on images of its own data seed (1000), disjoint from every benchmark
split, with flip / crop / rotation / colour augmentation. It never sees a viewpoint label or an unseen category.
The engine trains it (:class:`~distill3d.engine.trainer.Trainer`), the best validation epoch is kept, and the
encoder (``fc`` dropped) is written as float16 safetensors into ``src/distill3d/weights/`` (≈ 5.6 MB).

Run: ``python -m benchmarks.pretrain_backbone [--epochs 2] [--train-size 48000] [--out FILE]`` (≈ 4 min on 2 cores).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import write_report, write_results_json
from distill3d.data.augment import geometric_viewpoint_augmentation, photometric_jitter
from distill3d.data.cache import MaterializedDataset
from distill3d.data.worlds.shapes import CATEGORIES, SEEN_CATEGORIES, ShapesViewpointDataset
from distill3d.engine.checkpoint import load_checkpoint
from distill3d.engine.config import TrainConfig
from distill3d.engine.task import TaskBase
from distill3d.engine.trainer import Trainer
from distill3d.models.resnet import ResNet, save_encoder_weights

DATA_SEED = 1000
WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "distill3d" / "weights" / "shapes_resnet18_w32.safetensors"


class SeenCategoryClassification(TaskBase):
    """Engine task: images of the seen categories → category (12-way, labels re-indexed in SEEN order)."""

    def __init__(self, train_size: int, val_size: int, width: int) -> None:
        self.train_size, self.val_size, self.width = train_size, val_size, width
        self.remap = torch.full((len(CATEGORIES),), -1, dtype=torch.long)
        self.remap[[CATEGORIES.index(c) for c in SEEN_CATEGORIES]] = torch.arange(len(SEEN_CATEGORIES))

    def _split(self, split: str, size: int) -> MaterializedDataset:
        source = ShapesViewpointDataset(split, size, SEEN_CATEGORIES, 64, 16, DATA_SEED, with_points=False,
                                        difficulty="standard")
        description = {"world": "shapes-classification", "split": split, "size": size, "seed": DATA_SEED,
                       "difficulty": "standard", "world_version": 2}
        return MaterializedDataset(source, ("image", "viewpoint", "category", "symmetry_order"), description,
                                   batch_size=256)

    def build_model(self) -> nn.Module:
        return ResNet("resnet18", len(SEEN_CATEGORIES), self.width)

    def train_set(self) -> MaterializedDataset:
        return self._split("train", self.train_size)

    def val_set(self) -> MaterializedDataset:
        return self._split("val", self.val_size)

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        images, _, _ = geometric_viewpoint_augmentation(photometric_jitter(batch["image"]), batch["viewpoint"],
                                                        rotate_std=math.radians(20))
        logits = model(images.contiguous(memory_format=torch.channels_last))
        target = self.remap[batch["category"]]
        loss = F.cross_entropy(logits.float(), target)
        return {"loss": loss, "acc": (logits.argmax(1) == target).float().mean()}

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        right = total = 0
        for batch in batches:
            right += int((model(batch["image"]).argmax(1) == self.remap[batch["category"]]).sum())
            total += len(batch["image"])
        return {"acc": 100.0 * right / total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=48000)
    parser.add_argument("--val-size", type=int, default=2400)
    parser.add_argument("--out", type=Path, default=WEIGHTS, help="safetensors file to write")
    parser.add_argument("--report-dir", type=Path, default=None, help="folder of the report (default results/)")
    args = parser.parse_args()

    task = SeenCategoryClassification(args.train_size, args.val_size, 32)
    started = time.perf_counter()
    task.train_set(), task.val_set()
    render_s = time.perf_counter() - started
    config = TrainConfig(epochs=args.epochs, batch_size=64, precision="bf16", channels_last=True,
                         optimizer={"name": "adamw", "lr": 3e-3, "weight_decay": 5e-4},
                         schedule={"name": "cosine", "warmup_epochs": 0.3}, monitor="val/acc")
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        result = Trainer(config, run_dir, seed=0, progress=False).fit(task)
        train_s = time.perf_counter() - started
        model = task.build_model()
        model.load_state_dict(load_checkpoint(Path(run_dir) / "best.pt")["model"])
    save_encoder_weights(model, args.out)
    accuracy = float(result.best_value)
    body = (f"Seen-category classification (12 classes, chance {100 / len(SEEN_CATEGORIES):.1f} %) on the shapes "
            f"world, standard preset, data seed {DATA_SEED}: {args.train_size:,} training images rendered once "
            f"(or loaded from the disk cache: {render_s:.0f} s), "
            f"{args.epochs} epochs ({train_s / 60:.1f} min), batch 64, AdamW 3e-3 cosine, "
            f"bf16.\n\n| validation accuracy (best epoch {result.best_epoch}) | weights | size |\n|---|---|---|\n"
            f"| {accuracy:.1f} % | `{args.out.name}` (float16) | {args.out.stat().st_size / 1e6:.1f} MB |\n")
    write_report("pretrain_backbone", body, args.report_dir)
    write_results_json("pretrain_backbone", {"resnet18_w32": {"val_acc": [accuracy], "train_minutes":
                                                               [train_s / 60]}}, args.report_dir)
    print(body)


if __name__ == "__main__":
    main()
