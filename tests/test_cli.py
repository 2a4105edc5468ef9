"""Command line: help on every command, one-line user errors with non-zero exit, nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from distill3d.engine.config import TrainConfig
from distill3d.engine.report import write_run_report
from distill3d.engine.trainer import Trainer
from helpers.toy_task import ToyRegressionTask

COMMANDS = ["train", "eval", "report", "list", "kitti-eval", "demo", "world", "world preview", "world export"]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distill3d.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_on_every_command(command: str | None) -> None:
    result = run_cli(*(command.split() if command else []), "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


@pytest.mark.parametrize(
    ("config_text", "needle"),
    [
        ("method: shape_classification\ntrain: {epochz: 1}\n", "unknown config key 'train.epochz'"),
        ("method: no_such_method\n", "unknown method 'no_such_method'"),
        ("method: shape_classification\ntrain:\n\tepochs: 1\n", "cfg.yaml:3: malformed YAML"),
        ("method: shape_classification\noptions: {no_such_option: 1}\n", "unknown config key 'options.no_such_option'"),
    ],
)
def test_user_errors_are_one_line_and_write_nothing(tmp_path: Path, config_text: str, needle: str) -> None:
    (tmp_path / "cfg.yaml").write_text(config_text)
    result = run_cli("train", "cfg.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml"]


def test_missing_paths_are_user_errors(tmp_path: Path) -> None:
    for args in (["train", "missing.yaml"], ["eval", "missing_run"], ["report", "missing_run"],
                 ["kitti-eval", "no_gt", "no_res"]):
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_report_writes_markdown_and_png(tmp_path: Path) -> None:
    Trainer(TrainConfig(epochs=2, batch_size=32, monitor="val/neg_mse"), tmp_path, progress=False).fit(
        ToyRegressionTask())
    report = write_run_report(tmp_path)
    assert "| epoch |" in report.markdown and "val/mse" in report.markdown
    assert "best `val/neg_mse`" in report.markdown
    assert report.plot_path is not None and report.plot_path.read_bytes()[:4] == b"\x89PNG"


def test_kitti_eval_cli_prints_the_reference_table() -> None:
    from conftest import shared_path

    golden = shared_path("golden", "kitti_eval")
    result = run_cli("kitti-eval", str(golden / "gt"), str(golden / "det"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (golden / "reference_output_mmdet3d.txt").read_text().strip()
    as_json = run_cli("kitti-eval", str(golden / "gt"), str(golden / "det"), "--json")
    import json

    values = json.loads(as_json.stdout)
    assert abs(values["KITTI/Car_3D_AP40_moderate_strict"] - 6.152497796403549) < 1e-6


def test_train_eval_report_end_to_end(tmp_path: Path) -> None:
    """A tiny shape-classification run through the CLI: train, resume-free eval, report."""
    args = ["train", "demo_shape_classification", "name=tiny", f"out_dir={tmp_path}", "train.epochs=1",
            "options.train_size=64", "options.val_size=32", "options.test_size=32", "options.num_points=64",
            "train.precision=fp32", "--no-progress"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "tiny"
    assert {"config.yaml", "metrics.csv", "last.pt", "best.pt", "report.md", "curves.png"} <= {
        p.name for p in run.iterdir()}
    evaluated = run_cli("eval", str(run), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    import json

    metrics = json.loads(evaluated.stdout)["test"]
    assert 0.0 <= metrics["acc"] <= 1.0 and "mean_class_acc" in metrics
    again = run_cli(*args)
    assert again.returncode == 2 and "already holds a run" in again.stderr


@pytest.mark.parametrize("world", ["shapes", "hands", "road"])
def test_world_preview_writes_png(tmp_path: Path, world: str) -> None:
    result = run_cli("world", "preview", world, "--out", str(tmp_path / "sheet.png"), "--n", "2")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sheet.png").read_bytes()[:4] == b"\x89PNG"


def test_world_export_refuses_existing_folder(tmp_path: Path) -> None:
    result = run_cli("world", "export", "road", "--out", str(tmp_path), "--n", "1")
    assert result.returncode == 2 and "already exists" in result.stderr


def test_list_names_every_method_and_world() -> None:
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    for name in ("pose_ckd", "peclr", "shape_classification", "shapes", "hands", "road", "pascal3d"):
        assert name in result.stdout


def test_world_preview_takes_a_difficulty_and_names_a_wrong_one(tmp_path: Path) -> None:
    result = run_cli("world", "preview", "shapes", "--difficulty", "easy", "--out", str(tmp_path / "e.png"),
                     "--n", "2")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "e.png").stat().st_size > 0
    result = run_cli("world", "preview", "shapes", "--difficulty", "medium", "--out", str(tmp_path / "m.png"))
    assert result.returncode == 2
    assert "unknown difficulty 'medium'" in result.stderr and not (tmp_path / "m.png").exists()
