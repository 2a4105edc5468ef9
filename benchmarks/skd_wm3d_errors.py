"""Where does a trained SKD-WM3D detector's 3D go wrong?  Matches the MDN's detections on the first 128 validation
frames to ground-truth Cars by 2D IoU (≥ 0.5) and prints the error of depth, position, dimensions and yaw.

Run: ``python -m benchmarks.skd_wm3d_errors RUN_DIR`` (a run folder of ``distill3d train skd_wm3d``).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.skd_wm3d_oracle import best_matches
from distill3d.cli.methods import load_trained
from distill3d.data.kitti_detection import evaluation_frames


def main() -> None:
    torch.set_num_threads(2)
    run = load_trained(sys.argv[1])
    task, model = run.task, run.model
    loader = DataLoader(task.val_set(), batch_size=32, collate_fn=task.collate)
    rows = []
    for i, batch in enumerate(loader):
        if i == 4:
            break
        dets = task.predict(model, batch)
        gts = evaluation_frames(batch)
        for gt, dt in zip(gts, dets, strict=True):
            cars = gt.select(gt.name == "Car")
            if len(cars) == 0 or len(dt) == 0:
                continue
            for g, d in best_matches(cars.bbox, dt.bbox):
                rows.append([cars.location[g, 2], dt.location[d, 2], cars.location[g, 0], dt.location[d, 0],
                             cars.location[g, 1], dt.location[d, 1], *cars.dimensions[g], *dt.dimensions[d],
                             cars.rotation_y[g], dt.rotation_y[d], dt.score[d]])
    r = np.array(rows)
    print("matched cars:", len(r))
    z, zp = r[:, 0], r[:, 1]
    print(f"depth: median |err| {np.median(abs(zp - z)):.2f} m, median rel err {np.median(abs(zp - z) / z):.3f}, "
          f"mean signed {np.mean(zp - z):.2f}")
    print(f"x: median |err| {np.median(abs(r[:, 3] - r[:, 2])):.2f}; y (bottom): median |err| "
          f"{np.median(abs(r[:, 5] - r[:, 4])):.2f}, mean signed {np.mean(r[:, 5] - r[:, 4]):.2f}")
    print("dims gt mean", r[:, 6:9].mean(0), "pred mean", r[:, 9:12].mean(0))
    dry = np.abs((r[:, 13] - r[:, 12] + np.pi) % (2 * np.pi) - np.pi)
    print(f"ry: median |err| {np.median(dry):.2f} rad; share within 30 deg {np.mean(dry < np.pi / 6):.2f}; "
          f"share near a pi flip {np.mean(dry > 5 * np.pi / 6):.2f}")
    bins = (z < 15, (z >= 15) & (z < 30), z >= 30)
    print("depth rel err by GT depth (<15, 15-30, >30 m):",
          [float(np.median(abs(zp - z)[m] / z[m])) if m.any() else None for m in bins])


if __name__ == "__main__":
    main()
