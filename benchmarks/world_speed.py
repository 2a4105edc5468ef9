"""Generation speed of the procedural worlds and of the bare ray-caster, and whether each world is cached.

Run: ``python -m benchmarks.world_speed`` (≈1 min on 2 cores). Prints a markdown report and writes
``benchmarks/results/world_speed.md``. Each row is the best of a few repeats after a warm-up call (numba
compiles, or loads its cache, on first use; the first large allocations also pay page faults).

The decision paragraph compares each world's generation rate with the rate its reference model trains at
(forward + backward + SGD step, float32, on the same cores) and with the memory its training split takes when
materialised (:class:`distill3d.data.cache.MaterializedDataset`: images as uint8): a world whose generator
is at least :data:`ON_THE_FLY_RATIO` times faster than training is generated on the fly (it then costs at most
1 / (1 + ratio) of the step time); a slower one is rendered once and cached when its split fits in
:data:`CACHE_BUDGET_GB`, and generated on the fly by DataLoader workers otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
import torch
from torch import nn

from benchmarks.common import write_report
from distill3d.data.worlds.hands import DEFAULT_SPLIT_SIZES, HandsDataset
from distill3d.data.worlds.render import SceneBatch, render
from distill3d.data.worlds.road import RoadConfig, RoadDataset, road_frames
from distill3d.data.worlds.shapes import CATEGORIES, ShapesWorld, build_object, intrinsics, viewpoint_extrinsics
from distill3d.models.pointnet import PointNetClassifier
from distill3d.models.resnet import ResNet

BATCH = 256
HANDS_BATCH = 64
ROAD_BATCH = 32
ROAD_SIZE = (96, 320)
TRAIN_BATCH = 32
ON_THE_FLY_RATIO = 4.0
"""Generate on the fly when generation is at least this many times faster than training consumes."""
POSE_KEYS = ("image", "viewpoint", "category", "symmetry_order", "points")  # what Pose CKD materialises
CACHE_BUDGET_GB = 4.0
"""Largest materialised split (GB) the decision accepts for the in-memory cache."""


def _rate(work: Callable[[], object], count: int, repeats: int = 5) -> float:
    work()
    best = min(_timed(work) for _ in range(repeats))
    return count / best


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _training_rate(model: nn.Module, inputs: torch.Tensor, num_classes: int, repeats: int = 3) -> tuple[float, int]:
    """Samples/s of SGD training steps (forward, cross-entropy, backward, update) on one batch, and the torch
    thread count that gave it: the best of 1 thread and the default (on cores other processes also use,
    multi-threaded small kernels can stall several-fold, which would make every generator look fast)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    labels = torch.arange(len(inputs)) % num_classes
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(inputs), labels).backward()
        optimizer.step()

    default_threads = torch.get_num_threads()
    rates = {}
    try:
        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            rates[threads] = _rate(step, len(inputs), repeats)
    finally:
        torch.set_num_threads(default_threads)
    best = max(rates, key=rates.__getitem__)
    return rates[best], best


def _stored_bytes(sample: dict[str, torch.Tensor]) -> int:
    """Bytes one sample takes in MaterializedDataset (images as uint8, every other tensor as it is)."""
    total = 0
    for key, value in sample.items():
        if isinstance(value, torch.Tensor):
            total += value.numel() * (1 if key == "image" else value.element_size())
    return total


@dataclass
class Workload:
    """A world as training uses it: its generator's rate, the consumer's rate and the split it reuses."""

    world: str
    generation_row: str
    generation_rate: float
    consumer: str
    training_rate: float
    split: str
    split_size: int
    sample_bytes: int

    @property
    def ratio(self) -> float:
        return self.generation_rate / self.training_rate

    @property
    def split_gb(self) -> float:
        return self.split_size * self.sample_bytes / 1e9

    @property
    def decision(self) -> str:
        if self.ratio >= ON_THE_FLY_RATIO:
            return "on the fly"
        return "cached" if self.split_gb <= CACHE_BUDGET_GB else "on the fly (workers)"


