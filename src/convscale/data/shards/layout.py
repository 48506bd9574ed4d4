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
from .stream import TIMEOUT_S, ShardError, is_remote, open_source

__all__ = ["INFO", "ShardError", "ShardSplit", "Shards", "join", "read_info", "split_of"]

INFO = "_info.json"
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


def read_info(spec: str, timeout_s: float = TIMEOUT_S) -> Shards:
    """The source ``spec`` (after ``wds:``) with its ``_info.json`` read; a clear :class:`ShardError` when there is
    none, it does not parse, or the server does not answer within ``timeout_s``."""
    root, chosen = split_of(spec)
    where = join(root, INFO)
    try:
        with open_source(where, timeout_s) as f:
            info = json.loads(f.read())
    except ShardError:
        raise
    except (OSError, ValueError) as e:
        raise ShardError(f"{where}: cannot read the shards' {INFO} ({type(e).__name__}: {e})") from None
    try:
        splits = {k: ShardSplit(v.get("name", k), tuple(v["filenames"]), tuple(int(n) for n in v["shard_lengths"]))
                  for k, v in info["splits"].items()}  # fmt: skip
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ShardError(f"{where}: not timm's layout (splits with filenames and shard_lengths): {e!r}") from None
    classes = info.get("classes") or [str(i) for i in range(int(info.get("num_classes", 0)))]
    if not classes:
        raise ShardError(f"{where} names no classes: convscale needs 'classes' (names) or 'num_classes' in it")
    return Shards(root, splits, tuple(classes), chosen)
