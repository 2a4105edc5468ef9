"""The viewpoint task loss on bins + in-bin offsets (PoseFromShape / 3DAug-Pose; the label encoding is
:class:`distill3d.geometry.viewpoint_bins.ViewpointBins`):

- target: ``k = ⌊x/B⌋``, ``δ = (x mod B)/B − 0.5``;
- prediction: ``δ̂ = tanh(r_k)/2`` read at bin k; decoding ``x̂ = (k* + tanh(r_{k*})/2 + 0.5)·B``, k* = argmax;
- loss: ``CE_a + CE_e + CE_θ + SmoothL1(5·δ̂, 5·δ)`` with δ̂ gathered at the *true* bin (SmoothL1 β = 1,
  averaged over the 3 angles and the batch, as ``smooth_l1_loss`` on the (B, 3) offsets does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill3d.geometry.viewpoint_bins import HEAD_NAMES, ViewpointBins


def viewpoint_task_loss(logits: dict[str, torch.Tensor], viewpoint: torch.Tensor,
                        bins: ViewpointBins = ViewpointBins(), offset_weight: float = 5.0) -> torch.Tensor:
    """``Σ_angles CE + SmoothL1(w·δ̂, w·δ)`` (w = 5) for head outputs ``{name}_cls`` / ``{name}_reg`` (B, n_bins)."""
    true_bins, true_offsets = bins.encode(viewpoint)
    loss = viewpoint.new_zeros(())
    predicted_offsets = []
    for i, name in enumerate(HEAD_NAMES):
        loss = loss + F.cross_entropy(logits[f"{name}_cls"].float(), true_bins[:, i])
        raw = logits[f"{name}_reg"].float().gather(1, true_bins[:, i : i + 1]).squeeze(1)
        predicted_offsets.append(torch.tanh(raw) / 2)
    predicted = torch.stack(predicted_offsets, dim=1)
    return loss + F.smooth_l1_loss(offset_weight * predicted, offset_weight * true_offsets)
