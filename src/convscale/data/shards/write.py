"""``convscale shards``: an ImageFolder (or a dataset by name) written as tar shards per split in timm's WebDataset
layout, with its ``_info.json``.

Each split's files are put in an order drawn once from the seed, then written in that order, each sample as
``KEY.jpg`` (or ``.png``, ``.webp``: the image's own format) and ``KEY.cls``, where KEY is the sample's position in
that order. Images are kept as they are stored, or, with ``res``, re-encoded as JPEG at ``quality`` with their shorter
side at most ``res`` px (an image already that small, in a format timm reads, is kept as it is: no second
compression). Other formats (BMP, TIFF, GIF) are stored as PNG, lossless. Files that do not decode are left out and
counted. A shard is complete near ``shard_bytes`` and is written whole (a temporary file renamed); the split's
progress file, written after each shard, lets a rerun skip the finished shards (the order is the seed's, so the
rest follows as it would have). ``_info.json`` is written last.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...utils.atomic import atomic_write, atomic_write_text
from ..folder import DECODE_ERRORS, ImageFolder, class_folders, load_rgb
from .layout import INFO, ShardSplit

__all__ = ["ShardSettings", "parse_size", "write_shards"]

_KEPT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}  # formats timm's reader decodes, stored as they are
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_SETTINGS = ".convscale-shards.json"


@dataclass(frozen=True)
class ShardSettings:
    shard_bytes: int = 256 * 10**6
    res: int | None = None  # re-encode at this shorter side; None: images as they are
    quality: int = 90  # JPEG quality when re-encoding
    seed: int = 0


def parse_size(text: str) -> int:
    """``256MB``, ``1GiB``, ``500000`` (bytes) as bytes; ValueError naming the expected form."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*", text.lower())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"--shard-size: expected a size such as 256MB, 1GiB or 500000 (bytes), got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2) or ""])


def encode(path: Path, res: int | None, quality: int) -> tuple[str, bytes] | None:
    """(extension, bytes) of the image at ``path`` as the shard stores it, or None when it does not decode."""
    try:
        img = load_rgb(path, draft=res)  # the full decode: a corrupt file is found here, not by the reader
        with Image.open(path) as raw:
            fmt = raw.format
    except DECODE_ERRORS:
        return None
    if fmt in _KEPT and (res is None or min(img.size) <= res):
        return _KEPT[fmt], Path(path).read_bytes()
    buf = io.BytesIO()
    if res is None:
        img.save(buf, "PNG")
        return "png", buf.getvalue()
    if min(img.size) > res:
        scale = res / min(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
    img.save(buf, "JPEG", quality=quality)
    return "jpg", buf.getvalue()


def _encode_item(item: tuple[str, int | None, int]) -> tuple[str, bytes] | None:
    return encode(Path(item[0]), item[1], item[2])


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)  # mtime 0, owner root, mode 0644: the same files give the same shard
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _tar_bytes(size: int) -> int:
    return 512 + -(-size // 512) * 512


@dataclass
class _Progress:
    """A split's finished shards (name, samples), the next position in its order, and the files left out so far."""

    shards: list[tuple[str, int]]
    next: int = 0
    skipped: int = 0

    @classmethod
    def read(cls, path: Path, out: Path) -> _Progress:
        if not path.is_file():
            return cls([])
        data = json.loads(path.read_text())
        shards = [(name, n) for name, n in data["shards"] if (out / name).is_file()]
        if len(shards) < len(data["shards"]):  # a finished shard went missing: write the split again
            return cls([])
        return cls(shards, data["next"], data["skipped"])


def _samples(ds: ImageFolder, order: np.ndarray, start: int, s: ShardSettings, workers: int) -> Iterator[tuple]:
    """(position, label, (ext, bytes) or None) from ``start`` on, encoded over ``workers`` processes in order."""
    items = [(str(ds.samples[i][0]), s.res, s.quality) for i in order[start:]]
    if workers > 0:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers, initializer=_ignore_interrupts) as pool:
            for k, encoded in enumerate(pool.imap(_encode_item, items, chunksize=16)):
                yield start + k, ds.samples[order[start + k]][1], encoded
    else:
        for k, item in enumerate(items):
            yield start + k, ds.samples[order[start + k]][1], _encode_item(item)


