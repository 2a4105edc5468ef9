"""Every method the command line can run satisfies the engine's Task contract (no optional-method probing)."""

from __future__ import annotations

import pytest
import torch

from distill3d.cli.methods import METHOD_MODULES, load_method
from distill3d.engine.task import Task, TaskBase


@pytest.mark.parametrize("name", sorted(METHOD_MODULES))
def test_every_method_builds_a_task_with_the_whole_contract(name: str) -> None:
    method = load_method(name)
    task = method.build_task(method.Options(), 0)
    assert isinstance(task, Task), f"{name}: missing part of the Task protocol"
    assert isinstance(task, TaskBase)
    model = task.build_model()
    groups = task.parameter_groups(model)
    assert sum(p.numel() for g in groups for p in g["params"]) > 0
    assert all(p.requires_grad for g in groups for p in g["params"])
    task.setup(torch.device("cpu"), None)


def test_task_base_defaults() -> None:
    class Minimal(TaskBase):
        pass

    task = Minimal()
    assert task.val_set() is None and task.test_sets() == {}
    batch = task.collate([{"x": torch.zeros(2)}, {"x": torch.ones(2)}])
    assert batch["x"].shape == (2, 2)
