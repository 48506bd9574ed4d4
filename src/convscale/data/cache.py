"""A decoded-image cache for an ImageFolder split (FFCV's idea): every image decoded once, shrunk so that its shorter
side is at most ``res`` px, and kept as uint8 RGB in one file read through a memory map. Training then crops from
those pixels instead of decoding every JPEG again every epoch.

A cache folder holds ``pixels-<token>.u8`` (the images back to back, height × width × 3 bytes each) and
``index.npz``: per file its path inside the split, size and modification time (the fingerprint), where its pixels
start, their height and width, and whether it decoded. A build writes the pixels under a new name first and the index
last, atomically, so a build killed at any point leaves the previous complete cache or none. The index records the
pixels file's size and a digest of blocks sampled through it; a damaged index, or a pixels file cut short or
altered, is found when the cache is opened, said, and the cache rebuilt. A file that is new or
whose size or mtime changed is decoded again; the others are copied from the previous pixels. A file that does not
decode is recorded as such, counted once at build time, and left out of the dataset.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import re
import secrets
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..utils.atomic import atomic_write
from ..utils.paths import cache_root
from .folder import DECODE_ERRORS, ImageFolder, first_few, load_rgb

__all__ = ["FORMAT", "CacheBuild", "CachedImages", "build_cache", "cache_folder", "shrink"]

FORMAT = "convscale-image-cache/1"
INDEX = "index.npz"
MIN_RES = 16


def shrink(img: Image.Image, res: int) -> Image.Image:
    """``img`` with its shorter side brought down to ``res`` px (bicubic, antialiased), the aspect kept; a smaller
    image is returned as it is."""
    w, h = img.size
    if min(w, h) <= res:
        return img
    size = (res, max(res, round(h * res / w))) if w <= h else (max(res, round(w * res / h)), res)
    return img.resize(size, Image.Resampling.BICUBIC)


def decode(path: str | Path, res: int) -> np.ndarray:
    """The cached form of the image at ``path``: decoded (JPEGs at the smallest draft scale that keeps ``res``),
    shrunk to a shorter side of at most ``res``, as an (H, W, 3) uint8 array. Raises one of DECODE_ERRORS."""
    return np.asarray(shrink(load_rgb(path, draft=res), res), dtype=np.uint8)


def cache_folder(split: str | Path, res: int, cache_dir: str | Path | None = None) -> Path:
    """Where the cache of split folder ``split`` at ``res`` lives: inside ``cache_dir`` (default
    ``$CONVSCALE_CACHE/images``, i.e. ``~/.cache/convscale/images``), named after the split and a hash of its
    absolute path, so two datasets never share one."""
    split = Path(split).expanduser().resolve()
    base = cache_dir or cache_root() / "images"
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "_", f"{split.parent.name}-{split.name}").strip("._")[:80] or "data"
    digest = hashlib.sha1(str(split).encode()).hexdigest()[:10]
    return Path(base).expanduser() / f"{slug}-{digest}-{res}px"


@dataclass(frozen=True)
class CacheBuild:
    """What :func:`build_cache` did: images in the cache, how many it decoded now and how many it kept from the
    previous build, the files that do not decode (paths inside the split), and its seconds and bytes."""

    folder: Path
    images: int
    decoded: int
    reused: int
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bytes: int = 0
    damaged: str = ""  # why the previous cache could not be used (then rebuilt whole), or ""

    def describe(self) -> str:
        done = "up to date" if not self.decoded else f"decoded {self.decoded}, kept {self.reused}"
        text = f"image cache {self.folder}: {self.images} images, {self.bytes / 2**20:.0f} MiB ({done}"
        text += f", {self.seconds:.1f} s)" if self.decoded else ")"
        if self.skipped:
            text += f"; {len(self.skipped)} files do not decode and are left out: {first_few(self.skipped)}"
        if self.damaged:
            text += f"; rebuilt, the previous cache was damaged ({self.damaged})"
        return text


def _digest(path: Path, blocks: int = 64, block: int = 4096) -> str:
    """A digest of ``blocks`` blocks spread evenly through the file (its first and last included) and its size: a
    cut or a changed block shows without reading gigabytes of pixels on every open."""
    size = path.stat().st_size
    h = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as f:
        for k in range(blocks if size > blocks * block else 1):
            f.seek(k * max(0, size - block) // max(1, blocks - 1))
            h.update(f.read(block if size > blocks * block else size))
    return h.hexdigest()


class _Index:
    """``index.npz`` of a cache folder, read without pickle; :meth:`load` says why an existing one is refused."""

    KEYS = ("paths", "sizes", "mtimes", "offsets", "heights", "widths", "ok")

    def __init__(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        self.meta, self.arrays = meta, arrays
        self.row = {p: i for i, p in enumerate(arrays["paths"].tolist())}

    @classmethod
    def read(cls, folder: Path, res: int) -> _Index | None:
        return cls.load(folder, res)[0]

    @classmethod
    def load(cls, folder: Path, res: int) -> tuple[_Index | None, str]:
        """(the index, "") when the cache is complete and whole; (None, "") when there is none (or one of another
        format or size); (None, why) when what is there is damaged."""
        if not (folder / INDEX).is_file():
            return None, ""
        try:
            with np.load(folder / INDEX, allow_pickle=False) as doc:
                meta = json.loads(str(doc["meta"]))
                arrays = {k: doc[k] for k in cls.KEYS}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            return None, f"{INDEX} unreadable: {type(e).__name__}"
        if meta.get("format") != FORMAT or meta.get("res") != res:
            return None, ""
        pixels = folder / str(meta.get("pixels", ""))
        if not pixels.is_file():
            return None, f"{pixels.name} missing"
        a = arrays
        expected = int((a["heights"].astype(np.int64) * a["widths"] * 3)[a["ok"]].sum())
        size = pixels.stat().st_size
        if size != expected or meta.get("bytes", size) != size:
            return None, f"{pixels.name} is {size} bytes, {expected} expected"
        if meta.get("digest") not in (None, _digest(pixels)):
            return None, f"{pixels.name} altered since it was written"
        return cls(meta, arrays), ""

    def matches(self, name: str, fingerprint: tuple[int, int]) -> int | None:
        """The row of ``name`` when its fingerprint is the recorded one, else None."""
        i = self.row.get(name)
        a = self.arrays
        return i if i is not None and (int(a["sizes"][i]), int(a["mtimes"][i])) == fingerprint else None

    def pixels(self, folder: Path) -> np.memmap:
        return _map(folder / self.meta["pixels"])


def _map(path: Path) -> np.ndarray:
    if path.stat().st_size == 0:  # every file failed to decode: nothing to map
        return np.zeros(0, np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="r")


def _fingerprint(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _names(ds: ImageFolder) -> list[str]:
    return [p.relative_to(ds.root).as_posix() for p, _ in ds.samples]


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One builder per cache folder at a time (POSIX file lock; elsewhere none)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(folder / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class _Decode:
    """Files to decode, for a DataLoader's workers: item i is (i, array) or (i, None) when it does not decode."""

    def __init__(self, paths: list[Path], res: int) -> None:
        self.paths, self.res = paths, res

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None]:
        try:
            return i, decode(self.paths[i], self.res)
        except DECODE_ERRORS:
            return i, None


