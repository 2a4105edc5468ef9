"""The contract between a method and the generic engine.

The engine knows no method, dataset or paper: a method hands it a :class:`Task`, and the trainer runs it. The
protocol lists everything the engine may call; :class:`TaskBase` gives every optional part its default, so a
method writes only what it changes. The order of calls in :class:`~distill3d.engine.trainer.Trainer`::

    model = task.build_model()                  # architecture only
    task.warm_start(model)                      # pre-trained weights: a fresh training run only (not resume/eval)
    task.setup(device, dist)                    # move frozen teachers / cached knowledge to the device
    optimizer(task.parameter_groups(model))     # what is trained, with per-group options
    for batch in DataLoader(task.train_set(), collate_fn=task.collate):
        outputs = task.training_step(model, batch)            # {"loss": ..., other logged scalars}
        outputs["loss"].backward()
        (gradient clipping)
        task.before_optimizer_step(model, optimizer, step)    # e.g. LARS, gradient modulation
        optimizer.step()
    task.evaluate(model, batches of task.val_set())           # model selection (val/<name>)
    task.evaluate(model, batches of each of task.test_sets()) # final evaluation (eval command)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.utils.data import Dataset
from torch.utils.data import default_collate as _default_collate


@runtime_checkable
class Task(Protocol):
    """What the :class:`~distill3d.engine.trainer.Trainer` needs from a method.

    - ``build_model()``: the architecture whose parameters are trained (frozen parts, e.g. a teacher, may live
      inside it with ``requires_grad=False``, or on the task object itself); it loads no weights and renders no
      data, so rebuilding a trained run is cheap.
    - ``warm_start(model)``: pre-trained weights for a fresh training run (never on resume or evaluation).
    - ``train_set()`` / ``val_set()`` / ``test_sets()``: map-style datasets; ``val_set`` may return ``None``.
    - ``collate(samples)``: a list of dataset items → one batch.
    - ``setup(device, dist)``: called once the device is known, before training or evaluation.
    - ``parameter_groups(model)``: the optimiser's parameter groups (dicts with ``params``).
    - ``training_step(model, batch)``: returns a dict of scalar tensors with at least ``"loss"``;
      the other entries are logged as ``train/<name>``. ``model`` may be DDP-wrapped.
    - ``before_optimizer_step(model, optimizer, step)``: gradients are there; change them or the update.
    - ``evaluate(model, batches)``: returns plain floats, logged as ``val/<name>``; ``model`` is the
      unwrapped module in eval mode and ``batches`` iterates over the loader of one split.
    """

    def build_model(self) -> nn.Module: ...

    def warm_start(self, model: nn.Module) -> None: ...

    def train_set(self) -> Dataset: ...

    def val_set(self) -> Dataset | None: ...

    def test_sets(self) -> dict[str, Dataset]: ...

    def collate(self, samples: list[Any]) -> Any: ...

    def setup(self, device: torch.device, dist: Any) -> None: ...

    def parameter_groups(self, model: nn.Module) -> list[dict[str, Any]]: ...

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]: ...

    def before_optimizer_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None: ...

    def evaluate(self, model: nn.Module, batches: Iterable[Any]) -> dict[str, float]: ...


class TaskBase:
    """Defaults of the optional parts of :class:`Task`: no validation or test splits, torch's default collate, no
    warm start, nothing to set up, every trainable parameter in one group, no gradient hook."""

    def val_set(self) -> Dataset | None:
        return None

    def test_sets(self) -> dict[str, Dataset]:
        """Final evaluation splits (default: the validation split, if any)."""
        val = self.val_set()
        return {} if val is None else {"val": val}

    def collate(self, samples: list[Any]) -> Any:
        return _default_collate(samples)

    def warm_start(self, model: nn.Module) -> None:
        """Load pre-trained weights into a freshly built model (default: none)."""

    def setup(self, device: torch.device, dist: Any) -> None:
        """Move what the task holds outside the model (a frozen teacher, cached features) to ``device``."""

    def parameter_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def before_optimizer_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Called after backward (and gradient clipping), before ``optimizer.step()``."""