def _shapes_rows(world: ShapesWorld, size: int) -> tuple[list[tuple[str, str, float]], dict[str, float]]:
    objects = [build_object(CATEGORIES[i % len(CATEGORIES)], np.random.default_rng(i)) for i in range(BATCH)]
    scene = SceneBatch.stack([o.primitives for o in objects])
    azimuth = np.linspace(0, 2 * np.pi, BATCH, endpoint=False)
    R, t = viewpoint_extrinsics(azimuth, 0.3, 0.0, 3.0)
    K = intrinsics(1.1 * size, (size - 1) / 2, (size - 1) / 2).repeat(BATCH, 0)
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
    return rows, {"primitives": float(scene.count.mean())}


def _hands_row(image_size: int) -> str:
    return f"HandsDataset sample, {image_size}×{image_size} (image; joints computed too)"


def main() -> None:
    size = 64
    world = ShapesWorld(image_size=size)
    rows, stats = _shapes_rows(world, size)
    hands = {s: HandsDataset("unlabelled", size=10_000, image_size=s) for s in (64, 128)}
    hand_indices = list(range(HANDS_BATCH))
    for image_size, dataset in hands.items():
        rate = _rate(lambda d=dataset: d.__getitems__(hand_indices), HANDS_BATCH, repeats=3)
        rows.append((_hands_row(image_size), "samples", rate))
    road = RoadDataset("train", size=10_000, image_size=ROAD_SIZE)
    config = RoadConfig(image_size=ROAD_SIZE)
    road_indices = list(range(ROAD_BATCH))
    road_rows = [
        ("road_frames frame, 96×320 (image + labels + depth)", "frames",
         _rate(lambda: road_frames("train", road_indices, 0, config), ROAD_BATCH, repeats=3)),
        ("RoadDataset sample, 96×320 (+ depth estimate)", "samples",
         _rate(lambda: road.__getitems__(road_indices), ROAD_BATCH, repeats=3)),
    ]  # fmt: skip
    rows += road_rows

    torch.manual_seed(0)
    consumers = {
        "ResNet-18 (width 32), 64×64": (ResNet("resnet18", 10, 32), torch.rand(TRAIN_BATCH, 3, 64, 64)),
        "ResNet-18 (width 32), 128×128": (ResNet("resnet18", 10, 32), torch.rand(TRAIN_BATCH, 3, 128, 128)),
        "ResNet-18 (width 32), 96×320": (ResNet("resnet18", 10, 32), torch.rand(TRAIN_BATCH, 3, *ROAD_SIZE)),
        "PointNet classifier, 1024 points": (PointNetClassifier(16), torch.rand(TRAIN_BATCH, 1024, 3)),
    }
    measured = {name: _training_rate(model, inputs, 10) for name, (model, inputs) in consumers.items()}
    training = {name: value for name, (value, _) in measured.items()}

    rate = {name: value for name, _, value in rows}
    viewpoint_sample = {k: v[0] for k, v in world.viewpoint_batch("train", [0]).items() if k in POSE_KEYS}
    point_sample = {k: v[0] for k, v in world.point_cloud_batch("train", [0]).items()}
    plan = [  # (world, generator row, consumer, reused split, its size, one stored sample)
        ("shapes (viewpoint)", "ShapesViewpointDataset sample (image + labels + 1024 points)",
         "ResNet-18 (width 32), 64×64", "train", 8000, viewpoint_sample),
        ("shapes (point clouds)", "ShapesPointCloudDataset sample (1024 points)", "PointNet classifier, 1024 points",
         "train", 10_000, point_sample),
        *((f"hands {s}×{s}", _hands_row(s), f"ResNet-18 (width 32), {s}×{s}", "unlabelled",
           DEFAULT_SPLIT_SIZES["unlabelled"], hands[s][0]) for s in hands),
        ("road 96×320", road_rows[1][0], "ResNet-18 (width 32), 96×320", "train", 3712, road[0]),
    ]  # fmt: skip
    workloads = [
        Workload(name, row, rate[row], consumer, training[consumer], split, split_size, _stored_bytes(sample))
        for name, row, consumer, split, split_size, sample in plan
    ]

    body = (
        f"Shapes world at {size}×{size}, batches of {BATCH}; hands batches of {HANDS_BATCH}; road batches of "
        f"{ROAD_BATCH}; {numba.get_num_threads()} numba threads, {stats['primitives']:.1f} primitives per shapes "
        "object on average.\n\n"
        "| what | per second |\n|---|---|\n"
        + "".join(f"| {name} | {value:,.0f} {unit} |\n" for name, unit, value in rows)
        + f"\nReference consumers: one SGD training step (forward, backward, update; float32, batches of "
        f"{TRAIN_BATCH}) on the same cores, best of 1 and {torch.get_num_threads()} torch threads.\n\n"
        "| model | samples per second | torch threads |\n|---|---|---|\n"
        + "".join(f"| {name} | {value:,.0f} | {threads} |\n" for name, (value, threads) in measured.items())
        + _decision(workloads)
    )
    print(body)
    write_report("world_speed", body)


