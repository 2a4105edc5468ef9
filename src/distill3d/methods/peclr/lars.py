"""Layer-wise adaptive rate scaling (LARS, You et al. 2017) wrapped around any optimiser, as PeCLR's official
protocol wraps Adam (pl_bolts ``LARSWrapper``; eta 0.02, clipping on; bias and BatchNorm parameters excluded).

For every parameter with ≥ 2 dimensions (weights of convolutions and linear layers), before the inner step:

``g ← (g + wd·w) · r``,   ``r = η‖w‖ / (‖g‖ + wd‖w‖ + ε)``,   with clipping ``r ← min(r / lr, 1)``

and the inner optimiser runs with its own weight decay switched off (the decay is applied here, to
weights only). 1-D parameters (biases, BN) keep their gradient and get no decay.

The engine builds its optimiser from ``train.optimizer``; :func:`install_lars` turns that optimiser into a LARS
one through a step pre-hook without touching the engine (see :class:`LARSHook`).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.utils.hooks import RemovableHandle

__all__ = ["LARSHook", "LARSWrapper", "install_lars", "lars_scale_gradients"]


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


class LARSWrapper:
    """``LARSWrapper(torch.optim.Adam(params, lr), eta=0.02, weight_decay=1e-6)``: ``step()`` rescales the
    gradients, then steps the inner optimiser (whose own weight decay should be 0)."""

    def __init__(self, optimizer: torch.optim.Optimizer, eta: float = 0.02, weight_decay: float = 0.0,
                 clip: bool = True, eps: float = 1e-8) -> None:
        self.optimizer, self.eta, self.weight_decay, self.clip, self.eps = optimizer, eta, weight_decay, clip, eps

    @property
    def param_groups(self) -> list[dict]:
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Any = None) -> Any:
        lars_scale_gradients(self.optimizer.param_groups, self.eta, self.weight_decay, self.clip, self.eps)
        return self.optimizer.step(closure)

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state)


class LARSHook:
    """A global optimiser step pre-hook that applies LARS to the optimiser that trains ``model`` only.

    It recognises that optimiser by its parameters (``model`` is held by a weak reference), sets the inner
    weight decay to 0 and applies ``weight_decay`` itself. ``remove()`` uninstalls it.
    """

    def __init__(self, model: nn.Module, eta: float, weight_decay: float, clip: bool = True) -> None:
        self._model = weakref.ref(model)
        self._parameter_ids = {id(p) for p in model.parameters()}
        self.eta, self.weight_decay, self.clip = eta, weight_decay, clip
        self._handle: RemovableHandle = register_optimizer_step_pre_hook(self)

    def __call__(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._model() is None:  # the model is gone: stay inert (removing a hook while hooks run is an error)
            return
        first = next((p for g in optimizer.param_groups for p in g["params"]), None)
        if first is None or id(first) not in self._parameter_ids:
            return
        for group in optimizer.param_groups:
            group["weight_decay"] = 0.0
        lars_scale_gradients(optimizer.param_groups, self.eta, self.weight_decay, self.clip)

    def remove(self) -> None:
        self._handle.remove()


def install_lars(model: nn.Module, eta: float = 0.02, weight_decay: float = 1e-6, clip: bool = True) -> LARSHook:
    """Make every optimiser that steps ``model``'s parameters a LARS-wrapped one (see :class:`LARSHook`)."""
    return LARSHook(model, eta, weight_decay, clip)
