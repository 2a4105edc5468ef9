"""One CLI test per user mistake of issue #12: each gives one line naming the file/key (exit 2; 130 for
Ctrl-C), no traceback, and nothing written when the mistake is known before the work starts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import cli
from distill3d.cli import methods
from distill3d.engine.checkpoint import load_checkpoint


@pytest.fixture(autouse=True)
def toy_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(methods.METHOD_MODULES, "toy", "helpers.toy_method")




def one_line_error(code: int, err: str, pattern: str, status: int = 2) -> None:
    assert code == status, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]


def write_config(folder: Path, text: str = "", name: str = "cfg.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("method: toy\ntrain:\n  epochs: 2\n  batch_size: 32\n  monitor: val/neg_mse\n" + text)
    return path


def test_out_dir_that_is_a_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "blocker").write_text("x")
    code, _, err = cli(capsys, "train", write_config(tmp_path), f"out_dir={tmp_path / 'blocker'}", "name=r")
    one_line_error(code, err, r"blocker.*is a file, not a folder")


def test_out_dir_read_only(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import distill3d.files

    locked = tmp_path / "locked"
    locked.mkdir()
    real_mkstemp = distill3d.files.tempfile.mkstemp

    def mkstemp(*args, **kwargs):  # a read-only folder, also for root (who may write into 0555 folders)
        if Path(kwargs.get("dir", ".")) == locked:
            raise PermissionError(13, "Permission denied")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(distill3d.files.tempfile, "mkstemp", mkstemp)
    code, _, err = cli(capsys, "train", write_config(tmp_path), f"out_dir={locked}", "name=r")
    one_line_error(code, err, r"cannot write the run folder in .*locked \(Permission denied\)")
    assert list(locked.iterdir()) == []


def test_export_out_onto_a_folder(tmp_path: Path, capsys) -> None:
    code, _, err = cli(capsys, "export", tmp_path / "no_run", "--out", tmp_path)
    one_line_error(code, err, r"cannot write the export file there: it is a folder")


def test_predict_out_dir_onto_a_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "f").write_text("x")
    code, _, err = cli(capsys, "predict", tmp_path / "no_run", tmp_path / "img.png", "--out-dir", tmp_path / "f")
    one_line_error(code, err, r"is a file, not a folder")


def test_world_preview_out_onto_a_folder(tmp_path: Path, capsys) -> None:
    code, _, err = cli(capsys, "world", "preview", "shapes", "--out", tmp_path)
    one_line_error(code, err, r"it is a folder")


def test_negative_seeds(tmp_path: Path, capsys) -> None:
    code, _, err = cli(capsys, "train", write_config(tmp_path), "seed=-1", f"out_dir={tmp_path}")
    one_line_error(code, err, r"command line override 'seed=-1': config key 'seed'")
    code, _, err = cli(capsys, "world", "preview", "shapes", "--seed", "-1", "--out", tmp_path / "x.png")
    assert code == 2 and "Traceback" not in err and "--seed" in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"\x00\x01garbage\xff", r"metrics\.csv: not a UTF-8 text file"),
        (b"epoch,step,metric,value\n1,x,train/loss,1\n1,2,val/a,1\n", r"metrics\.csv:2: malformed row"),
        (b"a,b\n", r"metrics\.csv:1: not a distill3d metrics log"),
    ],
)
def test_report_on_a_garbage_metrics_csv(tmp_path: Path, capsys, content: bytes, pattern: str) -> None:
    (tmp_path / "metrics.csv").write_bytes(content)
    code, _, err = cli(capsys, "report", tmp_path)
    one_line_error(code, err, pattern)
    assert not (tmp_path / "report.md").exists()


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (b"method: toy\nmethod: toy\n", r"cfg\.yaml:2: .*'method' is given twice"),
        (b"method: t\xffoy\n", r"cfg\.yaml: not a UTF-8 text file"),
        (b"method: toy\ntrain: {grad_clip: .inf}\n", r"cfg\.yaml:2: config key 'train\.grad_clip': must be a finite"),
        (b"method: toy\noptions: {temperature: .inf}\n", r"cfg\.yaml:2: config key 'options\.temperature': must be a"),
        (b"method: toy\noptions: {temprature: 1}\n",
         r"cfg\.yaml:2: unknown config key 'options\.temprature' \(allowed under 'options': dropout, interrupt_at"),
    ],
)
def test_config_file_mistakes(tmp_path: Path, capsys, text: bytes, pattern: str) -> None:
    (tmp_path / "cfg.yaml").write_bytes(text)
    code, _, err = cli(capsys, "train", tmp_path / "cfg.yaml", f"out_dir={tmp_path / 'runs'}")
    one_line_error(code, err, pattern)
    assert not (tmp_path / "runs").exists()


def test_bad_option_override_names_the_command_line(tmp_path: Path, capsys) -> None:
    code, _, err = cli(capsys, "train", write_config(tmp_path), "options.temperature=.inf", f"out_dir={tmp_path}")
    one_line_error(code, err, r"^error: command line override 'options\.temperature=\.inf': config key")


def test_misspelt_monitor_fails_before_training(tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path)
    code, _, err = cli(capsys, "train", config, "train.monitor=val/neg_mes", f"out_dir={tmp_path}", "name=r",
                       "--no-progress")
    one_line_error(code, err, r"'val/neg_mes' is not a validation metric .*\(it reports val/mse, val/neg_mse\)")
    assert not (tmp_path / "r" / "metrics.csv").exists()  # no epoch was trained


def test_resume_mistakes_and_recorded_overrides(tmp_path: Path, capsys) -> None:
    run = tmp_path / "r"
    code, _, err = cli(capsys, "train", write_config(tmp_path), f"out_dir={tmp_path}", "name=r",
                       "train.stop_after_epoch=1", "--no-progress")
    assert code == 0, err
    code, _, err = cli(capsys, "train", "demo_shape_classification", "--resume", run)
    one_line_error(code, err, r"--resume continues a run with its own config\.yaml; do not also give")
    code, _, err = cli(capsys, "train", "options.dropout=0.5", "--resume", run)
    one_line_error(code, err, r"override 'options\.dropout=0\.5': only train\.\* settings may change")
    code, out, err = cli(capsys, "train", "train.epochs=3", "train.stop_after_epoch=null", "--resume", run,
                         "--no-progress")
    assert code == 0, err
    assert "recorded in config.yaml" in out
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert recorded["train"]["epochs"] == 3 and recorded["train"]["stop_after_epoch"] is None
    assert load_checkpoint(run / "last.pt")["epoch"] == 3


def test_ctrl_c_says_how_to_resume(tmp_path: Path, capsys) -> None:
    code, _, err = cli(capsys, "train", write_config(tmp_path), "options.interrupt_at_step=8", f"out_dir={tmp_path}",
                       "name=r", "--no-progress")
    one_line_error(code, err, re.escape(f"interrupted after epoch 1; resume with --resume {tmp_path / 'r'}"), 130)


def test_eval_refuses_a_best_checkpoint_of_the_wrong_epoch(tmp_path: Path, capsys) -> None:
    run = tmp_path / "r"
    code, _, err = cli(capsys, "train", write_config(tmp_path, "  optimizer: {name: sgd, lr: 0.01}\n"),
                       f"out_dir={tmp_path}", "name=r", "--no-progress")
    assert code == 0, err
    last = load_checkpoint(run / "last.pt")
    assert last["best_epoch"] == 2
    from distill3d.engine.checkpoint import save_checkpoint

    save_checkpoint(run / "best.pt", {**last, "epoch": 1})  # what a kill between the two saves leaves
    code, _, err = cli(capsys, "eval", run)
    one_line_error(code, err, r"best\.pt holds epoch 1, but .*last\.pt records the best epoch 2")
    code, _, err = cli(capsys, "train", "--resume", run, "--no-progress")
    assert code == 0, err
    code, out, err = cli(capsys, "eval", run, "--json")
    assert code == 0, err and "mse" in out


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (b'method: toy\nout_dir: "a\\0b"\n', r"a path cannot contain a NUL character"),
        (b"method: toy\ntrain: {threads: 100000000000000000000}\n", r"config key 'train\.threads'"),
        (b"method: toy\nname: ../elsewhere\n", r"cfg\.yaml:2: config key 'name': a run name must be one folder name"),
    ],
)
def test_impossible_paths_and_sizes(tmp_path: Path, capsys, text: bytes, pattern: str) -> None:
    (tmp_path / "cfg.yaml").write_bytes(text)
    code, _, err = cli(capsys, "train", tmp_path / "cfg.yaml")
    one_line_error(code, err, pattern)


def test_kitti_eval_warns_in_one_line_when_results_match_no_frame(tmp_path: Path, capsys) -> None:
    car = "Car 0.00 0 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59"
    (tmp_path / "gt").mkdir()
    (tmp_path / "res").mkdir()
    (tmp_path / "gt" / "000001.txt").write_text(car + "\n")
    (tmp_path / "res" / "1.txt").write_text(car + " 0.9\n")  # an id that is no GT frame
    code, out, err = cli(capsys, "kitti-eval", tmp_path / "gt", tmp_path / "res")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.strip()]
    assert any(re.fullmatch(r"warning: .*res: no result file matches an evaluated frame id .*every AP is 0", w)
               for w in warnings), err
    assert any(w.startswith("warning: fewer than 41 valid GT boxes for Car") for w in warnings), err
    assert "Traceback" not in err and "Car" in out


def test_bad_kitti_label_names_file_and_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "gt").mkdir()
    (tmp_path / "res").mkdir()
    (tmp_path / "gt" / "000001.txt").write_text(
        "Car 0.00 1e20 -1.58 587.01 173.33 614.12 200.12 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n")
    (tmp_path / "res" / "000001.txt").write_text("")
    code, _, err = cli(capsys, "kitti-eval", tmp_path / "gt", tmp_path / "res")
    one_line_error(code, err, r"000001\.txt:1: column 'occluded' must be")
