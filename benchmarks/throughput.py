"""Training-loop throughput against the raw model step, in one process on the same model.

``raw step``: forward, task loss, backward and AdamW update of the method's model on one fixed batch already in
memory (bf16 autocast, channels-last) — the most a training loop could reach. ``loop``: the engine's
:class:`~distill3d.engine.trainer.Trainer` running the method's real training step (data loading from the
rendered split, augmentation, loss, logging), read from its own ``train_epoch/samples_per_s`` of the last epoch.
The ratio says how much of the time goes outside the model.

Run: ``python -m benchmarks.throughput [--out DIR] [--steps N]`` (≈ 5 min on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.common import RESULTS, write_report, write_results_json
from benchmarks.dgcnn_speed import NUM_CLASSES, PlainDGCNN, training_rate
from distill3d.engine.allocator import tune_glibc_malloc
from distill3d.engine.config import TrainConfig
from distill3d.engine.logging import read_metrics
from distill3d.engine.trainer import Trainer, move_to_device
from distill3d.losses.viewpoint import viewpoint_task_loss
from distill3d.methods.pose_ckd import Options, build_task
from distill3d.models.dgcnn import DGCNNClassifier

DGCNN_BATCH = 16
SKD_BATCH = 16
"""Batch of the detection arm (96×320 frames, two encoders)."""


def raw_step_rate(model: nn.Module, batch: dict[str, Any], loss_fn: Callable[[nn.Module, dict[str, Any]],
                  torch.Tensor], steps: int, warmup: int = 5) -> float:
    """Samples/s of forward + loss + backward + AdamW step on one fixed batch (bf16 autocast, channels-last)."""
    model = model.to(memory_format=torch.channels_last).train()
    batch = move_to_device(batch, torch.device("cpu"), channels_last=True)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-4)
    for index in range(warmup + steps):
        if index == warmup:
            started = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16):
            loss = loss_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    size = len(next(v for v in batch.values() if isinstance(v, torch.Tensor)))
    return steps * size / (time.perf_counter() - started)


def loop_rate(task: Any, batch_size: int, steps: int) -> float:
    """Samples/s of the engine's training loop over ``steps`` steps (its own measurement of the last epoch)."""
    with tempfile.TemporaryDirectory() as run_dir:
        config = TrainConfig(epochs=2, batch_size=batch_size, precision="bf16", channels_last=True, log_every=50)
        Trainer(config, run_dir, seed=0, progress=False).fit(_Limited(task, steps * batch_size))
        rows = read_metrics(Path(run_dir) / "metrics.csv")
    return [value for _, _, metric, value in rows if metric == "train_epoch/samples_per_s"][-1]


class _Limited:
    """The task with its training split cut to ``size`` samples and no validation."""

    def __init__(self, task: Any, size: int) -> None:
        self.task, self.size = task, size

    def __getattr__(self, name: str) -> Any:
        return getattr(self.task, name)

    def train_set(self) -> Any:
        return torch.utils.data.Subset(self.task.train_set(), range(self.size))

    def val_set(self) -> None:
        return None


def pose_ckd_student(steps: int, batch_size: int) -> tuple[float, float]:
    options = Options(stage="student", task_weight=1.0, logit_weight=0.0, representation="none",
                      train_size=max(4096, steps * batch_size), val_size=64, test_size=64, num_points=256,
                      data_seed=0)
    task = build_task(options, 0)
    train = task.train_set()
    batch = train.batch(list(range(batch_size)))
    raw = raw_step_rate(task.build_model(), batch,
                        lambda model, b: viewpoint_task_loss(model(b["image"])[0], b["viewpoint"]), steps)
    return loop_rate(task, batch_size, steps), raw


def peclr_finetune(steps: int, batch_size: int) -> tuple[float, float]:
    """PeCLR fine-tuning (heat-map 2.5D head, hands world 64 px): raw = the task's loss on one fixed batch without
    augmentation; loop = the engine with the task's augmentation."""
    from distill3d.methods.peclr import Options as HandOptions
    from distill3d.methods.peclr import build_task as build_hand_task

    options = HandOptions(stage="finetune", labelled_size=max(4096, steps * batch_size))
    task = build_hand_task(options, 0)
    plain = build_hand_task(options.model_copy(update={"finetune_augment": False}), 0)
    train = task.train_set()
    batch = task.collate([train[i] for i in range(batch_size)])
    raw = raw_step_rate(plain.build_model(), batch, lambda model, b: plain.training_step(model, b)["loss"], steps)
    return loop_rate(task, batch_size, steps), raw


