"""2-process check of PeCLR's global negatives: ``torchrun --nproc_per_node=2 peclr_ddp_worker.py OUT_JSON``.

Every rank builds the same global batch of projections (seeded), takes its slice, computes the PeCLR loss with
embeddings gathered across processes and back-propagates; rank 0 writes each rank's loss and slice gradients.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from distill3d.engine.distributed import init_distributed, shutdown_distributed
from distill3d.methods.peclr import Options, PretrainTask


def global_batch(batch: int = 8, dim: int = 128) -> tuple[torch.Tensor, ...]:
    """Projections of two views (B, D) each, angles (B,) per view and jitters (B, 2) per view, in float64."""
    generator = torch.Generator().manual_seed(11)
    z1, z2 = torch.randn(batch, dim, generator=generator, dtype=torch.float64), torch.randn(
        batch, dim, generator=generator, dtype=torch.float64)
    angles = torch.randint(-45, 46, (2, batch), generator=generator).double()
    jitters = torch.randint(-6, 7, (2, batch, 2), generator=generator).double() / 64
    return z1, z2, angles, jitters


def main() -> None:
    torch.set_num_threads(1)
    info = init_distributed()
    z1, z2, angles, jitters = global_batch()
    per_rank = z1.shape[0] // info.world_size
    rows = slice(info.rank * per_rank, (info.rank + 1) * per_rank)
    a, b = z1[rows].clone().requires_grad_(True), z2[rows].clone().requires_grad_(True)
    task = PretrainTask(Options(objective="peclr"), seed=0)
    views = ((None, angles[0, rows], jitters[0, rows]), (None, angles[1, rows], jitters[1, rows]))
    loss = task.contrastive_loss(a, b, views)
    loss.backward()
    payload = torch.cat([loss.detach().reshape(1), a.grad.flatten(), b.grad.flatten()])
    parts = [torch.empty_like(payload) for _ in range(info.world_size)]
    dist.all_gather(parts, payload)
    if info.is_main:
        Path(sys.argv[1]).write_text(json.dumps({"world_size": info.world_size,
                                                 "payloads": [p.tolist() for p in parts]}))
    shutdown_distributed()


if __name__ == "__main__":
    main()
