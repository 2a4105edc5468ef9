"""Classification accuracy, mean class accuracy and ShapeNetPart instance/class mIoU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distill3d.errors import ShapeError
from distill3d.metrics.shapes import (
    mean_class_accuracy,
    overall_accuracy,
    part_segmentation_miou,
    predict_parts_within_category,
)

PARTS = {"Airplane": [0, 1, 2, 3], "Bag": [4, 5], "Cap": [6, 7]}


def test_overall_and_mean_class_accuracy() -> None:
    target = torch.tensor([0, 0, 0, 0, 1, 1, 3])
    pred = torch.tensor([0, 0, 0, 1, 1, 0, 3])
    assert overall_accuracy(pred, target) == pytest.approx(5 / 7)
    # Class 2 never occurs in the GT and is left out: mean of 3/4, 1/2, 1/1.
    assert mean_class_accuracy(pred, target) == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    assert mean_class_accuracy(np.array([2, 2]), np.array([0, 1])) == 0.0
    with pytest.raises(ShapeError):
        overall_accuracy(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ShapeError):
        overall_accuracy(torch.zeros(3), torch.zeros(3))


def reference_shape_ious(pred: np.ndarray, target: np.ndarray, categories: list[str]) -> list[float]:
    """The PointNet++/DGCNN evaluation loop, restated with Python loops (test oracle only)."""
    ious = []
    for shape_pred, shape_target, category in zip(pred, target, categories, strict=True):
        part_ious = []
        for part in PARTS[category]:
            if (shape_target == part).sum() == 0 and (shape_pred == part).sum() == 0:
                part_ious.append(1.0)
            else:
                intersection = ((shape_target == part) & (shape_pred == part)).sum()
                union = ((shape_target == part) | (shape_pred == part)).sum()
                part_ious.append(intersection / union)
        ious.append(float(np.mean(part_ious)))
    return ious


def test_part_iou_hand_computed_example() -> None:
    target = torch.tensor([[0, 0, 1, 1, 2, 2], [4, 4, 4, 5, 5, 5]])
    pred = torch.tensor([[0, 1, 1, 1, 2, 2], [4, 4, 5, 5, 5, 0]])  # 0 is not a Bag part
    result = part_segmentation_miou(pred, target, ["Airplane", "Bag"], PARTS)
    airplane = (1 / 2 + 2 / 3 + 1 + 1) / 4  # part 3 absent from both → IoU 1
    bag = (2 / 3 + 2 / 4) / 2
    torch.testing.assert_close(result.per_shape_iou, torch.tensor([airplane, bag], dtype=torch.float64))
    assert result.instance_miou == pytest.approx((airplane + bag) / 2)
    assert result.per_category_miou == pytest.approx({"Airplane": airplane, "Bag": bag})


def test_part_iou_matches_reference_loop_on_random_labels() -> None:
    rng = np.random.default_rng(0)
    categories = [str(c) for c in rng.choice(["Airplane", "Bag", "Cap"], size=30, p=[0.6, 0.3, 0.1])]
    target = np.stack([rng.choice(PARTS[c], size=64) for c in categories])
    noise = rng.integers(0, 8, size=target.shape)
    pred = np.where(rng.random(target.shape) < 0.3, noise, target)
    result = part_segmentation_miou(pred, target, categories, PARTS)
    expected = reference_shape_ious(pred, target, categories)
    np.testing.assert_allclose(result.per_shape_iou.numpy(), expected, rtol=1e-12)
    assert result.instance_miou == pytest.approx(np.mean(expected))
    per_category = {
        c: np.mean([e for e, k in zip(expected, categories, strict=True) if k == c]) for c in PARTS
    }
    assert result.per_category_miou == pytest.approx(per_category)
    assert result.class_miou == pytest.approx(np.mean(list(per_category.values())))
    assert result.class_miou != pytest.approx(result.instance_miou)


def test_categories_absent_from_the_data_do_not_count_and_ignore_index() -> None:
    target = torch.tensor([[6, 7, 7, -1]])
    pred = torch.tensor([[6, 7, 6, 3]])
    result = part_segmentation_miou(pred, target, ["Cap"], PARTS, ignore_index=-1)
    assert list(result.per_category_miou) == ["Cap"]
    assert result.class_miou == result.instance_miou == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_prediction_restricted_to_the_category_parts() -> None:
    logits = torch.zeros(2, 3, 8)
    logits[:, :, 0] = 5.0  # the best global part is an Airplane part
    logits[:, 0, 5] = 1.0
    logits[:, 1, 4] = 1.0
    labels = predict_parts_within_category(logits, ["Airplane", "Bag"], PARTS)
    assert labels[0].tolist() == [0, 0, 0]
    assert labels[1].tolist() == [5, 4, 4]


def test_part_segmentation_errors() -> None:
    with pytest.raises(ShapeError):
        part_segmentation_miou(
            torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long), ["Bag"] * 2, PARTS
        )
    with pytest.raises(ShapeError):
        part_segmentation_miou(
            torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long), ["Bag"], PARTS
        )
    with pytest.raises(ValueError, match="Chair"):
        part_segmentation_miou(
            torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long), ["Chair"], PARTS
        )