def _ignore_interrupts() -> None:
    """In an encoding worker: Ctrl-C (sent to the whole process group) is the parent's to handle; the parent ends the
    pool, so the workers print no traceback of their own."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def write_split(
    ds: ImageFolder, out: Path, prefix: str, index: int, s: ShardSettings, workers: int, log: Callable
) -> tuple[ShardSplit, int]:
    """The split's shards ``PREFIX-000000.tar``, ... (finished ones from an earlier run kept); (split, files left
    out)."""
    order = np.random.default_rng([s.seed, index]).permutation(len(ds))
    progress_file = out / f".{prefix}.progress.json"
    done = _Progress.read(progress_file, out)
    if done.shards:
        log(f"{prefix}: {len(done.shards)} shards already written, going on from sample {done.next}")
    pending: list[tuple[int, str, bytes, int]] = []
    size = 1024  # the tar's end blocks

    def flush(next_position: int) -> None:
        nonlocal pending, size
        name = f"{prefix}-{len(done.shards):06d}.tar"
        atomic_write(out / name, lambda f: _write_tar(f, pending))
        done.shards.append((name, len(pending)))
        done.next = next_position
        atomic_write_text(progress_file, json.dumps(asdict(done)))
        log(f"wrote {out / name}: {len(pending)} samples, {size / 1e6:.1f} MB")
        pending, size = [], 1024

    for position, label, encoded in _samples(ds, order, done.next, s, workers):
        if encoded is None:
            done.skipped += 1
            continue
        ext, data = encoded
        add = _tar_bytes(len(data)) + _tar_bytes(len(str(label)))
        if pending and size + add > s.shard_bytes:
            flush(position)
        pending.append((position, ext, data, label))
        size += add
    if pending:
        flush(len(ds))
    names, lengths = zip(*done.shards, strict=True) if done.shards else ((), ())
    return ShardSplit(prefix.rsplit("-", 1)[-1], tuple(names), tuple(lengths)), done.skipped


def _write_tar(f, samples: list[tuple[int, str, bytes, int]]) -> None:
    with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for position, ext, data, label in samples:
            key = f"{position:08d}"
            _member(tar, f"{key}.{ext}", data)
            _member(tar, f"{key}.cls", str(label).encode())


def _check_settings(out: Path, s: ShardSettings) -> None:
    """A rerun goes on only with the settings the finished shards were written with."""
    path = out / _SETTINGS
    if path.is_file():
        before = json.loads(path.read_text())
        if before != asdict(s):
            changed = ", ".join(f"{k} {before.get(k)} -> {v}" for k, v in asdict(s).items() if before.get(k) != v)
            raise ValueError(f"{out} holds shards written with other settings ({changed}): use another --out")
    else:
        atomic_write_text(path, json.dumps(asdict(s)))


def write_shards(source: str, out: str | Path, s: ShardSettings, *, workers: int = 0, log: Callable = print) -> dict:
    """Every split of ``source`` (a folder with ``train/`` and ``val/``, or a dataset by name) written as shards in
    ``out`` with its ``_info.json``; the info as a dict."""
    from .. import resolve_data

    root = resolve_data(source)
    if not (root / "train").is_dir():
        raise ValueError(f"{source}: expected a folder with train/<class>/<images> (and val/), or a dataset by name")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, s)
    classes = class_folders(root / "train")
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", root.name) or "data"
    splits: dict[str, Any] = {}
    skipped: dict[str, int] = {}
    for index, split in enumerate(p for p in ("train", "val") if (root / p).is_dir()):
        ds = ImageFolder(root / split, classes=classes)
        found, skipped[split] = write_split(ds, out, f"{name}-{split}", index, s, workers, log)
        splits[split] = found.to_dict()
    encoding = "as stored" if s.res is None else f"JPEG quality {s.quality}, shorter side at most {s.res} px"
    info = {"name": name, "splits": splits, "classes": classes,
            "convscale": {"images": encoding, "seed": s.seed, "skipped": skipped, "source": str(root)}}  # fmt: skip
    atomic_write_text(out / INFO, json.dumps(info, indent=1) + "\n")
    return info
