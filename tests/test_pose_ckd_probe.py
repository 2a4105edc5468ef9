"""benchmarks/pose_ckd_probe.py: linear probes read the azimuth from features that carry it and not from noise;
the extractors return every representation for a batch of the unseen categories; missing runs stop it clearly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch


def test_probe_reads_informative_features_and_not_noise() -> None:
    from benchmarks.common import AZIMUTH_BINS
    from benchmarks.pose_ckd_probe import category_only_accuracy, probe_accuracy

    rng = np.random.default_rng(0)
    n = 1200
    bins = rng.integers(0, AZIMUTH_BINS, 2 * n)
    categories = rng.integers(0, 2, 2 * n)
    angles = (bins + 0.5) * 2 * np.pi / AZIMUTH_BINS
    informative = np.stack([np.cos(angles), np.sin(angles)], 1) * 3 + rng.normal(0, 0.1, (2 * n, 2))
    informative = np.concatenate([informative, rng.normal(size=(2 * n, 6))], 1)
    noise = rng.normal(size=(2 * n, 8))
    good = probe_accuracy(informative[:n], bins[:n], informative[n:], bins[n:], categories[n:])
    bad = probe_accuracy(noise[:n], bins[:n], noise[n:], bins[n:], categories[n:])
    assert good["mean"] > 90 and bad["mean"] < 20
    assert good["mean"] == pytest.approx(np.mean([v for k, v in good.items() if k != "mean"]))
    floor = category_only_accuracy(bins[:n], categories[:n], bins[n:], categories[n:])
    assert 0 < floor["mean"] < 20


def test_azimuth_bins_wrap_negative_angles() -> None:
    from benchmarks.common import azimuth_bin
    from benchmarks.pose_ckd_probe import azimuth_bins

    azimuths = [0.01, -0.01, math.radians(45), 2 * math.pi - 1e-9, math.radians(-345)]
    assert azimuth_bin(torch.tensor(azimuths, dtype=torch.float64)).tolist() == [0, 11, 1, 11, 0]
    viewpoint = torch.tensor([[a, 0, 0] for a in azimuths[:4]], dtype=torch.float64)
    assert azimuth_bins(viewpoint).tolist() == [0, 11, 1, 11]


def test_extractors_return_every_representation() -> None:
    from benchmarks.pose_ckd_probe import encoder_features, extract, student_features, teacher_features

    from distill3d.data.worlds.shapes import UNSEEN_CATEGORIES, ShapesViewpointDataset
    from distill3d.methods.pose_ckd import Options, build_image_encoder, build_student, build_teacher

    torch.manual_seed(0)
    options = Options(backbone_width=8, image_size=32, num_points=64, feature_dim=16, shape_dim=32)
    extractors = [teacher_features(build_teacher(options).eval()),
                  student_features(build_student(options).eval(), "baseline"),
                  encoder_features(build_image_encoder(options).eval(), "warm_start")]
    dataset = ShapesViewpointDataset("val", 6, UNSEEN_CATEGORIES, image_size=32, n_points=64, seed=0)
    features, bins, categories = extract(extractors, dataset, batch_size=4)
    assert set(features) == {"teacher_fused", "teacher_image", "teacher_encoder", "teacher_heads", "baseline",
                             "baseline_encoder", "baseline_heads", "warm_start"}
    assert features["teacher_fused"].shape == (6, 16) and features["baseline"].shape == (6, 16)
    assert features["warm_start"].shape[0] == 6 and bins.shape == (6,) and categories.shape == (6,)
    assert features["teacher_heads"].shape == (6, 1)  # the decoded azimuth (radians), scored without a probe

    teacher = build_teacher(options).eval()
    images, points = torch.rand(3, 3, 32, 32), torch.rand(3, 64, 3)
    with torch.no_grad():  # the encoder feature is read from the teacher's one forward pass, unchanged
        assert torch.equal(teacher_features(teacher)(images, points)["teacher_encoder"], teacher.image_encoder(images))


def test_missing_runs_stop_with_one_line(tmp_path) -> None:
    from benchmarks.pose_ckd_probe import main

    with pytest.raises(SystemExit, match="no trained run teacher-seed0"):
        main(["--seeds", "0", "--runs", str(tmp_path), "--out", str(tmp_path)])
