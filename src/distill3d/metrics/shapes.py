"""Shape classification and part segmentation metrics (ModelNet / ScanObjectNN / ShapeNetPart protocols).

All values are fractions in [0, 1] (multiply by 100 for the percentages papers print).

* overall accuracy (OA) = #correct / #samples;
* mean class accuracy (mAcc) = mean over classes present in the GT of the per-class recall
  ``#correct_c / #gt_c``;
* part segmentation, as evaluated by PointNet, PointNet++ and DGCNN on ShapeNetPart: for each shape of
  category ``c`` and each part ``p`` of ``c``, ``IoU_p = |pred = p ∧ gt = p| / |pred = p ∨ gt = p|``, and
  ``IoU_p = 1`` when ``p`` is absent from both prediction and GT. A shape's IoU is the mean over the parts of
  its category. Instance mIoU = mean over shapes; class mIoU = mean over categories (present in the data)
  of the mean shape IoU of that category.

Labels outside the category's parts in the prediction count as errors (they are in no part's
intersection). :func:`predict_parts_within_category` gives the usual prediction restricted to the
category's parts (arg-max over its logits only).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from distill3d.errors import ShapeError

__all__ = [
    "PartSegmentationResult",
    "mean_class_accuracy",
    "overall_accuracy",
    "part_segmentation_miou",
    "predict_parts_within_category",
]


def _labels(name: str, labels: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
    tensor = torch.as_tensor(labels)
    if tensor.is_floating_point() or tensor.is_complex():
        raise ShapeError(f"{name} must hold integer labels, got dtype {tensor.dtype}")
    return tensor.long()


def _label_pair(
    pred: torch.Tensor | np.ndarray | Sequence[int], target: torch.Tensor | np.ndarray | Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    pred_t, target_t = _labels("pred", pred), _labels("target", target)
    if pred_t.shape != target_t.shape or pred_t.dim() != 1 or pred_t.numel() == 0:
        raise ShapeError(
            "pred and target must be non-empty (N,) label tensors, "
            f"got {tuple(pred_t.shape)} and {tuple(target_t.shape)}"
        )
    return pred_t, target_t


def overall_accuracy(
    pred: torch.Tensor | np.ndarray | Sequence[int], target: torch.Tensor | np.ndarray | Sequence[int]
) -> float:
    """Fraction of correctly classified samples; labels (N,)."""
    pred_t, target_t = _label_pair(pred, target)
    return float((pred_t == target_t).double().mean())


def mean_class_accuracy(
    pred: torch.Tensor | np.ndarray | Sequence[int], target: torch.Tensor | np.ndarray | Sequence[int]
) -> float:
    """Mean over GT classes of the recall ``#(pred = gt = c) / #(gt = c)``; labels (N,) non-negative."""
    pred_t, target_t = _label_pair(pred, target)
    if bool((target_t < 0).any()):
        raise ValueError("target labels must be non-negative")
    num_classes = int(target_t.max()) + 1
    per_class_total = torch.bincount(target_t, minlength=num_classes)
    per_class_correct = torch.bincount(target_t[pred_t == target_t], minlength=num_classes)
    present = per_class_total > 0
    return float((per_class_correct[present].double() / per_class_total[present].double()).mean())


def _category_tables(
    category_to_parts: Mapping[Hashable, Sequence[int]],
) -> tuple[list[Hashable], torch.Tensor]:
    """Category keys (in mapping order) and a (num_categories, num_parts) bool table of their parts."""
    categories = list(category_to_parts)
    if not categories:
        raise ValueError("category_to_parts is empty")
    num_parts = 1 + max(max(parts) for parts in category_to_parts.values())
    table = torch.zeros(len(categories), num_parts, dtype=torch.bool)
    for row, category in enumerate(categories):  # one iteration per category (16 for ShapeNetPart)
        table[row, torch.as_tensor(list(category_to_parts[category]), dtype=torch.long)] = True
    return categories, table


def _category_indices(
    shape_categories: torch.Tensor | np.ndarray | Sequence[Hashable], categories: list[Hashable]
) -> torch.Tensor:
    position = {category: index for index, category in enumerate(categories)}
    keys = (
        shape_categories.tolist()
        if isinstance(shape_categories, torch.Tensor | np.ndarray)
        else shape_categories
    )
    try:
        return torch.as_tensor([position[key] for key in keys], dtype=torch.long)
    except KeyError as missing:
        raise ValueError(f"shape category {missing} is not in category_to_parts") from None


