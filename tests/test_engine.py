"""Engine: config validation, atomic checkpoints, training loop, exact resume, NaN handling, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
import torch

from conftest import torchrun
from distill3d.engine.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from distill3d.engine.config import TrainConfig, apply_overrides, load_run_config, validate_section
from distill3d.engine.logging import read_metrics
from distill3d.engine.trainer import Trainer, lr_factor
from distill3d.errors import ConfigError, Distill3dError, NonFiniteLossError
from distill3d.files import atomic_write_text
from helpers.toy_task import ToyRegressionTask

HELPERS = Path(__file__).parent / "helpers"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------------------------- config
def test_config_loads_and_applies_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "method: toy\ntrain:\n  epochs: 3\n  optimizer: {name: sgd, lr: 0.1}\n")
    cfg = load_run_config(path, ["train.optimizer.lr=3e-4", "options.width=16", "train.precision=bf16"])
    assert cfg.train.epochs == 3 and cfg.train.optimizer.name == "sgd"
    assert cfg.train.optimizer.lr == pytest.approx(3e-4)
    assert cfg.options == {"width": 16} and cfg.train.precision == "bf16"


@pytest.mark.parametrize(
    ("text", "overrides", "needle"),
    [
        ("method: toy\ntrain:\n  epoch: 3\n", [], "unknown config key 'train.epoch'"),
        ("method: toy\ntrain:\n  epochs: three\n", [], "config key 'train.epochs'"),
        ("method: toy\n", ["train.optimizer.name=rmsprop"], "config key 'train.optimizer.name'"),
        ("method: toy\nextra: 1\n", [], "unknown config key 'extra'"),
        ("train: {}\n", [], "missing config key 'method'"),
        ("method: toy\n\tepochs: 3\n", [], "cfg.yaml:2: malformed YAML"),
        ("- 1\n- 2\n", [], "top level must be a mapping"),
        ("method: toy\n", ["train.epochs"], "must look like key.sub=value"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_run_config(write(tmp_path, text), overrides)
    message = str(err.value)
    assert needle in message and "\n" not in message


def test_unknown_key_lists_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"allowed under 'train'.*batch_size"):
        validate_section(TrainConfig, {"batchsize": 3}, "train")


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found"):
        load_run_config(tmp_path / "nope.yaml")


def test_override_into_scalar_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"'train.epochs' is not a mapping"):
        apply_overrides({"train": {"epochs": 3}}, ["train.epochs.x=1"])


# ------------------------------------------------------------------------------------------ checkpoints
def test_atomic_checkpoint_round_trip_and_no_temp_files(tmp_path: Path) -> None:
    state = {"model": {"w": torch.arange(4.0)}, "epoch": 3, "name": "x", "best": None}
    save_checkpoint(tmp_path / "a.pt", state)
    loaded = load_checkpoint(tmp_path / "a.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["epoch"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


def test_failed_write_leaves_previous_file_intact(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "f.txt", "old")

    class Boom:
        def __reduce__(self):  # pickling fails halfway through torch.save
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_checkpoint(tmp_path / "f.txt", {"x": Boom()})
    assert (tmp_path / "f.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_corrupt_and_missing_checkpoints_are_user_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Distill3dError, match=r"bad.pt: not a readable"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(Distill3dError, match=r"no checkpoint"):
        resolve_checkpoint(tmp_path)


# ---------------------------------------------------------------------------------------------- trainer
def small_config(**overrides) -> TrainConfig:
    base = dict(epochs=4, batch_size=32, optimizer={"name": "adamw", "lr": 1e-2}, schedule={"name": "cosine",
                "warmup_epochs": 1}, deterministic=True, monitor="val/neg_mse", log_every=2)
    base.update(overrides)
    return TrainConfig(**base)


def test_training_reduces_loss_and_writes_run_files(tmp_path: Path) -> None:
    result = Trainer(small_config(epochs=6), tmp_path / "run", seed=0, config_yaml="method: toy\n",
                     progress=False).fit(ToyRegressionTask())
    assert result.epochs_completed == 6
    assert sum(result.step_losses[-6:]) < 0.5 * sum(result.step_losses[:6])
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"last.pt", "best.pt", "metrics.csv", "config.yaml"} <= files
    metrics = {m for _, _, m, _ in read_metrics(tmp_path / "run" / "metrics.csv")}
    assert {"train/loss", "train/lr", "val/mse", "train_epoch/loss"} <= metrics
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["best_epoch"] == result.best_epoch and best["metrics"]["neg_mse"] == result.best_value


def test_exact_resume_gives_identical_weights(tmp_path: Path) -> None:
    full = Trainer(small_config(), tmp_path / "full", seed=3, progress=False).fit(ToyRegressionTask())
    part = Trainer(small_config(stop_after_epoch=2), tmp_path / "part", seed=3, progress=False)
    assert part.fit(ToyRegressionTask()).epochs_completed == 2
    resumed = Trainer(small_config(), tmp_path / "part", seed=3, progress=False).fit(ToyRegressionTask(), resume=True)
    assert resumed.epochs_completed == 4 and resumed.global_step == full.global_step
    a = load_checkpoint(tmp_path / "full" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "part" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows_a = read_metrics(tmp_path / "full" / "metrics.csv")
    rows_b = read_metrics(tmp_path / "part" / "metrics.csv")
    strip = lambda rows: [r for r in rows if "samples_per_s" not in r[2]]  # noqa: E731
    assert strip(rows_a) == strip(rows_b)


def test_nan_loss_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss .* epoch 1, step 3"):
        Trainer(small_config(), tmp_path / "r", progress=False).fit(ToyRegressionTask(nan_at_step=3))


def test_bf16_autocast_trains(tmp_path: Path) -> None:
    result = Trainer(small_config(precision="bf16", deterministic=False), tmp_path / "r",
                     progress=False).fit(ToyRegressionTask())
    assert all(torch.isfinite(torch.tensor(result.step_losses)))


def test_batch_larger_than_dataset_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(Distill3dError, match=r"fewer than train.batch_size"):
        Trainer(small_config(batch_size=1024), tmp_path / "r", progress=False).fit(ToyRegressionTask())
    assert not (tmp_path / "r").exists()


def test_lr_schedule_warmup_then_cosine() -> None:
    cfg = TrainConfig(schedule={"name": "cosine", "warmup_epochs": 1, "min_lr_ratio": 0.1}).schedule
    factors = [lr_factor(s, 40, 10, cfg) for s in range(40)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[-1] == pytest.approx(0.1, abs=0.01)
    assert all(a >= b for a, b in pairwise(factors[10:]))


# ------------------------------------------------------------------------------------------------ DDP
@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path: Path) -> None:
    """2 gloo processes with the same global batch follow the 1-process loss trajectory (rtol 1e-5)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single.json"
    subprocess.run([sys.executable, str(HELPERS / "ddp_worker.py"), str(single), str(tmp_path / "r1")],
                   check=True, env=env, timeout=120)
    double = tmp_path / "double.json"
    torchrun(HELPERS / "ddp_worker.py", double, tmp_path / "r2", timeout=240)
    a, b = json.loads(single.read_text()), json.loads(double.read_text())
    assert a["world_size"] == 1 and b["world_size"] == 2
    assert len(a["losses"]) == len(b["losses"]) == 12
    assert torch.allclose(torch.tensor(a["losses"]), torch.tensor(b["losses"]), rtol=1e-5, atol=1e-7)
    w1 = load_checkpoint(tmp_path / "r1" / "last.pt")["model"]
    w2 = load_checkpoint(tmp_path / "r2" / "last.pt")["model"]
    assert all(torch.allclose(w1[k], w2[k], rtol=1e-5, atol=1e-6) for k in w1)


def test_gather_with_grad_passes_gradcheck(tmp_path: Path) -> None:
    """The custom autograd function of the global-negative gather, in a one-process gloo group."""
    import torch.distributed as dist

    from distill3d.losses.gather import _GatherWithGrad

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(_GatherWithGrad.apply, (x,))
    finally:
        dist.destroy_process_group()
