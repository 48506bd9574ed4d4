"""Optimizers, parameter groups and the learning-rate schedule: small pure pieces."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["RMSpropTF", "create_optimizer", "lr_at", "param_groups"]


def param_groups(
    model: nn.Module, weight_decay: float, lr_scales: dict[str, float] | None = None, classifier: str | None = None
) -> list[dict]:
    """Weight decay on weights of convs and linears, none on norms, biases and gains — every parameter with fewer
    than two dimensions (BN/LN scales and shifts, biases, layer-scale γ, SkipInit gains). With ``lr_scales``
    (parameter name -> learning-rate factor, layer decay) a group per factor; with ``classifier`` (a name prefix) its
    parameters in groups of their own, marked ``classifier`` (a head-only warm-up freezes the others). Groups carry
    ``lr_scale``; the loop sets each group's lr to the schedule's times it."""
    groups: dict[tuple, dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.dim() >= 2
        scale = lr_scales[name] if lr_scales is not None else 1.0
        head = classifier is not None and name.startswith(classifier)
        key = (scale, head, decay) if (lr_scales is not None or classifier is not None) else (decay,)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": weight_decay if decay else 0.0, "lr_scale": scale}
            if classifier is not None:
                groups[key]["classifier"] = head
        groups[key]["params"].append(p)
    if lr_scales is None and classifier is None:  # the two groups every run had before fine-tuning existed
        return [groups.get((True,), _empty(weight_decay)), groups.get((False,), _empty(0.0))]
    return list(groups.values())


def _empty(weight_decay: float) -> dict:
    return {"params": [], "weight_decay": weight_decay, "lr_scale": 1.0}


class RMSpropTF(torch.optim.Optimizer):
    """RMSProp as TensorFlow computes it (EfficientNet's optimizer): epsilon inside the square root, the mean-square
    accumulator starting at one, momentum applied to the scaled update with the learning rate inside it."""

    def __init__(
        self,
        params,
        lr: float = 0.01,
        alpha: float = 0.9,
        eps: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(
            params, {"lr": lr, "alpha": alpha, "eps": eps, "momentum": momentum, "weight_decay": weight_decay}
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if not self.state[p]:
                    self.state[p]["square_avg"] = torch.ones_like(p)
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p)
            grads = [p.grad for p in params]
            square_avg = [self.state[p]["square_avg"] for p in params]
            buf = [self.state[p]["momentum_buffer"] for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            # one op over every tensor of the group (a per-parameter loop took 54 ms for ResNet-18 on 2 CPU cores)
            torch._foreach_mul_(square_avg, group["alpha"])
            torch._foreach_addcmul_(square_avg, grads, grads, value=1 - group["alpha"])
            denom = torch._foreach_add(square_avg, group["eps"])
            torch._foreach_sqrt_(denom)
            torch._foreach_mul_(buf, group["momentum"])
            torch._foreach_addcdiv_(buf, grads, denom, value=group["lr"])
            torch._foreach_sub_(params, buf)
        return loss


def _fusable(groups: list[dict]) -> bool:
    """PyTorch's fused (single-kernel) SGD and AdamW apply to floating-point parameters on CPU and CUDA. On this
    2-core CPU, fused AdamW steps ResNet-18 in 12 ms against 94 ms for the default per-parameter loop."""
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for g in groups for p in g["params"])


def create_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    *,
    lr_scales: dict[str, float] | None = None,
    classifier: str | None = None,
):
    """``sgd`` (Nesterov), ``adamw`` or ``rmsprop`` (TF-style), with :func:`param_groups`; SGD and AdamW fused where
    PyTorch can (the same update, one kernel over all parameters)."""
    groups = param_groups(model, weight_decay, lr_scales, classifier)
    fused = _fusable(groups) or None
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, fused=fused)
    if name == "rmsprop":
        return RMSpropTF(groups, lr=lr, momentum=momentum)
    raise ValueError(f"optimizer must be sgd, adamw or rmsprop, got {name!r}")


def lr_at(step: int, total: int, base: float, warmup: int = 0, minimum: float = 0.0) -> float:
    """Learning rate at optimizer step ``step`` of ``total``: linear warm-up from ~0 over ``warmup`` steps, then a
    cosine from ``base`` down to ``minimum`` at ``total``. Stepped per iteration."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return minimum + 0.5 * (base - minimum) * (1 + math.cos(math.pi * t))
