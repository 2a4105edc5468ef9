"""Generation speed of the shapes world and of the bare ray-caster (images or samples per second).

Run: ``python -m benchmarks.world_speed`` (≈30 s on 2 cores). Prints a markdown table and writes
``benchmarks/results/world_speed.md``. Each row is the best of a few repeats after a warm-up call (numba
compiles, or loads its cache, on first use; the first large allocations also pay page faults).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numba
import numpy as np

from benchmarks.common import write_report
from distill3d.data.worlds.render import SceneBatch, render
from distill3d.data.worlds.shapes import CATEGORIES, ShapesWorld, build_object, intrinsics, viewpoint_extrinsics

BATCH = 256


def _rate(work: Callable[[], object], count: int, repeats: int = 5) -> float:
    work()
    best = min(_timed(work) for _ in range(repeats))
    return count / best


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    size = 64
    world = ShapesWorld(image_size=size)
    objects = [build_object(CATEGORIES[i % len(CATEGORIES)], np.random.default_rng(i)) for i in range(BATCH)]
    scene = SceneBatch.stack([o.primitives for o in objects])
    azimuth = np.linspace(0, 2 * np.pi, BATCH, endpoint=False)
    R, t = viewpoint_extrinsics(azimuth, 0.3, 0.0, 3.0)
    K = intrinsics(1.1 * size, (size - 1) / 2, (size - 1) / 2).repeat(BATCH, 0)
    mean_prims = float(scene.count.mean())
    indices = list(range(BATCH))
    rows = [
        ("renderer only, 1 ray/pixel", "images", _rate(lambda: render(scene, K, R, t, size, size), BATCH, 10)),
        (
            "renderer only, 2×2 rays/pixel",
            "images",
            _rate(lambda: render(scene, K, R, t, size, size, samples_per_side=2), BATCH, 10),
        ),
        (
            "ShapesViewpointDataset sample (image + labels + 1024 points)",
            "samples",
            _rate(lambda: world.viewpoint_batch("train", indices), BATCH),
        ),
        (
            "ShapesViewpointDataset sample without points",
            "samples",
            _rate(lambda: world.viewpoint_batch("train", indices, with_points=False), BATCH),
        ),
        (
            "ShapesPointCloudDataset sample (1024 points)",
            "samples",
            _rate(lambda: world.point_cloud_batch("train", indices), BATCH),
        ),
        (
            "ShapesPointCloudDataset sample + 12-view rig renders",
            "samples",
            _rate(lambda: world.point_cloud_batch("train", indices[:64], with_views=True), 64, repeats=2),
        ),
    ]
    body = (
        f"Shapes world at {size}×{size}, batches of {BATCH}, {numba.get_num_threads()} numba threads, "
        f"{mean_prims:.1f} primitives per object on average.\n\n"
        "| what | per second |\n|---|---|\n"
        + "".join(f"| {name} | {rate:,.0f} {unit} |\n" for name, unit, rate in rows)
    )
    print(body)
    write_report("world_speed", body)


if __name__ == "__main__":
    main()
