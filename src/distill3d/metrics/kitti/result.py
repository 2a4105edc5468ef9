"""The result of a KITTI evaluation: AP and AOS arrays, tables, dictionaries."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from distill3d.metrics.kitti.annotations import (
    DIFFICULTIES,
    OVERLAP_SETTINGS,
)

# ----------------------------------------------------------------------------------------------------------
# Result
# ----------------------------------------------------------------------------------------------------------


@dataclass
class KittiEvalResult:
    """AP values of a KITTI evaluation, in percent.

    Every AP array is indexed ``[class, difficulty, overlap_setting]`` with shape (C, 3, S): classes as in
    :attr:`classes`, difficulties easy / moderate / hard, overlap settings 0 = strict (official), 1 = loose.
    A metric that was not evaluated (e.g. AOS when alphas are invalid) is absent from the dicts.

    Attributes:
        classes: evaluated class names.
        min_overlaps: (S, 3, C) IoU thresholds per setting, metric (bbox, bev, 3d) and class.
        ap11: metric name ("bbox", "bev", "3d", "aos") -> (C, 3, S) AP with 11 recall positions.
        ap40: metric name -> (C, 3, S) AP with 40 recall positions.
        precision: metric name -> (C, 3, S, 41) monotone precision (AOS: similarity) per threshold slot.
        num_valid_gt: (C, 3) valid GT boxes per class and difficulty.
        num_ignored_gt: (C, 3) ignored GT boxes (wrong difficulty or neighbouring class).
        num_valid_dt: (C, 3) detections that take part (right class, tall enough).
    """

    classes: tuple[str, ...]
    min_overlaps: np.ndarray
    ap11: dict[str, np.ndarray]
    ap40: dict[str, np.ndarray]
    precision: dict[str, np.ndarray] = field(repr=False)
    num_valid_gt: np.ndarray
    num_ignored_gt: np.ndarray
    num_valid_dt: np.ndarray

    def to_dict(self, include_aos: bool = True) -> dict[str, float]:
        """Flat ``{name: AP}`` dict named like mmdetection3d's KITTI metric.

        Keys: ``KITTI/{Class}_{3D|BEV|2D}_AP{11|40}_{difficulty}_{strict|loose}`` and, with several classes,
        ``KITTI/Overall_{3D|BEV|2D}_AP{11|40}_{difficulty}`` (class mean of the strict setting), in
        mmdetection3d's order. With ``include_aos`` (and AOS evaluated), ``..._AOS_AP..`` keys are added for
        the classes and the overall mean, which mmdetection3d computes but leaves out of its dict.
        """
        labels = {"3d": "3D", "bev": "BEV", "bbox": "2D"}
        if include_aos:
            labels["aos"] = "AOS"
        result: dict[str, float] = {}
        for recall_points, table in (("AP11", self.ap11), ("AP40", self.ap40)):
            present = [metric for metric in labels if metric in table]
            for class_index, class_name in enumerate(self.classes):
                for setting in range(self.min_overlaps.shape[0]):
                    suffix = (
                        OVERLAP_SETTINGS[setting] if setting < len(OVERLAP_SETTINGS) else f"setting{setting}"
                    )
                    for difficulty_index, difficulty in enumerate(DIFFICULTIES):
                        for metric in present:
                            key = f"KITTI/{class_name}_{labels[metric]}_{recall_points}_{difficulty}_{suffix}"
                            result[key] = float(table[metric][class_index, difficulty_index, setting])
            if len(self.classes) > 1:
                for difficulty_index, difficulty in enumerate(DIFFICULTIES):
                    for metric in present:
                        key = f"KITTI/Overall_{labels[metric]}_{recall_points}_{difficulty}"
                        result[key] = float(table[metric][:, difficulty_index, 0].mean())
        return result

    def table(self) -> str:
        """The devkit-style text report, formatted exactly like mmdetection3d's ``kitti_eval`` printout."""
        lines: list[str] = []
        row_labels = (("bbox", "bbox"), ("bev", "bev "), ("3d", "3d  "), ("aos", "aos "))
        for recall_points, table in (("AP11", self.ap11), ("AP40", self.ap40)):
            lines += ["", f"----------- {recall_points} Results ------------", ""]
            for class_index, class_name in enumerate(self.classes):
                for setting in range(self.min_overlaps.shape[0]):
                    thresholds = ", ".join(f"{v:.2f}" for v in self.min_overlaps[setting, :, class_index])
                    lines.append(f"{class_name} {recall_points}@{thresholds}:")
                    for metric, label in row_labels:
                        if metric in table:
                            lines.append(
                                _table_row(
                                    label,
                                    recall_points,
                                    table[metric][class_index, :, setting],
                                    decimals=2 if metric == "aos" else 4,
                                )
                            )
            if len(self.classes) > 1:
                lines += ["", f"Overall {recall_points}@{', '.join(DIFFICULTIES)}:"]
                for metric, label in row_labels:
                    if metric in table:
                        values = table[metric][:, :, 0].mean(axis=0)
                        lines.append(
                            _table_row(label, recall_points, values, decimals=2 if metric == "aos" else 4)
                        )
        return "\n".join(lines) + "\n"


def _table_row(label: str, recall_points: str, values: np.ndarray, decimals: int) -> str:
    return f"{label} {recall_points}:" + ", ".join(f"{v:.{decimals}f}" for v in values)


