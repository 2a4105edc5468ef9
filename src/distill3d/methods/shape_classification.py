"""Supervised point-cloud shape classification with PointNet (Qi et al., CVPR 2017).

The no-distillation reference for the point-cloud methods, and the library's first end-to-end recipe:
it trains on the procedural shapes world and reports overall accuracy and mean class accuracy
(ModelNet40 protocol). Model selection uses the ``val`` split; ``distill3d eval`` reports ``test``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils.data import Dataset

from distill3d.data.worlds.shapes import CATEGORIES, ShapesPointCloudDataset
from distill3d.engine.task import TaskBase
from distill3d.metrics.shapes import mean_class_accuracy, overall_accuracy
from distill3d.models.pointnet import PointNetClassifier

DESCRIPTION = "supervised PointNet classification on the shapes world (baseline, no distillation)"


class Options(BaseModel):
    """``options:`` of a shape_classification run."""

    model_config = ConfigDict(extra="forbid")

    num_points: int = Field(256, gt=0, description="points per cloud")
    use_normals: bool = Field(False, description="feed (x, y, z, nx, ny, nz) instead of (x, y, z)")
    train_size: int = Field(4096, gt=0)
    val_size: int = Field(512, gt=0)
    test_size: int = Field(1024, gt=0)
    widths: tuple[int, ...] = Field((64, 128), description="shared-MLP widths before pooling")
    feature_dim: int = Field(256, gt=0)
    dropout: float = Field(0.3, ge=0, lt=1)
    scale_augment: tuple[float, float] = Field((0.8, 1.25), description="random isotropic scale range")
    jitter_std: float = Field(0.01, ge=0, description="Gaussian point jitter (object units)")
    label_smoothing: float = Field(0.0, ge=0, lt=1)


class ShapeClassificationTask(TaskBase):
    """The engine's :class:`~distill3d.engine.task.Task` for this method."""

    def __init__(self, options: Options, seed: int) -> None:
        self.options, self.seed = options, seed
        self.num_classes = len(CATEGORIES)

    def _dataset(self, split: str, size: int) -> Dataset:
        return ShapesPointCloudDataset(split, size, n_points=self.options.num_points, seed=self.seed)

    def build_model(self) -> nn.Module:
        o = self.options
        return PointNetClassifier(self.num_classes, 6 if o.use_normals else 3, o.widths, o.feature_dim, o.dropout)

    def train_set(self) -> Dataset:
        return self._dataset("train", self.options.train_size)

    def val_set(self) -> Dataset:
        return self._dataset("val", self.options.val_size)

    def test_sets(self) -> dict[str, Dataset]:
        return {"test": self._dataset("test", self.options.test_size)}

    def _inputs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        points = batch["points"]
        return torch.cat([points, batch["normals"]], dim=-1) if self.options.use_normals else points

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        o = self.options
        points = batch["points"]
        low, high = o.scale_augment
        scale = torch.empty(points.shape[0], 1, 1, device=points.device, dtype=points.dtype).uniform_(low, high)
        points = points * scale + o.jitter_std * torch.randn_like(points)
        inputs = torch.cat([points, batch["normals"]], dim=-1) if o.use_normals else points
        logits = model(inputs)
        loss = nn.functional.cross_entropy(logits.float(), batch["category"], label_smoothing=o.label_smoothing)
        accuracy = (logits.argmax(dim=1) == batch["category"]).float().mean()
        return {"loss": loss, "acc": accuracy}

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        predictions, targets = [], []
        for batch in batches:
            predictions.append(model(self._inputs(batch)).argmax(dim=1))
            targets.append(batch["category"])
        pred, target = torch.cat(predictions), torch.cat(targets)
        return {"acc": overall_accuracy(pred, target), "mean_class_acc": mean_class_accuracy(pred, target)}


def build_task(options: Options, seed: int) -> ShapeClassificationTask:
    return ShapeClassificationTask(options, seed)
