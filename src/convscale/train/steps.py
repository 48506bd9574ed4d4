"""One optimizer step and one evaluation pass, each a function of its inputs: the loop only calls them."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..methods.base import Gradient, Gradients, Loss, StepContext, all_finite, copy_into

__all__ = [
    "EvalTotals",
    "Gradients",
    "Loss",
    "StepContext",
    "StepResult",
    "StepSettings",
    "cross_entropy",
    "evaluate",
    "gradient",
    "train_step",
]


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


def _passes(model, chunks, total: int, loss_fn, device, amp: str, scaler) -> tuple[float, int]:
    """Forward and backward over the slices (under DDP only the last one synchronises); the summed loss and hits."""
    total_loss, correct = 0.0, 0
    for i, (x, y) in enumerate(chunks):
        sync = i == len(chunks) - 1 or not hasattr(model, "no_sync")
        with contextlib.nullcontext() if sync else model.no_sync(), _autocast(device, amp):
            logits = model(x)
            loss = loss_fn(_upcast(logits), x, y)
        scaled = loss * (x.shape[0] / total)
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
        total_loss += float(scaled.detach())
        hard = y.argmax(1) if y.dim() == 2 else y  # soft targets (mixup/CutMix): their largest class
        correct += int((logits.argmax(1) == hard).sum())
    return total_loss, correct


def _upcast(t: torch.Tensor) -> torch.Tensor:
    """Half-precision logits (autocast) to fp32 for the loss; fp32 and fp64 stay as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def cross_entropy(label_smoothing: float = 0.0) -> Loss:
    """The plain loss, in the ``(logits, images, labels)`` form a distillation loss also has."""

    def loss(logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)

    return loss


@dataclass(frozen=True)
class StepSettings:
    """How every step of a run is taken: built once from the config and the methods' hooks."""

    amp: str = "none"
    scaler: torch.amp.GradScaler | None = None
    label_smoothing: float = 0.0  # of the plain loss, for class-index labels (soft targets carry their own)
    accum_steps: int = 1
    loss_fn: Loss | None = None  # None: cross-entropy; a method may contribute another (distillation)
    gradient: Gradient | None = None  # None: one forward and backward; a method may wrap it (SAM)


def gradient(ctx: StepContext) -> Gradients:
    """The plain gradient phase: forward and backward, then whether the loss and every gradient are finite."""
    total_loss, correct = ctx.backward()
    if ctx.scaler is not None:
        ctx.scaler.unscale_(ctx.optimizer)
    return Gradients(total_loss, correct, all_finite(total_loss, ctx.params))


def train_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    how: StepSettings = StepSettings(),
) -> StepResult:
    """``labels``: class indices (N,), or soft targets (N, C) such as mixup's, which already hold any smoothing.
    ``how.loss_fn(logits, images, labels)``: the loss (default cross-entropy with ``label_smoothing``; distillation's
    asks its teacher about ``images``).

    Forward and backward over ``accum_steps`` slices of the batch (gradient accumulation: the same step with less
    memory) — the gradient phase, which a method may wrap (SAM moves the weights up the synchronised gradient and
    takes the gradient again there) — then step (hooks on the optimizer, such as AGC, act on the gradient the step
    uses) — unless the loss or a gradient is not finite, in which case the gradients are dropped, the buffers (BN
    statistics) restored, and the step skipped."""
    device, scaler = images.device, how.scaler
    loss_fn = how.loss_fn or cross_entropy(how.label_smoothing if labels.dim() == 1 else 0.0)
    # BN running statistics move in the forward pass; a skipped step must not keep what a non-finite batch did
    buffers = [b for b in model.buffers() if b.dtype.is_floating_point]
    saved = [b.clone() for b in buffers]
    accum = min(how.accum_steps, len(labels))
    chunks = list(zip(images.chunk(accum), labels.chunk(accum), strict=True))

    def backward() -> tuple[float, int]:
        return _passes(model, chunks, images.shape[0], loss_fn, device, how.amp, scaler)

    params = [p for group in optimizer.param_groups for p in group["params"]]
    g = (how.gradient or gradient)(StepContext(model, optimizer, params, buffers, backward, scaler))
    if scaler is None and not g.finite:
        optimizer.zero_grad(set_to_none=True)
        copy_into(buffers, saved)
        return StepResult(float("nan"), g.correct, images.shape[0], False)
    finite = g.finite
    if scaler is not None:  # fp16: the scaler skips steps with inf gradients itself and lowers its scale
        scaler.step(optimizer)
        scaler.update()
        finite = bool(torch.isfinite(torch.tensor(g.loss)))
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(g.loss, g.correct, images.shape[0], finite)


@dataclass(frozen=True)
class EvalTotals:
    loss_sum: float
    top1: int
    top5: int
    count: int  # images evaluated
    skipped: int = 0  # files that did not decode

    def __add__(self, other: EvalTotals) -> EvalTotals:
        return EvalTotals(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)))

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
) -> EvalTotals:
    """Loss, top-1 and top-5 hits over ``batches`` (objects with ``images`` and ``labels``), in eval mode.
    ``resize``: evaluate at this size instead (bilinear, antialiased), e.g. the model's test resolution.
    ``confusion``: a (classes, classes) integer tensor that counts (true label, top-1 prediction) pairs."""
    was_training = model.training
    model.eval()
    total = EvalTotals(0.0, 0, 0, 0)
    for batch in batches:
        skipped = len(getattr(batch, "skipped", ()))
        if batch.labels.numel() == 0:
            total = total + EvalTotals(0.0, 0, 0, 0, skipped)
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
        total = total + EvalTotals(
            float(F.cross_entropy(logits, y, reduction="sum")),
            int(hits[:, 0].sum()),
            int(hits.any(1).sum()),
            y.numel(),
            skipped,
        )
    model.train(was_training)
    return total
