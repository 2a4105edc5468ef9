"""KITTI object evaluation vs. the mmdetection3d / OpenPCDet / traveller59 golden outputs, and small cases."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest

from conftest import shared_path
from distill3d.data.kitti_io import evaluate_kitti_dirs
from distill3d.metrics.kitti import (
    FrameAnnotations,
    KittiEvalResult,
    default_min_overlaps,
    evaluate_kitti,
    sample_score_thresholds,
)

GOLDEN_FOLDERS = ["kitti_eval", "kitti_eval_lidarlike", "kitti_eval_realgt"]
DIFFICULTY_NAMES = ("easy", "moderate", "hard")


@functools.cache
def golden_result(folder: str) -> tuple[KittiEvalResult, dict]:
    root = shared_path("golden", folder)
    expected = json.loads((root / "expected.json").read_text())
    return evaluate_kitti_dirs(root / "gt", root / "det"), expected


def ap_array(result: KittiEvalResult, key: str) -> np.ndarray:
    recall_points, metric = key.split("_")
    return (result.ap11 if recall_points == "AP11" else result.ap40)[metric]


# ---------------------------------------------------------------------------------------------- golden


@pytest.mark.shared
@pytest.mark.parametrize("folder", GOLDEN_FOLDERS)
def test_all_ap_arrays_match_the_references(folder: str) -> None:
    result, expected = golden_result(folder)
    assert result.classes == tuple(expected["classes"])
    np.testing.assert_allclose(result.min_overlaps, expected["min_overlaps"])
    for source in ("mmdet3d_do_eval_arrays", "openpcdet_do_eval_arrays", "traveller59_R11_arrays"):
        arrays = expected[source]
        assert len(arrays) >= 4
        for key, reference in arrays.items():
            ours = ap_array(result, key)
            assert ours.shape == (3, 3, 2)
            np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6, err_msg=f"{source} {key}")


@pytest.mark.shared
@pytest.mark.parametrize("folder", GOLDEN_FOLDERS)
def test_result_dict_and_clean_data_counts_match(folder: str) -> None:
    result, expected = golden_result(folder)
    ours = result.to_dict(include_aos=False)
    reference = expected["mmdet3d_kitti_eval_ret_dict"]
    assert list(ours) == list(reference)  # same keys, same order
    np.testing.assert_allclose(list(ours.values()), list(reference.values()), rtol=0, atol=1e-6)
    with_aos = result.to_dict()
    assert set(reference) < set(with_aos) and "KITTI/Car_AOS_AP40_moderate_strict" in with_aos
    for ci, class_name in enumerate(result.classes):
        for di, difficulty in enumerate(DIFFICULTY_NAMES):
            counts = expected["clean_data_counts"][f"{class_name}_{difficulty}"]
            assert counts == {
                "num_valid_gt": result.num_valid_gt[ci, di],
                "num_ignored_gt": result.num_ignored_gt[ci, di],
                "num_valid_dt": result.num_valid_dt[ci, di],
            }


@pytest.mark.shared
@pytest.mark.parametrize("folder", GOLDEN_FOLDERS)
def test_table_is_the_mmdet3d_printout(folder: str) -> None:
    result, _ = golden_result(folder)
    reference = (shared_path("golden", folder) / "reference_output_mmdet3d.txt").read_text()
    assert result.table().strip("\n") == reference.strip("\n")


@pytest.mark.shared
def test_openpcdet_named_values() -> None:
    result, expected = golden_result("kitti_eval")
    named = expected["openpcdet_ret_dict"]
    metric_of = {"image": "bbox", "bev": "bev", "3d": "3d", "aos": "aos"}
    checked = 0
    for key, value in named.items():
        head, tail = key.split("/")
        class_name, kind = head.rsplit("_", 1)
        difficulty, recall = tail.split("_")
        if kind not in metric_of or class_name not in result.classes:
            continue
        table = result.ap40 if recall == "R40" else result.ap11
        ours = table[metric_of[kind]][result.classes.index(class_name), DIFFICULTY_NAMES.index(difficulty), 0]
        assert ours == pytest.approx(value, abs=1e-6), key
        checked += 1
    assert checked >= 36


@pytest.mark.shared
def test_few_gt_sampling_quirk_on_real_labels() -> None:
    """2 valid pedestrians, both found with the top scores: AP is capped by the 41-slot sampling."""
    result, _ = golden_result("kitti_eval_realgt")
    pedestrian = result.classes.index("Pedestrian")
    assert result.num_valid_gt[pedestrian].tolist() == [2, 2, 2]
    np.testing.assert_allclose(result.ap11["bbox"][pedestrian, :, 0], 100 / 11, atol=1e-9)
    np.testing.assert_allclose(result.ap40["bbox"][pedestrian, :, 0], 2.5, atol=1e-9)
    np.testing.assert_allclose(result.ap11["3d"][pedestrian, :, 0], 100 / 11, atol=1e-9)
    np.testing.assert_allclose(result.ap40["3d"][pedestrian, :, 0], 0.0, atol=1e-9)
    cyclist = result.classes.index("Cyclist")  # no valid GT at all: AP 0, no crash
    assert result.num_valid_gt[cyclist].tolist() == [0, 0, 0]
    assert all(np.all(table[cyclist] == 0) for table in (*result.ap11.values(), *result.ap40.values()))


# ---------------------------------------------------------------------------------------------- constructed


def frame(
    names: list[str],
    boxes3d: list[list[float]] | None = None,
    bbox: list[list[float]] | None = None,
    scores: list[float] | None = None,
    occluded: list[int] | None = None,
    alpha: list[float] | None = None,
) -> FrameAnnotations:
    """A frame of objects; by default each a 1.5 x 1.6 x 4 m car at z = 10 m with a 100 x 80 px box."""
    n = len(names)
    boxes = np.array(boxes3d if boxes3d is not None else [[0.0, 1.5, 10.0, 1.5, 1.6, 4.0, 0.0]] * n)
    return FrameAnnotations(
        name=np.array(names),
        truncated=np.zeros(n),
        occluded=np.array(occluded if occluded is not None else [0] * n),
        alpha=np.array(alpha if alpha is not None else [0.0] * n),
        bbox=np.array(bbox if bbox is not None else [[100.0, 100.0, 200.0, 180.0]] * n),
        dimensions=boxes[:, 3:6].reshape(n, 3),
        location=boxes[:, 0:3].reshape(n, 3),
        rotation_y=boxes[:, 6].reshape(n),
        score=np.array(scores if scores is not None else [1.0] * n),
    )


def car_ap(
    gt: list[FrameAnnotations], dt: list[FrameAnnotations], metric: str = "bbox"
) -> tuple[float, float]:
    result = evaluate_kitti(gt, dt, classes=["Car"])
    return float(result.ap11[metric][0, 1, 0]), float(result.ap40[metric][0, 1, 0])


def test_perfect_detections_with_enough_gt_give_100() -> None:
    gt = [frame(["Car"]) for _ in range(45)]
    dt = [frame(["Car"], scores=[0.5 + 0.01 * i]) for i in range(45)]
    for metric in ("bbox", "bev", "3d", "aos"):
        assert car_ap(gt, dt, metric) == pytest.approx((100.0, 100.0))


def test_perfect_detections_with_two_gt_hit_the_sampling_cap() -> None:
    gt = [frame(["Car"]), frame(["Car"])]
    dt = [frame(["Car"], scores=[0.9]), frame(["Car"], scores=[0.8])]
    assert car_ap(gt, dt) == pytest.approx((100 / 11, 100 / 40))


def test_score_threshold_sampling() -> None:
    np.testing.assert_array_equal(sample_score_thresholds(np.array([0.8, 0.9]), 2), [0.9, 0.8])
    scores = np.linspace(1.0, 0.01, 80)
    thresholds = sample_score_thresholds(scores, 80)
    assert len(thresholds) == 41 and thresholds[0] == 1.0 and thresholds[-1] == pytest.approx(0.01)
    assert np.all(np.diff(thresholds) < 0)
    assert len(sample_score_thresholds(np.zeros(0), 0)) == 0
    sparse = sample_score_thresholds(np.linspace(1, 0.5, 10), 100)  # recall 0.01 .. 0.1 in steps of 1/40
    assert set(sparse) <= set(np.linspace(1, 0.5, 10)) and 3 <= len(sparse) < 10


def test_neighbour_class_detection_is_ignored_not_false_positive() -> None:
    """Two frames, each with a Car and a Van; with 2 valid GT a perfect result scores (100/11, 100/40)."""
    boxes = [[0, 1.5, 10, 1.5, 1.6, 4, 0], [5, 1.5, 20, 2.0, 1.9, 5, 0]]
    image_boxes = [[100, 100, 200, 180], [400, 100, 480, 170]]
    gt = [frame(["Car", "Van"], boxes3d=boxes, bbox=image_boxes)] * 2
    hits = [frame(["Car"], scores=[0.8]), frame(["Car"], scores=[0.7])]
    also_on_van = [
        frame(["Car", "Car"], boxes3d=boxes, bbox=image_boxes, scores=[score, 0.95]) for score in (0.8, 0.7)
    ]
    for metric in ("bbox", "3d"):
        assert car_ap(gt, also_on_van, metric) == car_ap(gt, hits, metric) == pytest.approx((100 / 11, 2.5))


def test_dontcare_region_only_excuses_2d_false_positives() -> None:
    boxes = [[0, 1.5, 10, 1.5, 1.6, 4, 0], [-1000, -1000, -1000, -1, -1, -1, -10]]
    gt = [frame(["Car", "DontCare"], boxes3d=boxes, bbox=[[100, 100, 200, 180], [600, 100, 800, 200]])] * 2
    dt = [
        frame(["Car", "Car"], boxes3d=[[0, 1.5, 10, 1.5, 1.6, 4, 0], [8, 1.5, 30, 1.5, 1.6, 4, 0]],
              bbox=[[100, 100, 200, 180], [650, 120, 700, 160]], scores=[score, 0.95])
        for score in (0.8, 0.7)
    ]  # fmt: skip
    assert car_ap(gt, dt, "bbox") == pytest.approx((100 / 11, 2.5))  # inside the DontCare box: ignored
    # BEV / 3D: both extra detections are false positives; best precision 2 / 4 at either threshold slot.
    assert car_ap(gt, dt, "bev") == pytest.approx((50 / 11, 1.25))


def test_difficulty_filter_ignores_rather_than_misses() -> None:
    small = [[100.0, 100.0, 160.0, 130.0]]  # 30 px high: too small for easy (> 40), fine for moderate (> 25)
    gt = [frame(["Car"], bbox=small)] * 2
    dt = [frame(["Car"], bbox=small, scores=[0.9]), frame(["Car"], bbox=small, scores=[0.8])]
    result = evaluate_kitti(gt, dt, classes=["Car"])
    assert result.num_valid_gt[0].tolist() == [0, 2, 2] and result.num_ignored_gt[0].tolist() == [2, 0, 0]
    assert result.ap11["bbox"][0, 0, 0] == 0.0  # no valid GT in easy, and nothing counted as a miss or FP
    assert result.num_valid_dt[0].tolist() == [0, 2, 2]  # detections under 40 px are ignored in easy
    occluded = evaluate_kitti([frame(["Car"], occluded=[2])], [frame(["Car"])], classes=["Car"])
    assert occluded.num_valid_gt[0].tolist() == [0, 0, 1]


def test_aos_uses_the_2d_matches_and_heading() -> None:
    gt = [frame(["Car"], alpha=[0.3]) for _ in range(45)]
    flipped = [frame(["Car"], alpha=[0.3 + math.pi], scores=[0.5 + 0.01 * i]) for i in range(45)]
    result = evaluate_kitti(gt, flipped, classes=["Car"])
    assert result.ap40["bbox"][0, 1, 0] == pytest.approx(100.0)
    assert result.ap40["aos"][0, 1, 0] == pytest.approx(0.0, abs=1e-9)
    no_alpha = [frame(["Car"], alpha=[-10.0]) for _ in range(45)]
    assert "aos" not in evaluate_kitti(gt, no_alpha, classes=["Car"]).ap40  # invalid alphas: no AOS


def test_frames_without_objects_and_single_class_output() -> None:
    gt = [frame(["Car"]), FrameAnnotations.empty(), frame(["DontCare"])]
    dt = [frame(["Car"], scores=[0.7]), frame(["Car"], scores=[0.6]), FrameAnnotations.empty()]
    result = evaluate_kitti(gt, dt, classes=["Car"])
    keys = result.to_dict()
    assert "KITTI/Car_2D_AP11_moderate_strict" in keys and not any("Overall" in key for key in keys)
    assert "Overall" not in result.table() and result.table().startswith("\n----------- AP11 Results")


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="frames"):
        evaluate_kitti([frame(["Car"])], [], classes=["Car"])
    with pytest.raises(ValueError, match="no default IoU thresholds"):
        default_min_overlaps(["Truck"])
    with pytest.raises(ValueError, match="metrics"):
        evaluate_kitti([frame(["Car"])], [frame(["Car"])], metrics=["iou"])
    custom = evaluate_kitti([frame(["Truck"])], [frame(["Truck"])], classes=["Truck"],
                            min_overlaps=np.full((1, 3, 1), 0.7))  # fmt: skip
    assert custom.ap11["3d"].shape == (1, 3, 1)
    only_2d = evaluate_kitti([frame(["Car"])], [frame(["Car"])], classes=["Car"], metrics=["bbox"])
    assert set(only_2d.ap11) == {"bbox", "aos"}
