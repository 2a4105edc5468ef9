"""A method module around the toy regression task, so CLI tests can train in a second (see cli.methods)."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from helpers.toy_task import ToyRegressionTask

DESCRIPTION = "toy regression (tests only)"


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dropout: float = 0.0
    interrupt_at_step: int | None = None
    temperature: float = 1.0


class _Task(ToyRegressionTask):
    def __init__(self, options: Options) -> None:
        super().__init__(dropout=options.dropout)
        self.interrupt_at_step = options.interrupt_at_step

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        if self.interrupt_at_step is not None and self.calls + 1 == self.interrupt_at_step:
            raise KeyboardInterrupt
        return super().training_step(model, batch)


def build_task(options: Options, seed: int) -> _Task:
    return _Task(options)
