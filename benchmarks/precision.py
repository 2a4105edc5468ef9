"""fp32 vs bf16 autocast (and channels_last) training throughput on this CPU.

Decides the default ``train.precision`` of the recipes. Run: ``python -m benchmarks.precision``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from benchmarks.common import write_report
from distill3d.models.pointnet import PointNetClassifier
from distill3d.models.resnet import ResNet


def train_throughput(model: nn.Module, make_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                     bf16: bool, channels_last: bool, steps: int, warmup: int = 2) -> float:
    """Samples per second of SGD training steps (forward, backward, update)."""
    x, y = make_batch()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * x.shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch = 32
    cases: dict[str, tuple[Callable[[], nn.Module], Callable[[], tuple[torch.Tensor, torch.Tensor]], bool]] = {
        "ResNet-18, 64 px": (lambda: ResNet("resnet18", 12),
                             lambda: (torch.randn(batch, 3, 64, 64), torch.randint(0, 12, (batch,))), True),
        "ResNet-18 narrow (width 32, 3×3 stem), 64 px": (
            lambda: ResNet("resnet18", 12, base_width=32, small_input=True),
            lambda: (torch.randn(batch, 3, 64, 64), torch.randint(0, 12, (batch,))), True),
        "PointNet, 512 points": (lambda: PointNetClassifier(16),
                                 lambda: (torch.randn(batch, 512, 3), torch.randint(0, 16, (batch,))), False),
    }
    rows = ["| model | fp32 | bf16 | bf16 + channels_last | bf16 speed-up |", "|---|---|---|---|---|"]
    for name, (make_model, make_batch, is_image) in cases.items():
        fp32 = train_throughput(make_model(), make_batch, False, False, args.steps)
        bf16 = train_throughput(make_model(), make_batch, True, False, args.steps)
        bf16_cl = train_throughput(make_model(), make_batch, True, True, args.steps) if is_image else float("nan")
        best = max(bf16, bf16_cl if is_image else 0.0)
        rows.append(f"| {name} | {fp32:.0f} | {bf16:.0f} | " + (f"{bf16_cl:.0f}" if is_image else "n/a")
                    + f" | {best / fp32:.2f}× |")
        print(rows[-1], flush=True)
    body = ("# Training throughput: fp32 vs bf16 autocast (samples/s, batch 32, SGD)\n\n" + "\n".join(rows)
            + "\n\nbf16 autocast keeps fp32 master weights and runs matmuls/convolutions in bf16 (AMX on this CPU). "
            "Numbers vary between runs on a shared machine (other processes slow torch threads down); "
            "re-run before relying on one.\n")
    print(f"written: {write_report('precision', body)}")


if __name__ == "__main__":
    main()
