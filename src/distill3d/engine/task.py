"""The contract between a method and the generic engine.

The engine knows no method, dataset or paper: a method hands it a :class:`Task`, and the trainer runs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.utils.data import Dataset


@runtime_checkable
class Task(Protocol):
    """What the :class:`~distill3d.engine.trainer.Trainer` needs from a method.

    - ``build_model()``: the module whose parameters are trained (frozen parts, e.g. a teacher, may live
      inside it with ``requires_grad=False``, or on the task object itself).
    - ``train_set()`` / ``val_set()``: map-style datasets; ``val_set`` may return ``None``.
    - ``training_step(model, batch)``: returns a dict of scalar tensors with at least ``"loss"``;
      the other entries are logged as ``train/<name>``. ``model`` may be DDP-wrapped.
    - ``evaluate(model, batches)``: returns plain floats, logged as ``val/<name>``; ``model`` is the
      unwrapped module in eval mode and ``batches`` iterates over the validation loader.
    """

    def build_model(self) -> nn.Module: ...

    def train_set(self) -> Dataset: ...

    def val_set(self) -> Dataset | None: ...

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]: ...

    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> dict[str, float]: ...