@contextlib.contextmanager
def _bar(total: int, label: str, show: bool, on_image: Callable[[int], None] | None) -> Iterator[Callable[[int], None]]:
    """A per-file callback: ``on_image``, and a tqdm bar when ``show`` and stderr is a terminal."""
    import sys

    bar = None
    if show and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, desc=label, unit="img", leave=False, dynamic_ncols=True)

    def tick(n: int) -> None:
        if bar is not None:
            bar.update(1)
        if on_image is not None:
            on_image(n)

    try:
        yield tick
    finally:
        if bar is not None:
            bar.close()


class _Spans:
    """Where each image lands in the pixels file being written: offset, height, width, and whether it decoded."""

    def __init__(self, n: int) -> None:
        self.offsets, self.heights, self.widths = np.zeros(n, np.int64), np.zeros(n, np.int32), np.zeros(n, np.int32)
        self.ok = np.zeros(n, bool)

    def write(self, f, images) -> None:
        """Write ``images`` ((index, array or None, or a callable giving one) pairs) back to back into ``f``."""
        position = 0
        for i, arr in images:
            arr = arr() if callable(arr) else arr
            if arr is None:
                continue
            self.offsets[i], (self.heights[i], self.widths[i]), self.ok[i] = position, arr.shape[:2], True
            f.write(np.ascontiguousarray(arr).data)
            position += arr.size

    def arrays(self) -> dict[str, np.ndarray]:
        return {"offsets": self.offsets, "heights": self.heights, "widths": self.widths, "ok": self.ok}


