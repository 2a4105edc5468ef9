"""Engine faults that must neither lose nor corrupt a run: a kill while saving, NaN gradients with a finite
loss, torn or garbage metrics logs, flipped checkpoint bytes, Ctrl-C, leftover temporary files."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from distill3d.engine.checkpoint import best_checkpoint_problem, load_checkpoint, resolve_checkpoint, save_checkpoint
from distill3d.engine.config import TrainConfig
from distill3d.engine.logging import read_metrics
from distill3d.engine.trainer import Trainer
from distill3d.errors import DataFormatError, Distill3dError, NonFiniteLossError, RunInterruptedError
from helpers.toy_task import ToyRegressionTask

ROOT = Path(__file__).resolve().parents[1]


def config(**overrides: Any) -> TrainConfig:
    base = dict(epochs=2, batch_size=32, optimizer={"name": "adamw", "lr": 1e-2}, deterministic=True,
                monitor="val/neg_mse", log_every=2)
    base.update(overrides)
    return TrainConfig(**base)


class NanGradientTask(ToyRegressionTask):
    """Finite loss, NaN gradient at one step: sqrt(u) at u = 0 has an infinite slope, times du/dw = 0."""

    def __init__(self, nan_grad_at_step: int) -> None:
        super().__init__()
        self.nan_grad_at_step = nan_grad_at_step

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        outputs = super().training_step(model, batch)
        if self.calls == self.nan_grad_at_step:
            weight = model[0].weight
            outputs["loss"] = outputs["loss"] + torch.sqrt((weight - weight.detach()).pow(2).sum())
        return outputs


class InterruptTask(ToyRegressionTask):
    def __init__(self, at_step: int) -> None:
        super().__init__()
        self.at_step = at_step

    def training_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        if self.calls + 1 == self.at_step:
            raise KeyboardInterrupt
        return super().training_step(model, batch)


def test_nan_gradient_on_the_last_step_of_an_epoch_saves_nothing_non_finite(tmp_path: Path) -> None:
    steps_per_epoch = 192 // 32
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError) as err:
        Trainer(config(), run, progress=False).fit(NanGradientTask(nan_grad_at_step=2 * steps_per_epoch))
    message = str(err.value)
    assert "non-finite weights after epoch 2" in message
    assert f"last good checkpoint: {run / 'last.pt'} (epoch 1)" in message
    state = load_checkpoint(run / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_nan_gradient_in_epoch_one_names_no_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteLossError) as err:
        Trainer(config(), tmp_path / "run", progress=False).fit(NanGradientTask(nan_grad_at_step=6))
    assert "last good checkpoint" not in str(err.value)
    assert not (tmp_path / "run" / "last.pt").exists()


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import distill3d.files as files
    from distill3d.engine.config import TrainConfig
    from distill3d.engine.trainer import Trainer
    from helpers.toy_task import ToyRegressionTask

    real_replace = os.replace
    def replace(src, dst):
        if str(dst).endswith("best.pt") and os.path.exists(os.path.join(os.path.dirname(dst), "best.pt")):
            os.kill(os.getpid(), signal.SIGKILL)  # killed while best.pt of epoch 2 is being put in place
        real_replace(src, dst)
    files.os.replace = replace
    cfg = TrainConfig(epochs=2, batch_size=32, optimizer={{"name": "sgd", "lr": 1e-2}}, deterministic=True,
                      monitor="val/neg_mse")
    Trainer(cfg, {run!r}, progress=False).fit(ToyRegressionTask(dropout=0.0))
    """
)


