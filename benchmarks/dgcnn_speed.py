"""DGCNN training throughput: distill3d's EdgeConv (no edge tensor) against a plain implementation, side by side.

Both networks are the DGCNN classifier (EdgeConv 64-64-128-256 on dynamic kNN graphs, k = 20, 1024-d embedding,
max + mean pooling, 512-256-classes head). ``plain`` follows the official code's structure: the kNN from a
(B, N, N) pairwise-distance matrix and ``topk``, then ``graph_features`` builds the (B, 2C, N, k) tensor of
[x_j − x_i, x_i] and a Conv2d(1×1) + BatchNorm2d + LeakyReLU runs on it before the max over k. ``distill3d`` is
:class:`distill3d.models.dgcnn.DGCNNClassifier`. One training step = forward + cross-entropy + backward + AdamW step
on one fixed random batch; samples/s over the timed steps after warm-up. Same process, same thread count.

Run: ``python -m benchmarks.dgcnn_speed [--out DIR]`` (a few minutes on 2 cores; the plain network is the slow
part); ``--quick`` is a smoke run (2 timed steps, 128 points, batch 4, k = 8) — its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import RESULTS, write_report, write_results_json
from distill3d.engine.allocator import tune_glibc_malloc
from distill3d.models.dgcnn import DGCNNClassifier

NUM_CLASSES = 40


def plain_knn(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, C, N) features → (B, N, k) indices of the k nearest points (itself included), as the official code."""
    inner = torch.matmul(x.transpose(2, 1), x)  # (B, N, N)
    squared = (x * x).sum(dim=1, keepdim=True)  # (B, 1, N)
    negative_distances = 2 * inner - squared - squared.transpose(2, 1)
    return negative_distances.topk(k, dim=-1).indices