def _copied(old: _Index, pixels: np.ndarray, row: int) -> Callable[[], np.ndarray | None]:
    """Row ``row`` of the previous cache's ``pixels``, read when called (None for a file that did not decode)."""

    def read() -> np.ndarray | None:
        a = old.arrays
        if not a["ok"][row]:
            return None
        o, h, w = int(a["offsets"][row]), int(a["heights"][row]), int(a["widths"][row])
        return np.asarray(pixels[o : o + h * w * 3]).reshape(h, w, 3)

    return read


def _as_is(item):
    return item


def _decoded(
    paths: list[Path], res: int, workers: int, on_image: Callable[[int], None] | None = None
) -> Iterator[tuple[int, np.ndarray | None]]:
    """(i, array or None) for each of ``paths`` in order, decoded in ``workers`` loader processes (0: here)."""
    if not workers or len(paths) < 2:
        items: Iterator = (_Decode(paths, res)[i] for i in range(len(paths)))
    else:
        from torch.utils.data import DataLoader

        from .loader import DieWithParent

        items = iter(DataLoader(
            _Decode(paths, res), batch_size=None, num_workers=workers, collate_fn=_as_is,
            worker_init_fn=DieWithParent() if workers else None,
        ))  # fmt: skip
    for n, item in enumerate(items, 1):
        yield item
        if on_image is not None:
            on_image(n)


