"""Deploying a trained model: its inference form (:func:`fuse`, in ``fuse.py``) and the fastest correct way to run
that form on this machine (:func:`optimize`): every runtime this device has (``runtimes.py``: eager, bf16,
``torch.compile`` with weight freezing, ONNX Runtime) is tried, checked against fp32, timed interleaved, and the
fastest that stays within the tolerance is kept — the user's hardware decides, measured, not assumed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .fuse import fuse
from .runtimes import RUNTIMES, Runner, build_runner, check_runtimes, max_rel_error, time_runners

__all__ = ["Candidate", "Optimized", "optimize", "top1_on"]


@dataclass(frozen=True)
class Candidate:
    """One runtime's result in :func:`optimize`: its speed at the example's batch, its error against fp32, and
    (with a validation callable) its top-1."""

    runtime: str
    median_ms: float
    img_s: float
    max_rel_error: float
    top1: float | None
    kept: bool  # within the tolerance (and the top-1 allowance)
    note: str = ""  # why a runtime was not measured (not installed, refused, failed)
    p10_ms: float = float("nan")  # the spread of its timed calls
    p90_ms: float = float("nan")

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


def optimize(
    model: nn.Module,
    example: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    runtimes: Sequence[str] = RUNTIMES,
    tolerance: float = 2e-2,
    top1: Callable[[Callable[[torch.Tensor], torch.Tensor]], float] | None = None,
    max_top1_drop: float = 0.5,
    min_time: float = 2.0,
) -> Optimized:
    """Try every runtime this device has on ``model`` (fused first), keep those whose logits on ``example`` stay
    within ``tolerance`` (max relative error) of the fused model in fp32 — and, when ``top1`` (a function scoring a
    runner on a validation set, in %) is given, whose top-1 is at most ``max_top1_drop`` points below fp32's — and
    return the fastest of them, timed interleaved at ``example``'s batch. Eager fp32 is always a candidate, so there
    is always an answer."""
    check_runtimes(runtimes)  # a typo is an error, not a runtime "unavailable here"
    device = torch.device(device)
    fused = fuse(model.eval()).to(device)
    x = example.to(device)
    runners: dict[str, Runner] = {}
    notes: dict[str, str] = {}
    for name in dict.fromkeys(("eager", *runtimes)):
        try:
            runner = build_runner(name, fused, x, device)
        except (ImportError, ValueError, RuntimeError) as e:  # not installed, or the export refused: say so
            notes[name], runner = str(e).splitlines()[0][:200], None
        if runner is not None:
            runners[name] = runner
        elif name not in notes:
            notes[name] = "not available on this device"
    with torch.inference_mode():
        want = fused(x.contiguous(memory_format=torch.channels_last)).float()
    errors = {}
    for name, runner in list(runners.items()):
        try:  # torch.compile compiles at the first call: a backend failure shows here
            errors[name] = max_rel_error(runner.fn(x), want)
        except Exception as e:
            notes[name] = f"failed: {str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__}"
            del runners[name]
    scores = {k: top1(r.fn) for k, r in runners.items()} if top1 is not None else {}
    timings = time_runners(runners, x, device, min_time=min_time)
    base = scores.get("eager")
    candidates = []
    for k in runners:
        ok = errors[k] <= tolerance and (base is None or scores[k] >= base - max_top1_drop)
        t = timings[k]
        candidates.append(
            Candidate(
                k, round(t.median * 1e3, 3), round(len(x) / t.median, 2), errors[k], scores.get(k), ok,
                p10_ms=round(t.p10 * 1e3, 3), p90_ms=round(t.p90 * 1e3, 3),
            )
        )  # fmt: skip
    candidates += [Candidate(k, float("nan"), 0.0, float("nan"), None, False, note) for k, note in notes.items()]
    best = min((c for c in candidates if c.kept), key=lambda c: c.median_ms)
    return Optimized(best.runtime, runners[best.runtime], fused, candidates)


def top1_on(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> Callable[[Callable], float]:
    """A scorer for :func:`optimize`: a runner's top-1 (%) over fixed ``batches`` (labels -1 are padding)."""

    def score(fn: Callable[[torch.Tensor], torch.Tensor]) -> float:
        hits = seen = 0
        for x, y in batches:
            keep = y >= 0
            hits += int((fn(x).argmax(1)[keep] == y[keep]).sum())
            seen += int(keep.sum())
        return 100.0 * hits / max(1, seen)

    return score
