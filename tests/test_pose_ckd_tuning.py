"""benchmarks/pose_ckd_tuning.py: a quick run trains a teacher where none exists, scores students on validation
images only, and writes the report and the JSON under the ``_quick`` name."""

from __future__ import annotations

import json

import pytest
import torch


def test_quick_tuning_scores_validation_splits_only(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.pose_ckd_tuning import main

    from distill3d.methods.pose_ckd import PoseCKDTask

    monkeypatch.setenv("DISTILL3D_CACHE", str(tmp_path / "cache"))

    def no_test_split(self: PoseCKDTask) -> None:
        raise AssertionError("tuning must not read a test split")

    monkeypatch.setattr(PoseCKDTask, "test_sets", no_test_split)
    main(["--quick", "--seeds", "0", "--arms", "kd_multipose_infonce", "--jobs", "1", "--threads", "1",
          "--teacher-runs", str(tmp_path / "teachers"), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path)])
    assert (tmp_path / "teachers" / "teacher-seed0" / "best.pt").exists()
    report = (tmp_path / "pose_ckd_tuning_quick.md").read_text()
    assert "| kd_multipose_infonce: logit + multi-positive InfoNCE, 30° (official multiposeNCE_KD) |" in report
    assert "target ≥ +3 in every seed" in report
    document = json.loads((tmp_path / "pose_ckd_tuning_quick.json").read_text())
    assert set(document["arms"]) == {"teacher", "baseline", "kd_multipose_infonce"}
    scores = document["arms"]["kd_multipose_infonce"]
    assert {"val_seen_acc_pi6", "val_unseen_acc_pi6", "unseen_bed", "unseen_azimuth_within_30"} <= set(scores)
    assert all(0 <= scores[k]["mean"] <= 100 for k in scores)

    # benchmarks/pose_ckd_unseen_errors.py reads such runs (validation images only) and writes its breakdown
    from benchmarks.pose_ckd_unseen_errors import main as unseen_errors

    unseen_errors(["--seeds", "0", "--arms", "teacher", "--runs", str(tmp_path / "teachers"), "--out", str(tmp_path),
                   "--threads", "1"])
    report = (tmp_path / "pose_ckd_unseen_errors.md").read_text()
    assert "| teacher | guitar (unseen) | " in report and "| teacher | bottle (seen, revolution) | " in report
    scores = json.loads((tmp_path / "pose_ckd_unseen_errors.json").read_text())["arms"]["teacher"]
    assert {"guitar_acc_pi6", "guitar_top_bin", "guitar_top3_bins", "bottle_near_0"} <= set(scores)
    assert all(0 <= scores[k]["mean"] <= 100 for k in scores)
    with pytest.raises(SystemExit, match="no trained run baseline-seed0"):
        unseen_errors(["--seeds", "0", "--arms", "baseline", "--runs", str(tmp_path / "teachers")])


def test_azimuth_spread_tells_a_collapsed_prediction_from_a_spread_one() -> None:
    from benchmarks.pose_ckd_unseen_errors import azimuth_spread

    spread = azimuth_spread(torch.deg2rad(torch.arange(0.5, 360.0, 1.0)))  # half degrees: no value on a boundary
    assert spread["top_bin"] == pytest.approx(100 / 12) and spread["top3_bins"] == pytest.approx(25.0)
    assert spread["near_0"] == pytest.approx(100 * 30 / 360)  # 0.5…14.5 and 345.5…359.5
    collapsed = azimuth_spread(torch.deg2rad(torch.tensor([350.0, 355.0, 359.0, 2.0, 100.0])))
    assert collapsed["top_bin"] == pytest.approx(60.0) and collapsed["near_0"] == pytest.approx(80.0)


def test_quick_tuning_against_a_cold_start_baseline(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--baseline baseline_cold``: the gains are measured against the student without the warm start, and the
    cold arms really start from Kaiming init (their saved options carry no warm start)."""
    from benchmarks.pose_ckd_tuning import main

    from distill3d.cli.methods import load_trained

    monkeypatch.setenv("DISTILL3D_CACHE", str(tmp_path / "cache"))
    main(["--quick", "--seeds", "0", "--arms", "kd_kl_cold", "--baseline", "baseline_cold", "--report-name", "cold",
          "--jobs", "1", "--threads", "1", "--teacher-runs", str(tmp_path / "teachers"), "--runs",
          str(tmp_path / "runs"), "--out", str(tmp_path)])
    report = (tmp_path / "cold_quick.md").read_text()
    assert "unseen gain over `baseline_cold` (per seed)" in report
    assert "| baseline_cold: no KD, no warm start | " in report
    document = json.loads((tmp_path / "cold_quick.json").read_text())
    assert set(document["arms"]) == {"teacher", "baseline_cold", "kd_kl_cold"}
    for arm in ("baseline_cold", "kd_kl_cold"):
        trained = load_trained(tmp_path / "runs_quick" / f"{arm}-seed0" / "best.pt")
        assert trained.task.options.pretrained_backbone is None
    assert load_trained(tmp_path / "teachers" / "teacher-seed0" / "best.pt").task.options.pretrained_backbone
