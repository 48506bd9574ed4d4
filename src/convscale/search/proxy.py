"""Proxy runs: a candidate architecture trained briefly on the user's data through ``convscale train``'s own
trainer, its accuracy the search's estimate. A run's folder is ``OUT/runs/<label>.seed<K>``: a run interrupted (a
signal, a killed worker) continues there from its last checkpoint when its trial is taken again. Which runs happen,
and what they scored, the study keeps (:mod:`.study`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DEFAULT_PROXY", "Candidate", "ProxyRun", "proxy_train"]


@dataclass(frozen=True)
class ProxyRun:
    """The short training run that scores a candidate (``TrainConfig`` fields; synthetic-shapes by default)."""

    data: str = "synthetic-shapes"
    epochs: int = 3
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    shapes_train: int = 2000
    shapes_val: int = 500
    shapes_res: int = 64
    crop_scale: float | None = None  # None: the trainer's default (0.08 for image files)
    drop_rate: float | None = None  # None: the model's own; short runs often do better without
    drop_path_rate: float | None = None
    amp: str = "none"  # one precision for every candidate: the probe of --amp auto could pick another per network


DEFAULT_PROXY = ProxyRun()


@dataclass(frozen=True)
class Candidate:
    """A network to score: its label (unique in the search), architecture file and image size, and the figures
    known before training (GMACs, params, predicted and measured latency)."""

    label: str
    arch: str
    res: int
    figures: dict[str, Any]


EpochHook = Callable[[dict[str, Any]], Any]


def proxy_train(
    arch: str, res: int, proxy: ProxyRun, runs: str, name: str, after_epoch: EpochHook | None = None
) -> dict[str, Any]:
    """Train ``arch`` at ``res`` px with ``proxy``'s settings; its validation top-1 and the seconds it took.
    ``after_epoch``: called with each epoch's metrics row (a pruner raises there to stop the run)."""
    from ..train import TrainConfig, fit

    cfg = TrainConfig(
        model=arch, **asdict(proxy), train_res=res, test_res=res, workers=0, ema=False, out=runs, name=name,
        checkpoint_minutes=0.0,
    )  # fmt: skip
    start = time.perf_counter()
    result = fit(cfg, log=lambda *_: None, restart=True, after_epoch=after_epoch)  # an interrupted run continues
    return {"top1": float(result.metrics["val_top1"]), "train_s": round(time.perf_counter() - start, 1)}
