"""Proxy runs: each candidate architecture trained briefly on the user's data through ``convscale train``'s own
trainer, its accuracy the search's estimate. Candidates are independent, so they run in parallel over local
processes (``jobs``) and, under ``torchrun``, split across ranks (each rank takes every WORLD_SIZE-th candidate;
rank 0 waits for the others' results in the shared output folder, then measures each network's latency alone).
Each finished candidate is one JSON file in ``OUT/candidates/``, written atomically, so a search restarted with the
same folder skips what is done.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_write_text

__all__ = ["DEFAULT_PROXY", "Candidate", "ProxyRun", "Store", "is_main_rank", "measure_rows", "run_candidates"]


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


DEFAULT_PROXY = ProxyRun()


@dataclass(frozen=True)
class Candidate:
    """A network to score: its label (unique in the search), architecture file and image size, and the figures
    known before training (GMACs, params, predicted and measured latency)."""

    label: str
    arch: str
    res: int
    figures: dict[str, Any]


class Store:
    """``OUT/candidates/<label>.json``: the finished candidates' rows."""

    def __init__(self, out: str | Path) -> None:
        self.folder = Path(out) / "candidates"
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, label: str) -> Path:
        return self.folder / f"{label}.json"

    def get(self, label: str) -> dict[str, Any] | None:
        p = self.path(label)
        try:
            return json.loads(p.read_text()) if p.is_file() else None
        except ValueError:
            return None  # a damaged file: the candidate runs again

    def put(self, row: dict[str, Any]) -> None:
        atomic_write_text(self.path(row["label"]), json.dumps(row, indent=1))


def proxy_train(arch: str, res: int, proxy: ProxyRun, runs: str, name: str, threads: int = 0) -> dict[str, Any]:
    """Train ``arch`` at ``res`` px with ``proxy``'s settings; its validation top-1 and the seconds it took."""
    import torch

    from ..train import TrainConfig, fit

    if threads:
        torch.set_num_threads(threads)
    cfg = TrainConfig(
        model=arch, **asdict(proxy), train_res=res, test_res=res, workers=0, ema=False, out=runs, name=name,
        checkpoint_minutes=0.0,
    )  # fmt: skip
    start = time.perf_counter()
    result = fit(cfg, log=lambda *_: None)
    return {"top1": float(result.metrics["val_top1"]), "train_s": round(time.perf_counter() - start, 1)}


def _rank() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main_rank() -> bool:
    return _rank()[0] == 0


def measure_rows(
    rows: list[dict[str, Any]], out: str | Path, setting, known: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """Each row's network measured whole (``measured_ms``, the median of three copies), one after another once
    all training is done — never beside a proxy run or another rank — and kept in the store; a row measured before
    (or in ``known``) is not measured again."""
    from ..arch import read_arch
    from .latency import measure_network

    store = Store(out)
    for row in rows:
        if "measured_ms" not in row:
            ms = (known or {}).get(row["label"])
            if ms is None:
                ms = measure_network(read_arch(row["arch"])[1], row["res"], setting, repeats=3) * 1e3
            row["measured_ms"] = round(ms, 3)
            store.put(row)
    return rows


def run_candidates(
    candidates: Sequence[Candidate],
    proxy: ProxyRun,
    out: str | Path,
    *,
    jobs: int = 1,
    log: Callable[[str], None] = print,
    wait_s: float = 24 * 3600,
) -> list[dict[str, Any]]:
    """Every candidate's row (its figures, ``top1`` and ``train_s``): finished ones from the store, the rest
    trained here — in ``jobs`` processes, on this rank's share under torchrun. Returns the rows in order."""
    store = Store(out)
    rank, world = _rank()
    runs = str(Path(out) / "runs")
    todo = [c for i, c in enumerate(candidates) if i % world == rank and store.get(c.label) is None]
    done = len(candidates) - len([c for c in candidates if store.get(c.label) is None])
    if done:
        log(f"{done} of {len(candidates)} candidates already done in {store.folder}: skipped")
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else 0
    if jobs > 1 and len(todo) > 1:
        import multiprocessing

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {c.label: pool.submit(proxy_train, c.arch, c.res, proxy, runs, c.label, threads) for c in todo}
            for c in todo:
                _finish(store, c, futures[c.label].result(), log)
    else:
        for c in todo:
            _finish(store, c, proxy_train(c.arch, c.res, proxy, runs, c.label), log)
    rows = _gather(store, candidates, wait_s if world > 1 else 0.0)
    return rows


def _finish(store: Store, c: Candidate, scores: dict[str, Any], log: Callable[[str], None]) -> None:
    row = {"label": c.label, "arch": c.arch, "res": c.res, **c.figures, **scores}
    store.put(row)
    log(f"  {c.label}: top-1 {scores['top1']:.2f}% ({scores['train_s']:.0f} s)")


def _gather(store: Store, candidates: Sequence[Candidate], wait_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + wait_s
    while True:
        rows = [store.get(c.label) for c in candidates]
        if all(r is not None for r in rows) or time.monotonic() > deadline:
            break
        time.sleep(2.0)  # other ranks are still training their share
    missing = [c.label for c, r in zip(candidates, rows, strict=True) if r is None]
    if missing:
        raise RuntimeError(f"{len(missing)} candidates have no result in {store.folder} (first: {missing[0]})")
    return rows  # type: ignore[return-value]
