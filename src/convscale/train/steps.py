"""One optimizer step and one evaluation pass, each a function of its inputs: the loop only calls them."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..optim.agc import adaptive_clip_grad_

__all__ = ["EvalResult", "StepResult", "evaluate", "train_step"]


@dataclass(frozen=True)
class StepResult:
    loss: float  # mean over the batch (nan when the step was skipped for a non-finite loss)
    correct: int  # top-1 hits in the batch, from the training forward
    count: int
    finite: bool  # False: loss or gradients were not finite and the optimizer did not step


def _autocast(device: torch.device, amp: str):
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def train_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    amp: str = "none",
    scaler: torch.amp.GradScaler | None = None,
    label_smoothing: float = 0.0,
    accum_steps: int = 1,
    agc: float | None = None,
    agc_params: Sequence[torch.Tensor] = (),
) -> StepResult:
    """``labels``: class indices (N,), or soft targets (N, C) such as mixup's, which already hold any smoothing.

    Forward and backward over ``accum_steps`` slices of the batch (gradient accumulation: the same step with less
    memory; under DDP only the last slice synchronises), then clip (AGC) and step — unless the loss or a gradient is
    not finite, in which case the gradients are dropped, the buffers (BN statistics) restored, and the step skipped."""
    device = images.device
    # BN running statistics move in the forward pass; a skipped step must not keep what a non-finite batch did
    buffers = [b for b in model.buffers() if b.dtype.is_floating_point]
    saved = [b.clone() for b in buffers]
    chunks = list(zip(images.chunk(accum_steps), labels.chunk(accum_steps), strict=True))
    total_loss, correct = 0.0, 0
    for i, (x, y) in enumerate(chunks):
        sync = i == len(chunks) - 1 or not hasattr(model, "no_sync")
        with contextlib.nullcontext() if sync else model.no_sync(), _autocast(device, amp):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
        scaled = loss * (x.shape[0] / images.shape[0])
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
        total_loss += float(scaled.detach())
        hard = y.argmax(1) if y.dim() == 2 else y  # soft targets (mixup/CutMix): their largest class
        correct += int((logits.argmax(1) == hard).sum())
    if scaler is not None:
        scaler.unscale_(optimizer)
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    # one device-to-host sync for all the gradients, not one per tensor
    finite = math.isfinite(total_loss) and (
        not grads or bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())
    )
    if scaler is None and not finite:
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for b, s in zip(buffers, saved, strict=True):
                b.copy_(s)
        return StepResult(float("nan"), correct, images.shape[0], False)
    if agc is not None:
        adaptive_clip_grad_(agc_params, agc)
    if scaler is not None:  # fp16: the scaler skips steps with inf gradients itself and lowers its scale
        scaler.step(optimizer)
        scaler.update()
        finite = bool(torch.isfinite(torch.tensor(total_loss)))
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(total_loss, correct, images.shape[0], finite)


@dataclass(frozen=True)
class EvalResult:
    loss_sum: float
    top1: int
    top5: int
    count: int  # images evaluated
    skipped: int = 0  # files that did not decode

    def __add__(self, other: EvalResult) -> EvalResult:
        return EvalResult(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)))

    @property
    def metrics(self) -> dict[str, float]:
        n = max(1, self.count)
        return {"loss": self.loss_sum / n, "top1": 100 * self.top1 / n, "top5": 100 * self.top5 / n}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches,
    device: torch.device,
    *,
    amp: str = "none",
    channels_last: bool = False,
    resize: int | None = None,
    confusion: torch.Tensor | None = None,
) -> EvalResult:
    """Loss, top-1 and top-5 hits over ``batches`` (objects with ``images`` and ``labels``), in eval mode.
    ``resize``: evaluate at this size instead (bilinear, antialiased), e.g. the model's test resolution.
    ``confusion``: a (classes, classes) integer tensor that counts (true label, top-1 prediction) pairs."""
    was_training = model.training
    model.eval()
    total = EvalResult(0.0, 0, 0, 0)
    for batch in batches:
        skipped = len(getattr(batch, "skipped", ()))
        if batch.labels.numel() == 0:
            total = total + EvalResult(0.0, 0, 0, 0, skipped)
            continue
        x, y = batch.images.to(device, non_blocking=True), batch.labels.to(device, non_blocking=True)
        if resize is not None and resize != x.shape[-1]:
            x = F.interpolate(x, size=(resize, resize), mode="bilinear", antialias=True, align_corners=False)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp):
            logits = model(x).float()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hits = top == y[:, None]
        if confusion is not None:
            pairs = (y.cpu(), top[:, 0].cpu())
            confusion.index_put_(pairs, torch.ones_like(pairs[0], dtype=confusion.dtype), accumulate=True)
        total = total + EvalResult(
            float(F.cross_entropy(logits, y, reduction="sum")),
            int(hits[:, 0].sum()),
            int(hits.any(1).sum()),
            y.numel(),
            skipped,
        )
    model.train(was_training)
    return total
