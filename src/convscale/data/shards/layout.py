"""timm's WebDataset layout: tar shards of samples ``KEY.jpg`` (or ``.png``, ``.webp``) + ``KEY.cls`` (the label as
decimal text), and an ``_info.json`` beside them naming each split's shards and their sample counts::

    {"name": "imagenette2-160",
     "splits": {"train": {"name": "train", "num_samples": 9469, "filenames": ["imagenette2-160-train-000000.tar", ...],
                          "shard_lengths": [2048, ...]}, "val": {...}},
     "classes": ["n01440764", ...]}

``classes`` (the label names, in label order) is convscale's addition; timm ignores keys it does not know. A source is
a folder or an ``http(s)://`` address holding ``_info.json``, or a brace pattern of shard names inside one
(``https://host/data/name-train-{000000..000009}.tar``), which selects those shards of the split that lists them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...utils.extras import require
from ...utils.paths import file_inside, stays_inside
from .stream import INFO, TIMEOUT_S, ShardError, is_remote, open_source

__all__ = ["INFO", "ShardError", "ShardSplit", "Shards", "join", "read_info", "split_of"]

_VAL_NAMES = ("val", "validation")  # timm's ImageNet shards call the split "validation"


@dataclass(frozen=True)
class ShardSplit:
    """One split: its shard file names (relative to the source's root) and their sample counts."""

    name: str
    filenames: tuple[str, ...]
    shard_lengths: tuple[int, ...]

    @property
    def num_samples(self) -> int:
        return sum(self.shard_lengths)

    def to_dict(self) -> dict:
        return {"name": self.name, "num_samples": self.num_samples, "filenames": list(self.filenames),
                "shard_lengths": list(self.shard_lengths)}  # fmt: skip


@dataclass(frozen=True)
class Shards:
    """A shard source: its root (a folder or an address), its splits and classes, and the shards a pattern chose."""

    root: str
    splits: dict[str, ShardSplit]
    classes: tuple[str, ...]
    chosen: tuple[str, ...] = ()  # shard names a brace pattern selected for training (empty: the whole split)

    def url(self, filename: str) -> str:
        return join(self.root, filename)

    def split(self, name: str) -> ShardSplit:
        """The split ``name`` ("val" also finds "validation"); for ``train``, only the shards a pattern chose."""
        names = _VAL_NAMES if name in _VAL_NAMES else (name,)
        found = next((self.splits[n] for n in names if n in self.splits), None)
        if found is None:
            raise ShardError(f"{self.root}/{INFO} has no {name!r} split (it has {', '.join(self.splits) or 'none'})")
        if name == "train" and self.chosen:
            lengths = dict(zip(found.filenames, found.shard_lengths, strict=True))
            unknown = [f for f in self.chosen if f not in lengths]
            if unknown:
                raise ShardError(f"{unknown[0]} is not a shard of the {found.name!r} split in {self.root}/{INFO}")
            found = ShardSplit(found.name, self.chosen, tuple(lengths[f] for f in self.chosen))
        return found


def join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}" if is_remote(root) else str(Path(root) / name)


def split_of(spec: str) -> tuple[str, tuple[str, ...]]:
    """(root, chosen shard names) of a source: a root alone, or a root with a brace pattern of ``.tar`` names."""
    if not spec.endswith(".tar"):
        return spec, ()
    braceexpand = require("braceexpand", "brace patterns of shard names").braceexpand  # webdataset's dependency

    root, _, pattern = spec.rpartition("/")
    return root or ".", tuple(braceexpand(pattern))


MAX_SHARD_SAMPLES = 10**7  # a shard claiming more is refused (at >= 1 KiB a sample, a 10 GB shard)
MAX_SAMPLES = 10**10  # a split claiming more is refused (the largest public image sets hold about 6e9)
_SAMPLE_BYTES = 1024  # the least a sample takes in a tar: two member headers (an image and its .cls)