def skd_wm3d(steps: int, batch_size: int) -> tuple[float, float]:
    """SKD-WM3D, the full weak method (MDN + DSN, two ResNet-18 width-32 encoders) on road frames at 96×320: raw =
    the task's training step on one fixed batch without the flip; loop = the engine serving the cached road split
    (per-object labels as rows + offsets) with the flip."""
    from distill3d.methods.skd_wm3d import Options as DetectionOptions
    from distill3d.methods.skd_wm3d import build_task as build_detection_task

    options = DetectionOptions(train_size=steps * batch_size, val_size=16, test_size=16)
    task = build_detection_task(options, 0)
    plain = build_detection_task(options.model_copy(update={"flip": False}), 0)
    train = task.train_set()
    batch = task.collate([train[i] for i in range(batch_size)])
    raw = raw_step_rate(plain.build_model(), batch, lambda model, b: plain.training_step(model, b)["loss"], steps)
    return loop_rate(task, batch_size, steps), raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per measurement")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    tune_glibc_malloc()  # as the trainer does, so that the raw step and the loop run under the same allocator
    measured = {"pose_ckd_student": pose_ckd_student(args.steps, args.batch_size),
                "peclr_finetune": peclr_finetune(args.steps, args.batch_size),
                "skd_wm3d": skd_wm3d(max(10, args.steps // 3), SKD_BATCH)}
    rows = ["| loop | batch | loop (samples/s) | raw step (samples/s) | loop / raw |", "|---|---|---|---|---|"]
    for arm, (loop, raw) in measured.items():
        batch = SKD_BATCH if arm == "skd_wm3d" else args.batch_size
        rows.append(f"| {arm} | {batch} | {loop:,.1f} | {raw:,.1f} | {100 * loop / raw:.0f} % |")
    dgcnn_rows = ["| precision | distill3d DGCNN (samples/s) | plain DGCNN (samples/s) | speed-up |",
                  "|---|---|---|---|"]
    dgcnn: dict[str, dict[str, list[float]]] = {}
    for bf16 in (True, False):
        precision = "bf16" if bf16 else "fp32"
        torch.manual_seed(0)
        ours = training_rate(DGCNNClassifier(NUM_CLASSES, k=20), DGCNN_BATCH, 1024, bf16, steps=6, warmup=2)
        torch.manual_seed(0)
        plain = training_rate(PlainDGCNN(NUM_CLASSES, k=20), DGCNN_BATCH, 1024, bf16, steps=6, warmup=2)
        dgcnn[f"dgcnn_{precision}"] = {"distill3d_samples_per_s": [ours], "plain_samples_per_s": [plain]}
        dgcnn_rows.append(f"| {precision} | {ours:,.1f} | {plain:,.1f} | {ours / plain:.1f}× |")
    body = f"""# Training-loop throughput

Same process, same model, batch {args.batch_size}, bf16 autocast + channels-last, {torch.get_num_threads()} torch
threads; the loop's rate is the trainer's own measurement of its last epoch ({args.steps} steps).

{chr(10).join(rows)}

Pose CKD student: ResNet-18 (width 32) at 64 px with the viewpoint heads; the loop adds serving batches from the
rendered split, photometric jitter (one colour matrix per image), crop + flip + rotation (one affine warp), the
task loss and logging. PeCLR fine-tuning: ResNet-18 (width 32) with the heat-map 2.5D head at 64 px; the raw step
includes the task's loss (heat-map targets, L1 terms), the loop adds the hands data and the task's augmentation
(similarity warp, colour jitter). SKD-WM3D (full weak method, batch {SKD_BATCH}, {max(10, args.steps // 3)} steps):
MDN + DSN with two ResNet-18 (width 32) encoders at 96×320; the raw step includes the task's weak losses (heat-map
targets, box depth and surface points from the depth estimate, projection and alignment losses, the transfer); the
loop adds serving road frames with their per-object labels from the cache and the detection-consistent flip.

## DGCNN (PointMCD's student) against a plain implementation

Classifier, {NUM_CLASSES} classes, 1,024 points, k = 20, batch {DGCNN_BATCH}, forward + cross-entropy + backward + AdamW
step on a fixed batch, 6 timed steps; distill3d's EdgeConv (no edge tensor) vs the official code's structure
((B, 2C, N, k) edge tensor + Conv2d). Details and batch 32: `dgcnn_speed.md`.

{chr(10).join(dgcnn_rows)}
"""
    print(write_report("throughput", body, args.out))
    print(write_results_json("throughput", {arm: {"loop_samples_per_s": [loop], "raw_step_samples_per_s": [raw]}
                                            for arm, (loop, raw) in measured.items()} | dgcnn, args.out))
    print(body)


if __name__ == "__main__":
    main()
