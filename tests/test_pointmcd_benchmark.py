"""benchmarks/pointmcd.py: the chance level of uniform part guessing, and a quick run of a subset of its arms
(report tables, checks and the JSON schema, written under the ``_quick`` name)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from benchmarks.pointmcd import uniform_part_chance


def test_uniform_part_chance_of_a_two_part_category() -> None:
    """Every point truly part 0 of a 2-part category: guesses are part 0 half the time → IoU_0 ≈ 1/2, and part 1
    (absent from the truth, but guessed) has IoU 0, so the shape's mIoU ≈ 1/4."""
    shapes, points = 8, 2000
    tensors = {"category": torch.zeros(shapes, dtype=torch.long),
               "part_labels": torch.zeros(shapes, points, dtype=torch.long)}
    task = SimpleNamespace(point_split=lambda split: SimpleNamespace(tensors=tensors),
                           spec=SimpleNamespace(category_to_parts={0: (0, 1)}))
    instance, klass = uniform_part_chance(task)
    assert instance == pytest.approx(25.0, abs=1.0)
    assert klass == pytest.approx(instance)


def test_quick_run_of_scratch_and_distilled_arms(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.pointmcd import main

    monkeypatch.setenv("DISTILL3D_CACHE", str(tmp_path / "cache"))
    arms = ["cls_pointnet_scratch_all", "cls_pointnet_scratch", "cls_pointnet_distilled", "seg_pointnet_scratch"]
    main(["--quick", "--threads", "1", "--arms", *arms, "--out", str(tmp_path)])
    report = (tmp_path / "pointmcd_quick.md").read_text()
    assert not (tmp_path / "pointmcd.md").exists()
    assert "QUICK" in report and "## Checks (issue #11)" in report
    assert "Chance level (uniform guessing): 6.25 % OA and mAcc (16 categories)." in report
    assert "| seg_pointnet_scratch (PointNet from scratch (λ = 0)) |" in report
    assert "PointNet classification OA at 10% labels, distilled − scratch per seed:" in report
    assert "| cls_pointnet_scratch_all (PointNet from scratch, all labels) | 100% |" in report
    assert "| cls_pointnet_distilled (PointNet + L_MCD (λ = 1)) | 10% |" in report
    assert "loss w·SmoothCE + λ·L_MCD with w = 0.2 for PointNet, 0.1 for DGCNN" in report
    assert "Scratch PointNet test OA (all labels) ≥ 85 %:" in report
    assert "Scratch PointNet part instance mIoU ≥ 70 %:" in report
    assert "DGCNN" not in report.split("## Checks")[1]  # no check for arms that did not run
    document = json.loads((tmp_path / "pointmcd_quick.json").read_text())
    assert set(document["arms"]) == set(arms)
    assert set(document["arms"]["seg_pointnet_scratch"]) == {"instance_miou", "class_miou", "point_acc",
                                                            "train_minutes", "test_minutes"}
    assert len(document["arms"]["cls_pointnet_distilled"]["oa"]["per_seed"]) == 1
    assert 0 < document["chance"]["segmentation_instance_miou"] < 100
    assert document["epochs"] == {arm: 1 for arm in arms}
    assert document["teacher"]["views"] == 12 and "over 12 rendered views (rings at 30° elevation)" in report
