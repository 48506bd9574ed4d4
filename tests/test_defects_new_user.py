"""Regression tests for the defects found when convscale was tried as a new user and as an attacker would (issue 29),
numbered as the issue lists them. Each failed on the code before its fix."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import make_image_folder
from convscale.cli import main
from convscale.train import TrainConfig, fit, read_checkpoint

TINY = {"model": "test_resnet", "batch_size": 8, "workers": 0, "warmup_epochs": 0.5, "train_res": 32}
_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err[-2000:]
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("d") / "data", per_class=4, val_per_class=2, res=40)


def _cached_run(data: Path, tmp_path: Path, name: str) -> list[str]:
    logs: list[str] = []
    cfg = TrainConfig(**TINY, data=str(data), epochs=1, out=str(tmp_path / "runs"), name=name, cache_res=40,
                      cache_dir=str(tmp_path / "c"))  # fmt: skip
    fit(cfg, log=logs.append)
    return logs


def _cache_files(tmp_path: Path, pattern: str) -> list[Path]:
    return sorted((tmp_path / "c").glob(f"*/{pattern}"))


def test_defect_01_a_damaged_cache_index_is_rebuilt_and_said(data, tmp_path):
    _cached_run(data, tmp_path, "a")
    for index in _cache_files(tmp_path, "index.npz"):
        index.write_bytes(index.read_bytes()[:100])  # a damaged zip
    logs = _cached_run(data, tmp_path, "b")
    said = [line for line in logs if "rebuilt, the previous cache was damaged" in line]
    assert len(said) == 2 and "index.npz unreadable" in said[0], logs


@pytest.mark.parametrize("damage", ["truncated", "altered"])
def test_defect_02_short_or_altered_pixels_are_rebuilt(data, tmp_path, damage):
    _cached_run(data, tmp_path, "a")
    pixels = _cache_files(tmp_path, "pixels-*.u8")[0]
    raw = bytearray(pixels.read_bytes())
    if damage == "truncated":
        raw = raw[: len(raw) // 2]
    else:
        raw[0] ^= 0xFF
    pixels.write_bytes(bytes(raw))
    logs = _cached_run(data, tmp_path, "b")
    said = [line for line in logs if "rebuilt, the previous cache was damaged" in line]
    expected = "bytes" if damage == "truncated" else "altered since it was written"
    assert len(said) == 1 and expected in said[0], logs
