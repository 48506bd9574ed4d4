"""Deploying a trained model: its inference form (:func:`fuse`, in ``fuse.py``) and the fastest correct way to run
that form on this machine (:func:`optimize`): every runtime this device has (``runtimes.py``: eager, bf16,
``torch.compile`` with weight freezing, ONNX Runtime, OpenVINO, and int8 by the compiler, ONNX Runtime and OpenVINO)
is tried, checked against fp32, timed interleaved, and the fastest that passes the guard is kept — the user's
hardware decides, measured, not assumed.

The guard: with a validation set, every form is judged by its top-1 there — at most ``max_top1_drop`` points below
fp32's (default 1.0 for int8, 0.5 otherwise) — and its agreement with fp32 (the share of images whose top class is
the same) is reported; the max relative error of its logits on one batch is reported too, but a trained model's
logits under bf16 move by more than any fixed tolerance while its answers do not (measured: 0.094 for EfficientNet-B0
in compile-bf16, top-1 +0.5). Without a validation set, a floating-point form must stay within ``tolerance`` and an
int8 form is measured but not chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..counting import count_macs
from . import scoring
from .fuse import fuse
from .quantize import QuantSettings
from .roofline import peak_of
from .runtimes import INT8, RUNTIMES, Runner, build_runner, check_runtimes, max_rel_error, time_runners
from .scoring import Batches

__all__ = ["Candidate", "Optimized", "default_top1_drop", "optimize", "top1_on"]


@dataclass(frozen=True)
class Candidate:
    """One runtime's result in :func:`optimize`: its speed at the example's batch, its error against fp32, and
    (with a validation set) its top-1 and its agreement with fp32's top class."""

    runtime: str
    median_ms: float
    img_s: float
    max_rel_error: float
    top1: float | None
    kept: bool  # passed the guard: it may be chosen
    note: str = ""  # why a runtime was not measured (not installed, refused, failed)
    p10_ms: float = float("nan")  # the spread of its timed calls
    p90_ms: float = float("nan")
    precision: str = "fp32"  # fp32, bf16, int8, int8+bf16
    agreement: float | None = None  # % of validation images with fp32's top class
    rejected: str = ""  # measured but not kept: why
    settings: str = ""  # how an int8 form was made
    peak_fraction: float | None = None  # achieved multiply-adds per second over its precision's peak

    @property
    def measured(self) -> bool:
        return not self.note


@dataclass
class Optimized:
    """The fastest correct form: ``runner`` (a callable on float32 batches), its name, every candidate measured."""

    choice: str
    runner: Runner
    fused: nn.Module
    candidates: list[Candidate]


def default_top1_drop(runtime: str) -> float:
    """Points of top-1 a form may lose against fp32 unless told: 1.0 for int8, 0.5 otherwise."""
    return 1.0 if runtime in INT8 else 0.5


