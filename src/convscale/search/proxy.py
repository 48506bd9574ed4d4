"""Proxy runs: each candidate architecture trained briefly on the user's data through ``convscale train``'s own
trainer, its accuracy the search's estimate — ``seeds`` times, each with another seed, so that candidates are compared
by their mean with its spread. The (candidate, seed) runs are independent, so they run in parallel over local
processes (``jobs``) and, under ``torchrun``, split across ranks (each rank takes every WORLD_SIZE-th run; the others'
results are waited for in the shared output folder). Latency is measured before anything trains, on rank 0 alone
(:func:`measure_candidates`), the other ranks waiting for its rows.

The store, ``OUT/candidates/``: ``<label>.json`` holds a candidate's figures and measurement, ``<label>.seed<K>.json``
each finished run, all written atomically, so a search restarted with the same folder measures and trains only what
is missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_write_text
from ..utils.stats import mean_spread

__all__ = [
    "DEFAULT_PROXY",
    "Candidate",
    "ProxyRun",
    "Store",
    "is_main_rank",
    "measure_candidates",
    "measure_until_inside",
    "run_candidates",
]


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
    """``OUT/candidates/``: each candidate's row (``<label>.json``) and each finished run (``<label>.seed<K>.json``)."""

    def __init__(self, out: str | Path) -> None:
        self.folder = Path(out) / "candidates"
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, label: str, seed: int | None = None) -> Path:
        return self.folder / (f"{label}.json" if seed is None else f"{label}.seed{seed}.json")

    def get(self, label: str, seed: int | None = None) -> dict[str, Any] | None:
        p = self.path(label, seed)
        try:
            return json.loads(p.read_text()) if p.is_file() else None
        except ValueError:
            return None  # a damaged file: measured or trained again

    def put(self, row: dict[str, Any], seed: int | None = None) -> None:
        atomic_write_text(self.path(row["label"], seed), json.dumps(row, indent=1))


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
    result = fit(cfg, log=lambda *_: None, restart=True)  # an interrupted proxy run continues where it stopped
    return {"top1": float(result.metrics["val_top1"]), "train_s": round(time.perf_counter() - start, 1)}


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the proxy runs not started and send SIGTERM to the running ones (each saves, then ends), so that the
    pool's shutdown waits for a step and a save, not for whole runs."""
    import signal

    pool.shutdown(wait=False, cancel_futures=True)
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError):
            os.kill(process.pid, signal.SIGTERM)


def _rank() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main_rank() -> bool:
    return _rank()[0] == 0


def measure_candidates(
    candidates: Sequence[Candidate],
    base: Candidate,
    out: str | Path,
    setting,
    *,
    log: Callable[[str], None] = print,
    wait_s: float = 24 * 3600,
    min_time: float = 0.3,
) -> list[dict[str, Any]]:
    """Each candidate's row with its measured latency against ``base`` (:func:`measure.measure_against_base`: the
    same rounds, freshly built copies), in order. Rows measured before are read from the store; the rest are
    measured here on rank 0 — before any training, so never beside a proxy run — while other ranks wait for them.
    ``min_time``: the least seconds each timing of a network runs."""
    from ..arch import read_arch
    from .measure import measure_against_base

    store = Store(out)
    todo = [c for c in candidates if "measured_ms" not in (store.get(c.label) or {})]
    if todo and is_main_rank():
        log(f"measuring {len(todo)} networks whole against {base.label}, interleaved")
        nets = {c.label: (read_arch(c.arch)[1], c.res) for c in todo if c.label != base.label}
        base_now, measured = measure_against_base(
            (read_arch(base.arch)[1], base.res), nets, setting, log=log, min_time=min_time
        )
        known = store.get(base.label) or {}
        base_ms = known.get("measured_ms", base_now.ms)  # ratios are scaled by the base's first measurement
        for c in todo:
            m = base_now if c.label == base.label else measured[c.label]
            m = dataclasses.replace(m, ms=m.ratio * base_ms)
            store.put({"label": c.label, "arch": c.arch, "res": c.res, **c.figures, **m.row()})
    return _gather(store, [(c.label, None) for c in candidates], wait_s if todo and not is_main_rank() else 0.0)


