"""A tiny regression task used to test the generic engine (no method, no world)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from distill3d.engine.task import TaskBase


class ToyRegressionTask(TaskBase):
    """y = sin(x·w) + noise; an MLP with dropout (so RNG state matters for exact resume)."""

    def __init__(self, n: int = 256, dim: int = 8, dropout: float = 0.1, nan_at_step: int | None = None) -> None:
        gen = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, dim, generator=gen)
        w = 0.3 * torch.randn(dim, 1, generator=gen)
        self.y = torch.sin(self.x @ w) + 0.05 * torch.randn(n, 1, generator=gen)
        self.dim, self.dropout, self.nan_at_step, self.calls = dim, dropout, nan_at_step, 0

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(self.dim, 32), nn.ReLU(), nn.Dropout(self.dropout), nn.Linear(32, 1))

    def train_set(self) -> Dataset:
        return TensorDataset(self.x[:192], self.y[:192])

    def val_set(self) -> Dataset:
        return TensorDataset(self.x[192:], self.y[192:])

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        self.calls += 1
        x, y = batch
        loss = nn.functional.mse_loss(model(x), y)
        if self.nan_at_step is not None and self.calls >= self.nan_at_step:
            loss = loss * float("nan")
        return {"loss": loss, "abs_err": (model(x) - y).abs().mean()}

    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> dict[str, float]:
        errors = torch.cat([(model(x) - y).pow(2).flatten() for x, y in batches])
        return {"mse": errors.mean().item(), "neg_mse": -errors.mean().item()}
