"""Layer-wise adaptive rate scaling (LARS, You et al. 2017) wrapped around any optimiser, as PeCLR's official
protocol wraps Adam (pl_bolts ``LARSWrapper``; eta 0.02, clipping on; bias and BatchNorm parameters excluded).

For every parameter with ≥ 2 dimensions (weights of convolutions and linear layers), before the inner step:

``g ← (g + wd·w) · r``,   ``r = η‖w‖ / (‖g‖ + wd‖w‖ + ε)``,   with clipping ``r ← min(r / lr, 1)``

and the inner optimiser runs with its own weight decay switched off (the decay is applied here, to
weights only). 1-D parameters (biases, BN) keep their gradient and get no decay.

The engine builds its optimiser from ``train.optimizer`` and the PeCLR task applies LARS in its
``before_optimizer_step`` hook (the engine's contract), with the optimiser's own weight decay set to 0 in its
parameter groups.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["lars_scale_gradients"]


@torch.no_grad()
def lars_scale_gradients(param_groups: Iterable[dict], eta: float = 0.02, weight_decay: float = 0.0,
                         clip: bool = True, eps: float = 1e-8) -> None:
    """Rescale the gradients of the ≥2-D parameters of ``param_groups`` in place (see the module docstring)."""
    for group in param_groups:
        lr = group["lr"]
        for parameter in group["params"]:
            if parameter.grad is None or parameter.dim() < 2:
                continue
            grad = parameter.grad
            weight_norm, grad_norm = torch.linalg.vector_norm(parameter), torch.linalg.vector_norm(grad)
            if weight_norm == 0 or grad_norm == 0:
                continue
            ratio = eta * weight_norm / (grad_norm + weight_decay * weight_norm + eps)
            if clip:
                ratio = torch.clamp(ratio / lr, max=1.0)
            grad.add_(parameter, alpha=weight_decay).mul_(ratio)