def run_candidates(
    candidates: Sequence[Candidate],
    proxy: ProxyRun,
    out: str | Path,
    *,
    seeds: int = 1,
    jobs: int = 1,
    log: Callable[[str], None] = print,
    wait_s: float = 24 * 3600,
    min_time: float = 0.3,
) -> list[dict[str, Any]]:
    """Each candidate's row with its accuracy over ``seeds`` proxy runs (seed ``proxy.seed + k``): ``top1`` the
    mean, ``top1_std`` the sample standard deviation, ``top1_seeds`` each run's. Finished runs come from the store;
    the rest train here — in ``jobs`` processes, this rank's share under torchrun. Rows in order."""
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    store = Store(out)
    rank, world = _rank()
    runs = str(Path(out) / "runs")
    pairs = [(c, k) for c in candidates for k in range(seeds)]
    missing = [(c, k) for c, k in pairs if store.get(c.label, k) is None]
    if len(missing) < len(pairs):
        done = len(pairs) - len(missing)
        log(f"{done} of {len(pairs)} (candidate, seed) runs already done in {store.folder}: skipped")
    todo = [x for i, x in enumerate(pairs) if i % world == rank and x in missing]

    def task(c: Candidate, k: int) -> tuple:
        name = c.label if k == 0 else f"{c.label}-seed{k}"
        return c.arch, c.res, dataclasses.replace(proxy, seed=proxy.seed + k), runs, name

    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else 0
    if jobs > 1 and len(todo) > 1:
        import multiprocessing

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(proxy_train, *task(c, k), threads) for c, k in todo]
            try:
                for (c, k), future in zip(todo, futures, strict=True):
                    _finish(store, c, k, proxy.seed + k, future.result(), log)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: each running proxy run saves at its step and stops
                _stop_workers(pool)
                raise
    else:
        for c, k in todo:
            _finish(store, c, k, proxy.seed + k, proxy_train(*task(c, k)), log)
    results = _gather(store, [(c.label, k) for c, k in pairs], wait_s if world > 1 else 0.0)
    rows = []
    for i, c in enumerate(candidates):
        top1 = [r["top1"] for r in results[i * seeds : (i + 1) * seeds]]
        mean, std = mean_spread(top1)
        train_s = sum(r["train_s"] for r in results[i * seeds : (i + 1) * seeds])
        row = {"label": c.label, "arch": c.arch, "res": c.res, **c.figures, **(store.get(c.label) or {})}
        rows.append(row | {
            "top1": round(mean, 3), "top1_std": round(std, 3), "top1_seeds": " ".join(f"{t:.2f}" for t in top1),
            "seeds": seeds, "train_s": round(train_s, 1),
        })  # fmt: skip
    return rows


def _finish(store: Store, c: Candidate, k: int, seed: int, scores: dict[str, Any], log: Callable[[str], None]) -> None:
    store.put({"label": c.label, "seed": seed, **scores}, k)
    log(f"  {c.label} seed {seed}: top-1 {scores['top1']:.2f}% ({scores['train_s']:.0f} s)")


def _gather(store: Store, keys: Sequence[tuple[str, int | None]], wait_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + wait_s
    while True:
        rows = [store.get(label, k) for label, k in keys]
        if all(r is not None for r in rows) or time.monotonic() > deadline:
            break
        time.sleep(2.0)  # other ranks are still measuring or training their share
    missing = [store.path(*key).name for key, r in zip(keys, rows, strict=True) if r is None]
    if missing:
        raise RuntimeError(f"{len(missing)} results are missing in {store.folder} (first: {missing[0]})")
    return rows  # type: ignore[return-value]


def measure_until_inside(
    propose: Callable[[float, int], list[Candidate]],
    need: int,
    base: Candidate,
    out: str | Path,
    setting,
    budget_ratio: float | None,
    *,
    log: Callable[[str], None] = print,
    min_time: float = 0.3,
) -> tuple[list[Candidate], list[dict[str, Any]]]:
    """Measure whole networks against ``base`` until ``need`` are inside ``budget_ratio`` × the base's measured time
    (None: no budget, one group), at most three times ``need``. ``propose(correction, n)`` gives the next ``n``
    candidates not yet measured, best first, their predicted latency ratio (``figures["cost"]``) to be read × the
    ``correction``: the median of measured / predicted ratio over the networks measured so far — the table's bias at
    this size and batch, which whole networks reveal. Returns (candidates inside, rows of those dropped)."""
    from .choose import inside

    picks: list[Candidate] = []
    dropped: list[dict[str, Any]] = []
    correction, seen = 1.0, []
    while len(picks) < need and len(picks) + len(dropped) < 3 * need:
        group = propose(correction, min(need - len(picks), 3 * need - len(picks) - len(dropped)))
        if not group:
            break
        for c, row in zip(
            group, measure_candidates(group, base, out, setting, log=log, min_time=min_time), strict=True
        ):
            seen.append(float(row["measured_ratio"]) / float(row["cost"]))
            if inside(row, budget_ratio):
                picks.append(c)
            else:
                dropped.append(row | {"dropped": "measured over the budget"})
        if budget_ratio is None:
            break
        correction = statistics.median(seen)
        log(f"measured / predicted latency ratio so far: {correction:.3f} (median of {len(seen)})")
    if budget_ratio is not None:
        log(f"{len(dropped)} of {len(picks) + len(dropped)} candidates dropped by measurement (over "
            f"{budget_ratio:.3g}x the base's measured time)")  # fmt: skip
    return picks, dropped