def test_kill_while_best_is_replaced_is_refused_by_eval_and_repaired_on_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    script = KILL_SCRIPT.format(tests=str(ROOT / "tests"), run=str(run))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == -9, done.stderr
    last = load_checkpoint(run / "last.pt")
    assert last["epoch"] == 2 and last["best_epoch"] == 2  # SGD on the toy task improves every epoch
    assert load_checkpoint(run / "best.pt")["epoch"] == 1
    orphans = [p for p in run.iterdir() if p.name.endswith(".tmp")]
    assert orphans, "the kill should leave the temporary best.pt behind"
    problem = best_checkpoint_problem(run)
    assert problem is not None and problem[1]
    with pytest.raises(Distill3dError, match=re.escape("best.pt holds epoch 1, but") + ".*--resume"):
        resolve_checkpoint(run)
    with pytest.warns(UserWarning, match="repaired from last.pt"):
        Trainer(config(epochs=2, optimizer={"name": "sgd", "lr": 1e-2}), run, progress=False).fit(
            ToyRegressionTask(dropout=0.0), resume=True
        )
    assert load_checkpoint(run / "best.pt")["epoch"] == 2
    assert resolve_checkpoint(run) == run / "best.pt"
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_flipped_byte_in_tensor_data_is_detected(tmp_path: Path) -> None:
    Trainer(config(epochs=1), tmp_path / "run", progress=False).fit(ToyRegressionTask())
    path = tmp_path / "run" / "last.pt"
    raw = bytearray(path.read_bytes())
    weight = load_checkpoint(path)["model"]["0.weight"]
    at = raw.find(weight.numpy().tobytes()[:16])
    assert at > 0
    raw[at + 3] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(Distill3dError, match=r"last\.pt: checkpoint is corrupt \(checksum mismatch"):
        load_checkpoint(path)


def test_torn_last_row_of_metrics_is_tolerated_at_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    Trainer(config(epochs=3, stop_after_epoch=1), run, progress=False).fit(ToyRegressionTask())
    csv_path = run / "metrics.csv"
    with csv_path.open("a") as handle:
        handle.write("2,7,train/lo")  # a kill mid-append
    rows = read_metrics(csv_path)
    assert rows and max(r[0] for r in rows) == 1
    Trainer(config(epochs=3), run, progress=False).fit(ToyRegressionTask(), resume=True)
    assert {r[0] for r in read_metrics(csv_path)} == {1, 2, 3}


def test_garbage_metrics_log_is_moved_aside_at_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    Trainer(config(epochs=2, stop_after_epoch=1), run, progress=False).fit(ToyRegressionTask())
    (run / "metrics.csv").write_bytes(b"\x00\xffgarbage\n1,2\n")
    with pytest.warns(UserWarning, match=r"metrics\.csv.*moved to metrics\.corrupt-"):
        Trainer(config(epochs=2), run, progress=False).fit(ToyRegressionTask(), resume=True)
    assert {r[0] for r in read_metrics(run / "metrics.csv")} == {2}
    assert list(run.glob("metrics.corrupt-*.csv"))


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"epoch,step,metric,value\n1,2,train/loss\n1,3,x,1\n", r"metrics\.csv:2: malformed row"),
        (b"no,header\n", r"metrics\.csv:1: not a distill3d metrics log"),
        (b"epoch,step,metric,value\n\xff\xfe\n", r"not a UTF-8 text file"),
        (b"epoch,step,metric,value\n99999999999999999999999999999999999999x,1,a,1\n", r"metrics\.csv:2"),
    ],
)
def test_bad_metrics_logs_are_data_format_errors(tmp_path: Path, content: bytes, needle: str) -> None:
    (tmp_path / "metrics.csv").write_bytes(content)
    with pytest.raises(DataFormatError, match=needle):
        read_metrics(tmp_path / "metrics.csv")


def test_ctrl_c_says_how_to_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(RunInterruptedError, match=re.escape(f"interrupted after epoch 1; resume with --resume {run}")):
        Trainer(config(epochs=3), run, progress=False).fit(InterruptTask(at_step=8))
    assert load_checkpoint(run / "last.pt")["epoch"] == 1