def optimize(
    model: nn.Module,
    example: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    runtimes: Sequence[str] = RUNTIMES,
    tolerance: float = 2e-2,
    val: Batches | None = None,
    top1: Callable[[Callable[[torch.Tensor], torch.Tensor]], float] | None = None,
    max_top1_drop: float | None = None,
    calibration: Sequence[torch.Tensor] | None = None,
    settings: QuantSettings | None = None,
    peaks: dict[str, float] | None = None,
    min_time: float = 2.0,
) -> Optimized:
    """Try every runtime this device has on ``model`` (fused first), keep those that pass the guard (the module's
    docstring; ``tolerance`` applies without a validation set) against the fused model in fp32 — top-1 and
    agreement on ``val`` (batches of images and labels, -1 for padding), or scored by ``top1`` — and return the
    fastest of them, timed interleaved at ``example``'s batch. The int8 runtimes are calibrated on ``calibration``
    with ``settings``; ``peaks`` (``roofline.peaks()``) adds each candidate's fraction of its precision's peak. Eager
    fp32 is always a candidate, so there is always an answer."""
    check_runtimes(runtimes)  # a typo is an error, not a runtime "unavailable here"
    device = torch.device(device)
    fused = fuse(model.eval()).to(device)
    x = example.to(device)
    runners, notes = _build(runtimes, fused, x, device, calibration, settings)
    with torch.inference_mode():
        want = fused(x.contiguous(memory_format=torch.channels_last)).float()
    errors = {}
    for name, runner in list(runners.items()):
        try:  # torch.compile compiles at the first call: a backend failure shows here
            errors[name] = max_rel_error(runner.fn(x), want)
        except Exception as e:
            notes[name] = f"failed: {_first_line(e)}"
            del runners[name]
    scores, agreement = _score(runners, val, top1)
    timings = time_runners(runners, x, device, min_time=min_time)
    macs = count_macs(fused, tuple(x.shape[-2:])) * len(x) if peaks else 0
    candidates = []
    for k, r in runners.items():
        why = _verdict(k, errors[k], scores.get(k), scores.get("eager"), tolerance, max_top1_drop)
        t, peak = timings[k], peak_of(r.precision, peaks or {})
        candidates.append(
            Candidate(
                k, round(t.median * 1e3, 3), round(len(x) / t.median, 2), errors[k], scores.get(k), not why,
                p10_ms=round(t.p10 * 1e3, 3), p90_ms=round(t.p90 * 1e3, 3), precision=r.precision,
                agreement=agreement.get(k), rejected=why, settings=r.settings,
                peak_fraction=round(macs / t.median / peak, 4) if peak else None,
            )
        )  # fmt: skip
    nan = float("nan")
    candidates += [Candidate(k, nan, 0.0, nan, None, False, note, precision="") for k, note in notes.items()]
    best = min((c for c in candidates if c.kept), key=lambda c: c.median_ms)
    return Optimized(best.runtime, runners[best.runtime], fused, candidates)


def _build(runtimes, fused, x, device, calibration, settings) -> tuple[dict[str, Runner], dict[str, str]]:
    """Every runner this machine has, and a one-line note for each that it has not (not installed, refused)."""
    runners: dict[str, Runner] = {}
    notes: dict[str, str] = {}
    for name in dict.fromkeys(("eager", *runtimes)):
        try:
            runner = build_runner(name, fused, x, device, calibration=calibration, settings=settings)
        except Exception as e:  # not installed, a quantizer that refuses an op, an export that fails: a note
            notes[name], runner = _first_line(e), None
        if runner is not None:
            runners[name] = runner
        elif name not in notes:
            notes[name] = "not available on this device"
    return runners, notes


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def _score(runners: dict[str, Runner], val: Batches | None, top1) -> tuple[dict[str, float], dict[str, float]]:
    """Each runner's top-1 (%) and agreement with eager fp32's top class (%): on ``val``, or ``top1``'s scores."""
    if top1 is not None:
        return {k: top1(r.fn) for k, r in runners.items()}, {}
    if not val:
        return {}, {}
    preds = {k: scoring.predictions(r.fn, val) for k, r in runners.items()}
    scores = {k: scoring.top1(p, val) for k, p in preds.items()}
    return scores, {k: scoring.agreement(p, preds["eager"], val) for k, p in preds.items()}


def _verdict(name: str, error: float, score: float | None, base: float | None, tolerance: float, drop) -> str:
    """Why ``name`` may not be chosen ("" when it may)."""
    limit = default_top1_drop(name) if drop is None else drop
    if score is not None and base is not None:
        if score < base - limit:
            return f"top-1 {score:.2f} is {base - score:.2f} points below fp32's {base:.2f} (allowed {limit:g})"
        return ""
    if name in INT8:
        return "int8 is chosen only with a validation set to guard its top-1 (--val DIR)"
    if error > tolerance:
        return f"max relative error {error:.2g} above the tolerance {tolerance:g} (no validation set)"
    return ""


def top1_on(batches: Batches) -> Callable[[Callable], float]:
    """A scorer for :func:`optimize`: a runner's top-1 (%) over fixed ``batches`` (labels -1 are padding)."""
    return lambda fn: scoring.top1(scoring.predictions(fn, batches), batches)