def graph_features(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, C, N) → (B, 2C, N, k) edge features [x_j − x_i, x_i] over the kNN graph of ``x``."""
    b, c, n = x.shape
    neighbours = plain_knn(x, k) + torch.arange(b, device=x.device).view(b, 1, 1) * n
    points = x.transpose(2, 1).contiguous()  # (B, N, C)
    gathered = points.view(b * n, c)[neighbours.view(-1)].view(b, n, k, c)
    centre = points.view(b, n, 1, c).expand(b, n, k, c)
    return torch.cat([gathered - centre, centre], dim=3).permute(0, 3, 1, 2).contiguous()


class PlainDGCNN(nn.Module):
    """DGCNN classifier written the plain way (edge tensor + Conv2d), for the side-by-side measurement."""

    def __init__(self, num_classes: int, k: int = 20, emb_dims: int = 1024,
                 widths: tuple[int, ...] = (64, 64, 128, 256), dropout: float = 0.5) -> None:
        super().__init__()
        self.k = k
        channels = (3, *widths)
        self.edge_convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))
            for c_in, c_out in pairwise(channels))
        self.embed = nn.Sequential(nn.Conv1d(sum(widths), emb_dims, 1, bias=False), nn.BatchNorm1d(emb_dims),
                                   nn.LeakyReLU(0.2))
        self.head = nn.Sequential(
            nn.Linear(2 * emb_dims, 512, bias=False), nn.BatchNorm1d(512), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(512, 256), nn.BatchNorm1d(256), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(256, num_classes))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        x = points.transpose(1, 2)  # (B, 3, N)
        outputs = []
        for edge_conv in self.edge_convs:
            x = edge_conv(graph_features(x, self.k)).max(dim=-1).values
            outputs.append(x)
        embedded = self.embed(torch.cat(outputs, dim=1))  # (B, emb_dims, N)
        pooled = torch.cat([F.adaptive_max_pool1d(embedded, 1), F.adaptive_avg_pool1d(embedded, 1)], dim=1)
        return self.head(pooled.squeeze(-1))


def training_rate(model: nn.Module, batch: int, num_points: int, bf16: bool, steps: int, warmup: int,
                  seed: int = 0) -> float:
    """Samples/s of forward + cross-entropy + backward + AdamW step on one fixed random batch."""
    generator = torch.Generator().manual_seed(seed)
    points = torch.rand(batch, num_points, 3, generator=generator) * 2 - 1
    labels = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    started = time.perf_counter()
    for step in range(warmup + steps):
        if step == warmup:
            started = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(points), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 8; 2 quick)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2; 1 quick)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default 16 32 (4 quick)")
    parser.add_argument("--num-points", type=int, default=None, help="default 1024 (128 quick)")
    parser.add_argument("--k", type=int, default=None, help="neighbours (default 20; 8 quick)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 2 timed steps")
    parser.add_argument("--default-allocator", action="store_true",
                        help="keep glibc's default malloc settings (the trainer tunes them; see engine.allocator)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    allocator = "glibc default" if args.default_allocator else (
        "tuned as the trainer does" if tune_glibc_malloc() else "glibc default (tuning unavailable)")
    quick = args.quick
    steps = args.steps if args.steps is not None else (2 if quick else 8)
    warmup = args.warmup if args.warmup is not None else (1 if quick else 2)
    batch_sizes = args.batch_sizes or ([4] if quick else [16, 32])
    num_points = args.num_points or (128 if quick else 1024)
    k = args.k or (8 if quick else 20)
    torch.set_num_threads(args.threads)

    builders: dict[str, Callable[[], nn.Module]] = {
        "distill3d": lambda: DGCNNClassifier(NUM_CLASSES, k=k),
        "plain": lambda: PlainDGCNN(NUM_CLASSES, k=k),
    }
    rates: dict[str, dict[str, list[float]]] = {}
    rows = ["| precision | batch | distill3d (samples/s) | plain (samples/s) | speed-up |", "|---|---|---|---|---|"]
    for bf16 in (False, True):
        precision = "bf16" if bf16 else "fp32"
        for batch in batch_sizes:
            measured = {}
            for name, build in builders.items():
                torch.manual_seed(0)
                measured[name] = training_rate(build(), batch, num_points, bf16, steps, warmup)
                rates.setdefault(name, {})[f"{precision}_batch{batch}_samples_per_s"] = [measured[name]]
            rows.append(f"| {precision} | {batch} | {measured['distill3d']:,.1f} | {measured['plain']:,.1f} | "
                        f"{measured['distill3d'] / measured['plain']:.1f}× |")
    body = f"""# DGCNN training throughput: distill3d EdgeConv vs a plain implementation

DGCNN classifier, {num_points} points, k = {k}, {NUM_CLASSES} classes; one step = forward + cross-entropy + backward +
AdamW step on a fixed random batch; {steps} timed steps after {warmup} warm-up steps; {args.threads} torch threads;
both networks in the same process, one after the other; allocator: {allocator} (`engine.allocator`: large blocks
stay in the heap instead of an mmap/munmap per tensor).{" **Smoke run (--quick): the numbers mean nothing.**" if quick
else ""}

{chr(10).join(rows)}

distill3d: EdgeConv without an edge tensor (W·[x_j − x_i, x_i] = W_a x_j + (W_b − W_a) x_i on the points, BatchNorm
statistics over the B·N·k edges from per-point moments, max over k of the gathered per-point table, fused), kNN ranked
at float32 with a two-stage exact top-k. plain: the official code's structure ((B, 2C, N, k) edge tensor, Conv2d,
BatchNorm2d, max over k; kNN by topk over the full distance matrix, in bf16 under autocast).
"""
    print(write_report("dgcnn_speed", body, args.out))
    print(write_results_json("dgcnn_speed", rates, args.out,
                             extra={"num_points": num_points, "k": k, "threads": args.threads, "steps": steps,
                                    "quick": quick}))
    print(body)


if __name__ == "__main__":
    main()
