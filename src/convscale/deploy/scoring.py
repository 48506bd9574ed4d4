"""How a deployed form is scored on labelled batches (labels -1 are padding): its predicted classes, its top-1 and
its agreement with a reference's predictions (the share of images whose top class is the same), in %. Used by the
guard of ``optimize``, the ``--int8`` report and the per-block sensitivity."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["Batches", "agreement", "predictions", "top1"]

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]


def predictions(fn: Callable[[torch.Tensor], torch.Tensor], batches: Batches) -> list[torch.Tensor]:
    with torch.no_grad():
        return [fn(x).argmax(1) for x, _ in batches]


def top1(preds: list[torch.Tensor], batches: Batches) -> float:
    hits = sum(int((p[y >= 0] == y[y >= 0]).sum()) for p, (_, y) in zip(preds, batches, strict=True))
    return 100.0 * hits / _seen(batches)


def agreement(preds: list[torch.Tensor], reference: list[torch.Tensor], batches: Batches) -> float:
    same = sum(int((p[y >= 0] == r[y >= 0]).sum()) for p, r, (_, y) in zip(preds, reference, batches, strict=True))
    return 100.0 * same / _seen(batches)


def _seen(batches: Batches) -> int:
    return max(1, sum(int((y >= 0).sum()) for _, y in batches))
