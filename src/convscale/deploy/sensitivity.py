"""Which layers lose accuracy in int8: each block quantized alone (PT2E, the compiler's int8, in its reference
numerics — quantize/dequantize around float kernels, so no compilation), scored on the validation images against
the fp32 model; then the fewest blocks to keep in higher precision for the whole network, quantized with them
kept, to stay within the top-1 guard. The kept blocks run in bf16 under ``inductor-int8-bf16`` (mixed precision),
in fp32 otherwise. Used by ``convscale deploy --int8-keep auto``; its table is ``sensitivity.csv``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from .quantize import QuantSettings, quantize_pt2e
from .scoring import Batches, agreement, predictions, top1

__all__ = ["BlockSensitivity", "blocks", "keep_for_guard", "sensitivity"]


@dataclass(frozen=True)
class BlockSensitivity:
    block: str
    top1: float  # the network with only this block in int8
    top1_drop: float  # fp32's top-1 minus that
    agreement: float  # % of images with fp32's top class


def blocks(model: nn.Module) -> list[str]:
    """The units quantized one at a time: the stem, each block of each stage (the children of nested
    ``Sequential``/``ModuleList`` containers), the head — every top-level part with weights, stages opened."""

    def walk(prefix: str, module: nn.Module) -> list[str]:
        if isinstance(module, (nn.Sequential, nn.ModuleList)) and len(module) > 1:
            return [n for name, child in module.named_children() for n in walk(f"{prefix}.{name}", child)]
        return [prefix] if any(True for _ in module.parameters()) else []

    return [n for name, child in model.named_children() for n in walk(name, child)]


def sensitivity(
    fused: nn.Module, calibration: Sequence[torch.Tensor], val: Batches, units: Sequence[str] | None = None
) -> list[BlockSensitivity]:
    """Each of ``units`` (default :func:`blocks`) quantized alone; the rows sorted by top-1 drop, largest first."""
    units = list(units or blocks(fused))
    reference = _predictions(fused, val)
    base = top1(reference, val)
    rows = []
    for unit in units:
        others = tuple(u for u in units if u != unit)
        preds = _predictions(_int8(fused, calibration, QuantSettings(keep=others)), val)
        score = top1(preds, val)
        rows.append(BlockSensitivity(unit, score, base - score, agreement(preds, reference, val)))
    return sorted(rows, key=lambda r: -r.top1_drop)


def keep_for_guard(
    fused: nn.Module,
    calibration: Sequence[torch.Tensor],
    val: Batches,
    rows: Sequence[BlockSensitivity],
    max_drop: float = 1.0,
    settings: QuantSettings | None = None,
) -> tuple[tuple[str, ...], float]:
    """The fewest of the most sensitive blocks (``rows``' order) to keep so that the whole network in int8 loses at
    most ``max_drop`` points: (the blocks, the drop reached). Stops at half the blocks: past that, int8 is not the
    form for this model, and the drop reached says so."""
    settings = settings or QuantSettings()
    base = rows[0].top1 + rows[0].top1_drop if rows else top1(_predictions(fused, val), val)  # fp32's, as measured
    kept: tuple[str, ...] = ()
    for row in [None, *rows[: max(1, len(rows) // 2)]]:
        kept = (*kept, row.block) if row is not None else kept
        model = _int8(fused, calibration, replace(settings, keep=(*settings.keep, *kept)))
        drop = base - top1(_predictions(model, val), val)
        if drop <= max_drop:
            return kept, drop
    return kept, drop


def _int8(fused: nn.Module, calibration: Sequence[torch.Tensor], settings: QuantSettings) -> nn.Module:
    return quantize_pt2e(fused, calibration[0], calibration, settings)  # it quantizes its own copy


def _predictions(model: nn.Module, val: Batches) -> list[torch.Tensor]:
    return predictions(lambda x: model(x.float()), val)