def read_info(spec: str, timeout_s: float = TIMEOUT_S) -> Shards:
    """The source ``spec`` (after ``wds:``) with its ``_info.json`` read and checked; a clear :class:`ShardError`
    when there is none, it does not parse, the server does not answer within ``timeout_s``, or a claim in it cannot
    hold: a shard name that leaves the source (``../``, an absolute path or address, a link out of the folder) or
    is not a regular file, a sample count that is not a count or that the shard's size cannot hold, a total other
    than ``num_samples``, fewer than two classes."""
    root, chosen = split_of(spec)
    where = join(root, INFO)
    try:
        with open_source(where, timeout_s) as f:
            info = json.loads(f.read())
    except ShardError:
        raise
    except (OSError, ValueError) as e:
        raise ShardError(f"{where}: cannot read the shards' {INFO} ({type(e).__name__}: {e})") from None
    if not isinstance(info, dict) or not isinstance(info.get("splits"), dict):
        raise ShardError(f"{where}: not timm's layout: expected an object with 'splits' (name -> split)")
    splits = {k: _split(where, root, k, v) for k, v in info["splits"].items()}
    return Shards(root, splits, _classes(where, info), chosen)


def _split(where: str, root: str, key: str, v) -> ShardSplit:
    at = f"{where}: splits.{key}"
    if (
        not isinstance(v, dict)
        or not isinstance(v.get("filenames"), list)
        or not isinstance(v.get("shard_lengths"), list)
    ):
        raise ShardError(f"{at}: not timm's layout: expected an object with the lists 'filenames' and 'shard_lengths'")
    names, lengths = v["filenames"], v["shard_lengths"]
    if len(names) != len(lengths):
        raise ShardError(f"{at}: {len(names)} filenames but {len(lengths)} shard_lengths: expected one count a shard")
    for i, (name, n) in enumerate(zip(names, lengths, strict=True)):
        _check_name(f"{at}.filenames[{i}]", root, name)
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_SHARD_SAMPLES:
            raise ShardError(
                f"{at}.shard_lengths[{i}] ({name}) is {str(n)[:40]}: expected a count of samples from 0 to "
                f"{MAX_SHARD_SAMPLES:.0e}"
            )
        _check_length(f"{at}.shard_lengths[{i}]", root, name, n)
    total = sum(lengths)
    claimed = v.get("num_samples", total)
    if claimed != total or total > MAX_SAMPLES:
        raise ShardError(
            f"{at}: num_samples {str(claimed)[:40]} but the shard_lengths add up to {total}"
            if claimed != total
            else f"{at}: {total} samples claimed, above the {MAX_SAMPLES:.0e} convscale reads in one split"
        )
    return ShardSplit(str(v.get("name", key)), tuple(names), tuple(lengths))


def _check_name(at: str, root: str, name) -> None:
    """A shard's name stays inside the source; a local one that exists must be a regular file there."""
    if not isinstance(name, str) or not stays_inside(name):
        raise ShardError(f"{at} is {str(name)[:80]!r}: a shard is named inside the source (no absolute path, no ..)")
    path = Path(root) / name
    if not is_remote(root) and (path.is_symlink() or path.exists()):
        try:
            file_inside(root, name)
        except ValueError as e:
            raise ShardError(f"{at}: {e}; shards lie in the source's folder, as regular files") from None


def _check_length(at: str, root: str, name: str, n: int) -> None:
    """A local shard's count must fit its size (a sample takes at least two tar headers; a compressed shard is not
    bounded so)."""
    path = Path(root) / name
    if is_remote(root) or not name.endswith(".tar") or not path.is_file():
        return
    room = path.stat().st_size // _SAMPLE_BYTES
    if n > room:
        raise ShardError(f"{at} claims {n} samples, but {name} ({path.stat().st_size} bytes) can hold at most {room}")


def _classes(where: str, info: dict) -> tuple[str, ...]:
    classes = info.get("classes")
    if classes is None:
        n = info.get("num_classes", 0)
        classes = [str(i) for i in range(n)] if isinstance(n, int) and not isinstance(n, bool) and n < 10**6 else n
    if not isinstance(classes, list) or not all(isinstance(c, str | int) for c in classes):
        raise ShardError(f"{where}: 'classes' must be a list of class names (or 'num_classes' a count)")
    if len(classes) < 2:
        raise ShardError(
            f"{where} names {len(classes)} class{'es' if len(classes) != 1 else ''}: a classifier needs at least 2 "
            "('classes': their names, or 'num_classes')"
        )
    if len(set(map(str, classes))) < len(classes):
        raise ShardError(f"{where}: 'classes' names a class twice")
    return tuple(map(str, classes))
