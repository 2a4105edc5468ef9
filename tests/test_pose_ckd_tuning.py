"""benchmarks/pose_ckd_tuning.py: a quick run trains a teacher where none exists, scores students on validation
images only, and writes the report and the JSON under the ``_quick`` name."""

from __future__ import annotations

import json

import pytest


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