def test_written_files_have_normal_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        trainer = Trainer(config(epochs=1), tmp_path / "run", config_yaml="method: toy\n", progress=False)
        trainer.fit(ToyRegressionTask())
    finally:
        os.umask(old)
    for name in ("last.pt", "best.pt", "config.yaml", "metrics.csv"):
        mode = stat.S_IMODE((tmp_path / "run" / name).stat().st_mode)
        assert mode == 0o644, (name, oct(mode))


@settings(max_examples=int(os.environ.get("DISTILL3D_FUZZ_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_checkpoints_load_intact_or_give_one_error(tmp_path: Path, data: st.DataObject) -> None:
    """Whatever a byte flip, cut or insertion does, load_checkpoint returns the saved tensors bit for bit or
    raises the library's error naming the file (the zip CRC-32 of every member is verified)."""
    weights = torch.arange(600, dtype=torch.float32).reshape(30, 20) / 7
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"model": {"w": weights}, "epoch": 3})
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            raw[position] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del raw[max(1, position):]
        else:
            raw[position:position] = data.draw(st.binary(min_size=1, max_size=4))
    path.write_bytes(bytes(raw))
    try:
        state = load_checkpoint(path)
    except Distill3dError as error:
        assert str(path) in str(error)
        return
    assert torch.equal(state["model"]["w"], weights) and state["epoch"] == 3


def test_monitor_without_a_validation_split_is_a_config_error(tmp_path: Path) -> None:
    class NoValidation(ToyRegressionTask):
        def val_set(self) -> None:
            return None

    from distill3d.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'train\.monitor': 'val/neg_mse' needs a validation split"):
        Trainer(config(), tmp_path / "run", progress=False).fit(NoValidation())


def test_report_survives_a_corrupt_last_checkpoint(tmp_path: Path) -> None:
    from distill3d.engine.report import write_run_report

    run = tmp_path / "run"
    Trainer(config(epochs=1), run, progress=False).fit(ToyRegressionTask())
    (run / "last.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"last\.pt: not a readable"):
        report = write_run_report(run)
    assert "val/mse" in report.markdown


def test_curves_draw_the_monitored_and_headline_metrics_only(tmp_path) -> None:
    """A KITTI evaluation logs ≈ 130 validation metrics: the curves keep the monitored one and the shortest names."""
    from distill3d.engine import report

    series = {f"val/Class{i:03d}_BEV_AP40_moderate_loose": [(1, 10, 0.5)] for i in range(40)}
    series["val/ap"] = [(1, 10, 0.4)]
    series["val/zz_monitored_metric_with_a_long_name"] = [(1, 10, 0.3)]
    series["train/loss"] = [(1, 10, 1.0)]
    monitor = "val/zz_monitored_metric_with_a_long_name"
    panels = report.validation_panels(series, monitor)
    assert len(panels) == report.MAX_VALIDATION_PANELS
    assert panels[:2] == [monitor, "val/ap"] and all(k.startswith("val/Class") for k in panels[2:])
    assert report.plot_curves(series, tmp_path / "curves.png", "run", monitor).is_file()


def test_load_weights_names_the_checkpoint_and_the_first_mismatch() -> None:
    import pytest
    import torch

    from distill3d.engine.checkpoint import load_weights
    from distill3d.errors import Distill3dError

    model = torch.nn.Linear(3, 2)
    assert load_weights(torch.nn.Linear(3, 2), model.state_dict(), "a.pt").weight.shape == (2, 3)
    with pytest.raises(Distill3dError, match=r"^run/best\.pt: weights do not fit .*size mismatch for weight"):
        load_weights(torch.nn.Linear(4, 2), model.state_dict(), "run/best.pt")
    with pytest.raises(Distill3dError, match=r"Unexpected key\(s\) in state_dict: \"extra\""):
        load_weights(torch.nn.Linear(3, 2), {**model.state_dict(), "extra": torch.zeros(1)}, "run/best.pt")
