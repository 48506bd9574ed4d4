"""The decoded-image cache: crops from it equal crops from the files, changed files are decoded again, a killed build
is never taken as complete, undecodable files are counted once, and bad --cache-res values are refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_image_folder
from convscale.cli import main as cli
from convscale.data import EvalTransform, ImageFolder, TrainTransform
from convscale.data import cache as cache_mod
from convscale.data.cache import CachedImages, build_cache, cache_folder, decode, shrink

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _photos(root: Path, sizes=((96, 72), (61, 90), (40, 56), (130, 48))) -> Path:
    """One class folder of JPEGs and PNGs of the given sizes (smooth colour gradients with noise)."""
    rng = np.random.default_rng(0)
    (root / "a").mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(sizes):
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1) + rng.integers(0, 40, (h, w, 3))
        pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        pil.save(root / "a" / (f"{i}.jpg" if i % 2 == 0 else f"{i}.png"), quality=90)
    return root


def _cached(ds: ImageFolder, res: int, tmp_path: Path, **kw) -> CachedImages:
    folder = cache_folder(ds.root, res, tmp_path / "caches")
    build_cache(ds, res, folder, **kw)
    return CachedImages(ds, folder, res)


def _crops(ds, transform, seed: int = 3) -> list[torch.Tensor]:
    return [transform(ds[i][0], np.random.default_rng([seed, i])) for i in range(len(ds))]


def test_crops_from_cache_equal_crops_from_files(tmp_path):
    """Images whose shorter side is within the cache's size are stored as decoded: every random-resized crop and
    evaluation crop from the cache is the one from the file, to the bit."""
    ds = ImageFolder(make_image_folder(tmp_path / "data", per_class=3, val_per_class=1, res=48) / "train")
    cached = _cached(ds, 48, tmp_path)
    assert len(cached) == len(ds) and cached.targets == ds.targets
    for transform in (TrainTransform(40, (0.08, 1.0), normalize=False), EvalTransform(40)):
        for a, b in zip(_crops(ds, transform), _crops(cached, transform), strict=True):
            assert torch.equal(a, b)


def test_large_images_are_shrunk_once_then_cropped_alike(tmp_path):
    """A larger image is kept at a shorter side of ``res`` (JPEG draft decoding, then bicubic): the cache's crops equal
    the crops of that decoded-and-shrunk image, and the stored image is what :func:`decode` gives."""
    ds = ImageFolder(_photos(tmp_path / "photos"))
    cached = _cached(ds, 50, tmp_path, workers=2)
    for i in range(len(ds)):
        stored = cached.array(i)
        assert np.array_equal(stored, decode(ds.path(i), 50))
        assert min(stored.shape[:2]) == min(50, *Image.open(ds.path(i)).size)
    transform = TrainTransform(32, normalize=False)
    for i in range(len(ds)):
        if ds.path(i).suffix == ".png":  # no draft decoding: the reference is the full decode, shrunk
            reference = transform(shrink(ds[i][0], 50), np.random.default_rng(i))
            assert torch.equal(reference, transform(cached[i][0], np.random.default_rng(i)))


def test_a_changed_file_is_decoded_again_the_rest_kept(tmp_path, monkeypatch):
    root = _photos(tmp_path / "photos")
    ds = ImageFolder(root)
    folder = cache_folder(root, 64, tmp_path / "caches")
    first = build_cache(ds, 64, folder)
    assert (first.images, first.decoded, first.reused) == (4, 4, 0)
    calls = []
    real = cache_mod.decode
    monkeypatch.setattr(cache_mod, "decode", lambda path, res: calls.append(Path(path).name) or real(path, res))
    again = build_cache(ds, 64, folder)
    assert (again.decoded, again.reused, calls) == (0, 4, [])  # nothing changed: nothing decoded, nothing written

    changed = root / "a" / "1.png"
    Image.new("RGB", (30, 20), (200, 10, 10)).save(changed)
    with pytest.raises(ValueError, match="stale"):
        CachedImages(ImageFolder(root), folder, 64)
    ds = ImageFolder(root)
    rebuilt = build_cache(ds, 64, folder)
    assert (rebuilt.decoded, rebuilt.reused, calls) == (1, 3, ["1.png"])
    cached = CachedImages(ds, folder, 64)
    assert np.array_equal(cached.array(1), np.full((20, 30, 3), (200, 10, 10), np.uint8))
    for i in (0, 2, 3):  # the kept ones are the same pixels as before
        assert np.array_equal(cached.array(i), decode(ds.path(i), 64))
    assert len(list(folder.glob("pixels-*.u8"))) == 1  # the previous pixels are gone

    (root / "a" / "3.png").unlink()  # a removed file: the index shrinks, nothing decoded
    Image.new("RGB", (20, 20), (0, 0, 255)).save(root / "a" / "9.png")  # a new one: decoded
    calls.clear()
    ds = ImageFolder(root)
    assert build_cache(ds, 64, folder).decoded == 1 and calls == ["9.png"]
    assert len(CachedImages(ds, folder, 64)) == 4


def test_undecodable_files_are_counted_once_at_build(tmp_path, monkeypatch):
    root = _photos(tmp_path / "photos")
    good = (root / "a" / "0.jpg").read_bytes()
    (root / "a" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "a" / "notes.jpg").write_text("not an image")
    ds = ImageFolder(root)
    folder = cache_folder(root, 64, tmp_path / "caches")
    built = build_cache(ds, 64, folder)
    assert built.images == 4 and sorted(built.skipped) == ["a/notes.jpg", "a/truncated.jpg"]
    assert "2 files do not decode" in built.describe()
    calls = []
    monkeypatch.setattr(cache_mod, "decode", lambda path, res: calls.append(path))
    again = build_cache(ds, 64, folder)
    assert calls == [] and sorted(again.skipped) == sorted(built.skipped)  # recorded, not decoded again
    cached = CachedImages(ds, folder, 64)
    assert len(cached) == 4 and len(cached.skipped) == 2
    assert all(cached[i][0].size for i in range(len(cached)))


_SLOW_BUILD = """
import sys, time
sys.path.insert(0, {src!r})
from pathlib import Path
from convscale.data import ImageFolder
from convscale.data import cache
real = cache.decode
def slow(path, res):
    Path({marker!r}).touch()
    time.sleep(0.3)
    return real(path, res)