def predict_parts_within_category(
    logits: torch.Tensor,
    shape_categories: torch.Tensor | np.ndarray | Sequence[Hashable],
    category_to_parts: Mapping[Hashable, Sequence[int]],
) -> torch.Tensor:
    """Arg-max part label among the parts of each shape's category: logits (S, P, C) → labels (S, P)."""
    if logits.dim() != 3:
        raise ShapeError(f"logits must have shape (S, P, C), got {tuple(logits.shape)}")
    categories, table = _category_tables(category_to_parts)
    if table.shape[1] > logits.shape[2]:
        raise ShapeError(
            f"logits have {logits.shape[2]} part channels, category_to_parts needs {table.shape[1]}"
        )
    allowed = torch.zeros(len(categories), logits.shape[2], dtype=torch.bool)
    allowed[:, : table.shape[1]] = table
    allowed = allowed[_category_indices(shape_categories, categories)].to(logits.device)  # (S, C)
    return logits.masked_fill(~allowed.unsqueeze(1), -torch.inf).argmax(-1)


@dataclass(frozen=True)
class PartSegmentationResult:
    """ShapeNetPart mIoU: ``instance_miou`` (mean over shapes), ``class_miou`` (mean over categories),
    ``per_category_miou`` {category: mean shape IoU}, ``per_shape_iou`` (S,)."""

    instance_miou: float
    class_miou: float
    per_category_miou: dict[Hashable, float]
    per_shape_iou: torch.Tensor


def part_segmentation_miou(
    pred_parts: torch.Tensor | np.ndarray,
    target_parts: torch.Tensor | np.ndarray,
    shape_categories: torch.Tensor | np.ndarray | Sequence[Hashable],
    category_to_parts: Mapping[Hashable, Sequence[int]],
    ignore_index: int | None = None,
) -> PartSegmentationResult:
    """Instance and class mIoU of part labels (S, P) for S shapes of P points (see the module docstring).

    ``shape_categories`` (S,) holds keys of ``category_to_parts`` (e.g. ``"Airplane"`` → ``[0, 1, 2, 3]``).
    Points whose target equals ``ignore_index`` (e.g. padding) are left out.
    """
    pred, target = _labels("pred_parts", pred_parts), _labels("target_parts", target_parts)
    if pred.shape != target.shape or pred.dim() != 2:
        raise ShapeError(
            f"pred_parts and target_parts must be (S, P), got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    categories, part_table = _category_tables(category_to_parts)
    category_index = _category_indices(shape_categories, categories)
    num_shapes, num_parts = pred.shape[0], part_table.shape[1]
    if category_index.shape != (num_shapes,):
        raise ShapeError(
            f"shape_categories must hold {num_shapes} entries, got {tuple(category_index.shape)}"
        )

    keep = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    other = num_parts  # one extra bin for labels that name no part
    pred_bin = torch.where((pred >= 0) & (pred < num_parts), pred, other)
    target_bin = torch.where((target >= 0) & (target < num_parts), target, other)
    shape_offset = torch.arange(num_shapes).unsqueeze(1) * (num_parts + 1)
    bins = num_shapes * (num_parts + 1)

    def count(labels: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        flat = (shape_offset + labels)[selected]
        return torch.bincount(flat, minlength=bins).view(num_shapes, num_parts + 1)[:, :num_parts].double()

    pred_count = count(pred_bin, keep)
    target_count = count(target_bin, keep)
    intersection = count(target_bin, keep & (pred_bin == target_bin))
    union = pred_count + target_count - intersection
    part_iou = torch.where(union > 0, intersection / union.clamp_min(1), 1.0)  # (S, num_parts)

    shape_parts = part_table[category_index].double()  # (S, num_parts): parts of each shape's category
    per_shape_iou = (part_iou * shape_parts).sum(-1) / shape_parts.sum(-1)

    shapes_per_category = torch.bincount(category_index, minlength=len(categories)).double()
    iou_sum_per_category = torch.zeros(len(categories), dtype=torch.float64).index_add_(
        0, category_index, per_shape_iou
    )
    present = shapes_per_category > 0
    category_miou = iou_sum_per_category[present] / shapes_per_category[present]
    present_categories = [
        category for category, here in zip(categories, present.tolist(), strict=True) if here
    ]
    return PartSegmentationResult(
        instance_miou=float(per_shape_iou.mean()),
        class_miou=float(category_miou.mean()),
        per_category_miou={
            c: float(v) for c, v in zip(present_categories, category_miou.tolist(), strict=True)
        },
        per_shape_iou=per_shape_iou,
    )
