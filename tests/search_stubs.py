"""Stubs for the search's engine tests: the latency table and the whole-network timer answer from the network's
multiply-adds at once, and a proxy run answers at once (or after a pause, or never) with a top-1 from a rule, calling
the trainer's ``after_epoch`` as the real one does — so that a study of a tiny space runs in seconds, in this process
or in worker processes (``python -c`` scripts that import this file), while the engine itself is the real one."""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

from convscale.arch import read_arch
from convscale.search import latency, trial
from convscale.search.report import counts


@functools.cache
def _macs(cfg, res: int) -> float:
    return counts(cfg, res)[0] / 1e9


def stub_latency(monkeypatch=None) -> None:
    """Predicted and measured latency: 1 ms per 0.01 GMACs (no timing runs)."""

    def predict(self, cfg, res, setting, num_classes=1000):
        return _macs(cfg, res) * 0.1

    def measure(cfg, res, setting, **kw):
        return _macs(cfg, res) * 0.1

    for owner, name, value in ((latency.LatencyTable, "predict", predict), (latency, "measure_network", measure)):
        if monkeypatch is None:
            setattr(owner, name, value)
        else:
            monkeypatch.setattr(owner, name, value)


def stub_training(log: Path, top1=lambda width, seed, calls: 60.0 + 10 * width + seed, pause_s: float = 0.0,
                  hang_on: str | None = None, monkeypatch=None) -> None:  # fmt: skip
    """Proxy runs answer ``top1(width_mult, seed, calls so far)`` after each of ``proxy.epochs`` epochs (through
    ``after_epoch``), pausing ``pause_s`` per epoch; each run is appended to ``log`` as a JSON line (label, seed, pid,
    epochs seen). ``hang_on``: a label whose run writes ``log``.hang and then never returns."""

    def train(arch, res, proxy, runs, name, after_epoch=None):
        label = name.rsplit(".seed", 1)[0]
        if hang_on is not None and label == hang_on:
            Path(f"{log}.hang").write_text(str(os.getpid()))
            time.sleep(3600)
        calls = sum(1 for _ in open(log)) if Path(log).exists() else 0
        value = float(top1(read_arch(arch)[1].width_mult, proxy.seed, calls))
        seen = 0
        try:
            for epoch in range(1, proxy.epochs + 1):
                time.sleep(pause_s)
                seen = epoch
                if after_epoch is not None:
                    after_epoch({"epoch": epoch, "val_top1": value})
        finally:
            with open(log, "a") as f:
                f.write(json.dumps({"label": label, "seed": proxy.seed, "pid": os.getpid(), "epochs": seen}) + "\n")
        return {"top1": value, "train_s": 0.0}

    if monkeypatch is None:
        trial.proxy_train = train
    else:
        monkeypatch.setattr(trial, "proxy_train", train)


def runs(log: Path) -> list[dict]:
    return [json.loads(line) for line in open(log)] if Path(log).exists() else []