def _decision(workloads: list[Workload]) -> str:
    table = "".join(
        f"| {w.world} | {w.generation_rate:,.0f}/s | {w.consumer}: {w.training_rate:,.0f}/s | {w.ratio:.1f}× | "
        f"{w.split} ({w.split_size:,}): {w.split_gb:.2f} GB | **{w.decision}** |\n"
        for w in workloads
    )
    cached = [w.world for w in workloads if w.decision == "cached"]
    fly = [w.world for w in workloads if w.decision != "cached"]
    fast = [f"{w.world} ({w.ratio:.1f}×)" for w in workloads if w.ratio >= ON_THE_FLY_RATIO]
    slow = [f"{w.world} ({w.ratio:.1f}×)" for w in workloads if w.ratio < ON_THE_FLY_RATIO]
    margin = (
        f"Only {', '.join(fast)} generate{'s' if len(fast) == 1 else ''} fast enough to stay on the fly. "
        if fast else "No generator reaches that margin. "
    )
    too_big = [f"{w.world} ({w.split_gb:.1f} GB)" for w in workloads if w.decision == "on the fly (workers)"]
    memory = (f"Materialising the split of {', '.join(too_big)} would exceed the memory budget, so it is generated "
              "by DataLoader workers (or a smaller split is used). " if too_big else "")  # fmt: skip
    road = next(w for w in workloads if w.world.startswith("road"))
    road_note = (
        "Caching the road world also keeps its per-object labels (boxes, classes, ...), which vary in length: "
        "MaterializedDataset stores such keys as lists beside the stacked tensors (its ragged keys)."
        if road.decision == "cached" else ""
    )
    return (
        "\n## Decision: generated on the fly or cached\n\n"
        f"From this run's numbers: a world is generated on the fly when its generator is at least "
        f"{ON_THE_FLY_RATIO:g}× faster than its reference model trains (generation then costs at most "
        f"{100 / (1 + ON_THE_FLY_RATIO):.0f} % of a step even without workers); otherwise a split that is reused "
        f"across epochs is rendered once with `MaterializedDataset` (uint8 images, optional disk cache) if it "
        f"takes at most {CACHE_BUDGET_GB:g} GB, and is generated on the fly by DataLoader workers if not. "
        f"**Cached: {', '.join(cached) or 'none'}. On the fly: {', '.join(fly) or 'none'}.** {margin}"
        + (f"For {', '.join(slow)} rendering one sample costs from a quarter of a training step to several "
           "steps, so generating every epoch afresh would slow training by that much, while one generation pass of "
           "a cached split is amortised over all epochs and seeds. " if slow else "")
        + f"{memory}{road_note}\n\n"
        "| world | generation | consumer | ratio | split, materialised | decision |\n|---|---|---|---|---|---|\n"
        + table
    )


if __name__ == "__main__":
    main()
