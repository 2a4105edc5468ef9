"""Which box attribute holds a trained SKD-WM3D detector back?  Scores the MDN's detections on the validation split
(Car AP_BEV@0.5, R40, Moderate) as they are, then with one attribute of every detection that matches a ground-truth
car (2D IoU ≥ 0.5, best match) replaced by the ground truth's: the depth (the box slides along its viewing ray),
the whole position, the yaw, the size. The attribute whose oracle lifts the AP most is the one to improve.

Run: ``python -m benchmarks.skd_wm3d_oracle RUN_DIR`` (a run folder of ``distill3d train skd_wm3d``).
"""

from __future__ import annotations

import copy
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader

from distill3d.cli.methods import load_trained
from distill3d.data.kitti_detection import evaluation_frames
from distill3d.geometry.boxes3d import box2d_iou
from distill3d.metrics.kitti import FrameAnnotations, evaluate_kitti

ORACLES = {"depth": {"depth"}, "position": {"position"}, "yaw": {"yaw"}, "size": {"size"},
           "yaw + size": {"yaw", "size"}}


def best_matches(boxes: np.ndarray, candidates: np.ndarray, min_iou: float = 0.5) -> list[tuple[int, int]]:
    """``(i, j)`` for each box i (N, 4) whose best-overlapping candidate j (M, 4) has 2D IoU ≥ ``min_iou``."""
    if len(boxes) == 0 or len(candidates) == 0:
        return []
    iou = np.asarray(box2d_iou(boxes, candidates))
    best = iou.argmax(1)
    return [(i, int(j)) for i, j in enumerate(best) if iou[i, j] >= min_iou]


def with_truth(truth: list[FrameAnnotations], found: list[FrameAnnotations],
               fields: set[str]) -> list[FrameAnnotations]:
    """Copies of ``found`` whose Car detections matched to a ground-truth car take its ``fields``."""
    result = []
    for gt, dt in zip(truth, found, strict=True):
        dt = copy.deepcopy(dt)
        cars, detected = np.flatnonzero(gt.name == "Car"), np.flatnonzero(dt.name == "Car")
        for row, column in best_matches(dt.bbox[detected], gt.bbox[cars]):
            k, j = detected[row], cars[column]
            if "depth" in fields:
                dt.location[k] *= gt.location[j, 2] / dt.location[k, 2]
            if "position" in fields:
                dt.location[k] = gt.location[j]
            if "yaw" in fields:
                dt.rotation_y[k] = gt.rotation_y[j]
            if "size" in fields:
                dt.dimensions[k] = gt.dimensions[j]
        result.append(dt)
    return result


def main() -> None:
    torch.set_num_threads(2)
    run = load_trained(sys.argv[1])
    task, model = run.task, run.model
    truth, found = [], []
    for batch in DataLoader(task.val_set(), batch_size=32, collate_fn=task.collate):
        truth += evaluation_frames(batch)
        found += task.predict(model, batch)

    def ap(frames: list[FrameAnnotations]) -> float:
        metrics = evaluate_kitti(truth, frames, classes=("Car",), metrics=("bev",)).to_dict(include_aos=False)
        return metrics["KITTI/Car_BEV_AP40_moderate_loose"]

    line = [f"as predicted {ap(found):.1f}"]
    line += [f"true {name} {ap(with_truth(truth, found, fields)):.1f}" for name, fields in ORACLES.items()]
    print(f"{sys.argv[1]}: val Car AP_BEV@0.5 R40 Moderate — " + ", ".join(line))


if __name__ == "__main__":
    main()