def build_cache(
    ds: ImageFolder,
    res: int,
    folder: str | Path,
    *,
    workers: int = 0,
    on_image: Callable[[int], None] | None = None,
    progress: bool = False,
) -> CacheBuild:
    """Bring the cache of ``ds`` at ``res`` in ``folder`` up to date: decode the files that are new or changed (in
    ``workers`` loader processes), copy the rest from the previous pixels, then write the index atomically. Nothing
    is written when every file matches. ``on_image(n)``: called after each decoded file; ``progress``: a progress
    bar on the terminal while decoding."""
    if not isinstance(res, int) or res < MIN_RES:
        raise ValueError(f"cache resolution: expected an integer of at least {MIN_RES} px, got {res!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with _locked(folder):
        names = _names(ds)
        prints = [_fingerprint(p) for p, _ in ds.samples]
        old, damaged = _Index.load(folder, res)
        kept = [old.matches(n, f) if old is not None else None for n, f in zip(names, prints, strict=True)]
        todo = [i for i, row in enumerate(kept) if row is None]
        if old is not None and not todo and len(old.row) == len(names):
            return _report(folder, old, names, decoded=0, seconds=0.0)
        for stale in folder.glob(".*.tmp"):  # what a killed build left before its rename
            stale.unlink(missing_ok=True)
        spans = _Spans(len(names))
        previous = old.pixels(folder) if old is not None else None  # mapped once, read row by row
        sources = [(i, _copied(old, previous, row)) for i, row in enumerate(kept) if row is not None]
        with _bar(len(todo), f"caching {ds.root.name} at {res} px", progress, on_image) as tick:
            fresh = ((todo[j], arr) for j, arr in _decoded([ds.samples[i][0] for i in todo], res, workers, tick))
            pixels = f"pixels-{secrets.token_hex(6)}.u8"
            atomic_write(folder / pixels, lambda f: spans.write(f, itertools.chain(sources, fresh)))
        sizes, mtimes = (np.array([f[k] for f in prints], np.int64) for k in (0, 1))
        meta = json.dumps({
            "format": FORMAT, "res": res, "pixels": pixels, "split": str(ds.root.resolve()),
            "bytes": (folder / pixels).stat().st_size, "digest": _digest(folder / pixels),
        })  # fmt: skip
        arrays = dict(paths=np.array(names, dtype=str), sizes=sizes, mtimes=mtimes, **spans.arrays())
        atomic_write(folder / INDEX, lambda f: np.savez(f, meta=np.array(meta), **arrays))
        for other in folder.glob("pixels-*.u8"):  # the previous build's pixels, now unreferenced
            if other.name != pixels:
                other.unlink(missing_ok=True)
        index = _Index(json.loads(meta), arrays)
    report = _report(folder, index, names, decoded=len(todo), seconds=time.monotonic() - start)
    return replace(report, damaged=damaged)


def _report(folder: Path, index: _Index, names: list[str], *, decoded: int, seconds: float) -> CacheBuild:
    ok = index.arrays["ok"]
    skipped = [n for n in names if not ok[index.row[n]]]
    size = (folder / index.meta["pixels"]).stat().st_size
    images = int(ok.sum())
    return CacheBuild(folder, images, decoded, len(names) - decoded, skipped, seconds, size)


class CachedImages:
    """The images of ``ds`` read from its complete, up-to-date cache in ``folder``: ``dataset[i]`` is
    ``(PIL RGB image, label)`` as :class:`~convscale.data.ImageFolder` gives, the files that do not decode left out
    (``skipped``). A missing, incomplete or stale cache is a ValueError (build it with :func:`build_cache`)."""

    def __init__(self, ds: ImageFolder, folder: str | Path, res: int) -> None:
        self.folder, self.res = Path(folder), res
        index, damaged = _Index.load(self.folder, res)
        if index is None:
            why = f"the image cache at {self.folder} is damaged ({damaged})" if damaged else "no complete image cache"
            raise ValueError(
                f"{why} at {self.folder} for {res} px: build it (again) with `convscale cache` or a training run, or "
                f"remove the folder"
            )
        rows, self.samples, self.skipped = [], [], []
        for (path, label), name in zip(ds.samples, _names(ds), strict=True):
            row = index.matches(name, _fingerprint(path))
            if row is None:
                raise ValueError(f"the image cache at {self.folder} is stale ({name} changed): build it again")
            if index.arrays["ok"][row]:
                rows.append(row)
                self.samples.append((path, label))
            else:
                self.skipped.append(name)
        a = index.arrays
        self.spans = np.stack([a["offsets"][rows], a["heights"][rows], a["widths"][rows]], 1).astype(np.int64)
        self.classes, self.root = ds.classes, ds.root
        self.targets = [label for _, label in self.samples]
        self._pixels_path = self.folder / index.meta["pixels"]
        self._pixels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def array(self, index: int) -> np.ndarray:
        """Image ``index`` as an (H, W, 3) uint8 view of the memory map."""
        if self._pixels is None:
            self._pixels = _map(self._pixels_path)
        o, h, w = self.spans[index].tolist()
        return self._pixels[o : o + h * w * 3].reshape(h, w, 3)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(np.asarray(self.array(index))), self.samples[index][1]

    def path(self, index: int) -> Path:
        return self.samples[index][0]

    def check_readable(self, minimum: int, what: str) -> int:
        if len(self) < minimum:
            raise ValueError(f"{self.root}: only {len(self)} images decoded into the cache; {what} needs {minimum}")
        return len(self)

    def __getstate__(self) -> dict:  # loader workers open their own map
        return {**self.__dict__, "_pixels": None}
