"""A split of shards as the trainer and the evaluator take a dataset: its length and classes from ``_info.json``,
its order (:class:`~.order.ShardOrder`) in place of the folder's, and ``dataset[raw sample]`` decoding one sample's
bytes (in a loader worker) as ``ImageFolder`` decodes a file."""

from __future__ import annotations

import io

from PIL import Image

from ...utils.extras import require
from ..folder import DECODE_ERRORS, load_rgb
from .layout import Shards
from .order import ShardOrder
from .stream import TIMEOUT_S, RawSample

__all__ = ["ShardDataset"]


class ShardDataset:
    """One split of a shard source. ``draft`` as for folders (JPEG draft decoding, set by the trainer)."""

    def __init__(
        self, shards: Shards, split: str, *, buffer: int = 4096, timeout_s: float = TIMEOUT_S, max_bad: int = 3,
    ) -> None:  # fmt: skip
        require("webdataset", "streaming WebDataset shards (--data wds:...)")  # said before the run starts
        self.shards, self.split = shards, shards.split(split)
        self.classes = list(shards.classes)
        self.buffer, self.timeout_s, self.max_bad = buffer, timeout_s, max_bad
        self.draft: int | None = None

    def __len__(self) -> int:
        return self.split.num_samples

    def __getitem__(self, sample: RawSample) -> tuple[Image.Image, int] | None:
        if not 0 <= sample.label < len(self.classes):
            return None  # a label outside the classes: skipped and counted as an undecodable image is
        try:
            return load_rgb(io.BytesIO(sample.image), self.draft), sample.label
        except DECODE_ERRORS:
            return None

    def order(self, global_batch: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world: int = 1) -> ShardOrder:
        return ShardOrder(
            self.shards, self.split, global_batch, shuffle=shuffle, seed=seed, rank=rank, world=world,
            buffer=self.buffer, timeout_s=self.timeout_s, max_bad=self.max_bad,
        )  # fmt: skip