cache.decode = slow
cache.build_cache(ImageFolder({root!r}), 64, Path({folder!r}))
"""


@pytest.mark.parametrize("previous", [False, True], ids=["first-build", "rebuild"])
def test_a_build_killed_midway_is_never_taken_as_complete(tmp_path, previous):
    root = make_image_folder(tmp_path / "data", per_class=6, val_per_class=0, res=40) / "train"
    folder = cache_folder(root, 64, tmp_path / "caches")
    if previous:  # a complete cache, then every file changes: the rebuild is killed
        build_cache(ImageFolder(root), 64, folder)
        for p in root.rglob("*.png"):
            Image.open(p).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(p)
    marker = tmp_path / "started"
    script = _SLOW_BUILD.format(src=SRC, marker=str(marker), root=str(root), folder=str(folder))
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a few images into the pixels file
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists() and proc.returncode == -signal.SIGKILL
    ds = ImageFolder(root)
    with pytest.raises(ValueError, match="no complete image cache" if not previous else "stale"):
        CachedImages(ds, folder, 64)
    built = build_cache(ds, 64, folder)
    assert built.decoded == len(ds) and not list(folder.glob(".*.tmp"))
    cached = CachedImages(ds, folder, 64)
    assert all(np.array_equal(cached.array(i), decode(ds.path(i), 64)) for i in range(len(ds)))


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--cache-res", "abc"], "--cache-res: invalid int value"),
        (["--cache-res", "8"], "config key 'cache_res': expected an integer in [16, 1024] or null, got 8"),
        (["--cache-res", "32", "--train-res", "48"], "32 px is below the training size 48"),
        (["--cache-res", "64", "--data", "synthetic-shapes"], "synthetic-shapes is rendered in memory"),
    ],
)
def test_bad_cache_res_is_one_line_exit_2(tmp_path, capsys, flags, expected):
    data = make_image_folder(tmp_path / "data", per_class=2, val_per_class=1)
    args = ["train", "--model", "test_resnet", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "runs")]
    assert cli([*args, "--cache-dir", str(tmp_path / "c"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_cache_command(tmp_path, capsys):
    data = make_image_folder(tmp_path / "data", per_class=2, val_per_class=1)
    args = ["cache", str(data), "--res", "64", "--cache-dir", str(tmp_path / "c"), "--workers", "0"]
    assert cli(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "6 images" in out[0] and "3 images" in out[1]
    assert cli(args) == 0 and all("up to date" in line for line in capsys.readouterr().out.splitlines())
    assert cli(["cache", str(data), "--res", "0"]) == 2
    assert cli(["cache", str(tmp_path / "nowhere"), "--res", "64"]) == 2


def test_training_from_the_cache_is_training_from_the_files(tmp_path):
    """With images no larger than the cache, a run reading the cache is the run reading the files, weight for weight."""
    from convscale.runs.checkpoint import read_checkpoint
    from convscale.train import TrainConfig, fit

    data = make_image_folder(tmp_path / "data", per_class=8, val_per_class=2, res=48)
    common = dict(model="test_resnet", data=str(data), epochs=1, batch_size=8, workers=0, ema=False,
                  out=str(tmp_path / "runs"), train_res=32, randaug_n=1, mixup=0.2)  # fmt: skip
    logs: list[str] = []
    plain = fit(TrainConfig(**common, name="files"), log=lambda *_: None)
    cached = fit(TrainConfig(**common, name="cache", cache_res=48, cache_dir=str(tmp_path / "c")), log=logs.append)
    assert any("image cache" in line and "24 images" in line for line in logs)
    a = read_checkpoint(plain.run_dir / "checkpoints" / "last.safetensors").weights()
    b = read_checkpoint(cached.run_dir / "checkpoints" / "last.safetensors").weights()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
