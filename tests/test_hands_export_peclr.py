"""`distill3d world export hands` writes a FreiHAND folder with both splits, which the FreiHAND loader reads and
on which PeCLR fine-tunes, evaluates (the evaluation split is its test split) and predicts with the folder's K."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import cli
from distill3d.data.freihand import FreiHANDDataset
from distill3d.data.worlds import preview
from distill3d.data.worlds.hands import hand_batch
from distill3d.data.worlds.preview import FREIHAND_EVALUATION_RATIO, export_world

SIZE = 32




def test_the_export_holds_a_training_and_an_evaluation_split(tmp_path: Path) -> None:
    root = export_world("hands", tmp_path / "hands", n=6, seed=3, image_size=SIZE, difficulty="easy", n_evaluation=3)
    for split, world_split, n in (("training", "labelled", 6), ("evaluation", "test", 3)):
        data = FreiHANDDataset(root, split, image_size=SIZE)
        expected = hand_batch(world_split, list(range(n)), seed=3, image_size=SIZE, difficulty="easy")
        assert len(data) == n and data.xyz is not None
        np.testing.assert_allclose(data.xyz, expected["joints_xyz"].numpy(), atol=1e-6)
        np.testing.assert_allclose(data.K, expected["K"].numpy(), atol=1e-4)
        np.testing.assert_allclose(data.scale, expected["scale"].numpy(), atol=1e-6)
        sample = data[n - 1]
        assert sample["image"].shape == (3, SIZE, SIZE)
        # the labels project onto the image as the world's do (JPEG changes pixels, never labels)
        np.testing.assert_allclose(sample["joints_uv"].numpy(), expected["joints_uv"][n - 1].numpy(), atol=1e-3)
    # the evaluation split defaults to FreiHAND's ratio, at least one frame
    default = export_world("hands", tmp_path / "default", n=20, seed=0, image_size=SIZE)
    assert len(json.loads((default / "evaluation_K.json").read_text())) == math.ceil(20 * FREIHAND_EVALUATION_RATIO)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default", "hands"]


def test_a_failure_while_writing_the_evaluation_split_leaves_nothing(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real = preview.hand_batch

    def failing(split: str, *args, **kwargs):
        if split == "test":
            raise OSError(28, "No space left on device")
        return real(split, *args, **kwargs)

    monkeypatch.setattr(preview, "hand_batch", failing)
    with pytest.raises(OSError, match="No space left"):
        export_world("hands", tmp_path / "hands", n=3, seed=0, image_size=SIZE)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its temporary sibling


TINY = ["options.image_size=32", "options.backbone_width=8", "train.precision=fp32", "train.threads=1",
        "train.epochs=1", "train.batch_size=4"]


def test_peclr_fine_tunes_evaluates_and_predicts_on_an_export(tmp_path: Path, capsys) -> None:
    root = tmp_path / "hands"
    code, out, err = cli(capsys, "world", "export", "hands", "--out", root, "--n", "12")
    assert code == 0 and "written:" in out, err
    assert (root / "evaluation_xyz.json").is_file() and (root / "evaluation" / "rgb" / "00000001.jpg").is_file()

    code, out, err = cli(capsys, "train", "demo_peclr_finetune", "options.dataset=freihand",
                         f"options.freihand_root={root}", *TINY, f"out_dir={tmp_path / 'runs'}", "name=ft",
                         "--no-progress")
    assert code == 0, err
    assert "trained 1/1 epochs" in out and "pa_epe_mm=" in out
    # one background version where FreiHAND has 4: at most a one-line warning, nothing else
    lines = [line for line in err.splitlines() if line.strip()]
    assert all(re.match(r"warning: .*background versions \(0,\) of the requested", line) for line in lines), err
    run = tmp_path / "runs" / "ft"

    code, out, err = cli(capsys, "eval", run, "--json")
    assert code == 0, err
    results = json.loads(out)
    assert list(results) == ["test"]  # the export's evaluation split, with its annotations
    assert set(results["test"]) == {"pa_epe_mm", "epe_mm", "auc", "pa_auc", "uv_px"}
    assert all(math.isfinite(v) for v in results["test"].values())

    image = root / "evaluation" / "rgb" / "00000001.jpg"
    code, out, err = cli(capsys, "predict", run, image, "--out-dir", tmp_path / "pred")
    assert code == 0, err
    assert f"(K from {root / 'evaluation_K.json'})" in out and "joints_xyz_mm" in out

    from distill3d.methods.peclr import predict_hand

    result = predict_hand(run, [image], tmp_path / "pred")[0]
    np.testing.assert_allclose(result["K"], json.loads((root / "evaluation_K.json").read_text())[1])
    assert result["reference_bone_m"] == pytest.approx(json.loads((root / "evaluation_scale.json").read_text())[1])
    assert not result["assumed_K"] and np.isfinite(result["joints_xyz"]).all()


def test_a_small_export_still_has_a_validation_frame(tmp_path: Path) -> None:
    from distill3d.errors import Distill3dError
    from distill3d.methods.peclr import Options, build_task

    root = export_world("hands", tmp_path / "five", n=5, seed=0, image_size=SIZE)
    task = build_task(Options(stage="finetune", dataset="freihand", freihand_root=root, image_size=SIZE), 0)
    with pytest.warns(UserWarning, match=r"background versions \(0,\)"):
        assert len(task.train_set()) == 4
    assert len(task.val_set()) == 1  # N // 10 would be 0: an empty validation split
    one = export_world("hands", tmp_path / "one", n=1, seed=0, image_size=SIZE)
    task = build_task(Options(stage="finetune", dataset="freihand", freihand_root=one, image_size=SIZE), 0)
    with pytest.raises(Distill3dError, match=r"1 training frame.*needs at least 2"):
        task.val_set()
