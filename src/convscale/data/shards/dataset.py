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
from .stream import MAX_MEMBER_MB, TIMEOUT_S, RawSample

__all__ = ["ShardDataset"]


class ShardDataset:
    """One split of a shard source. ``draft`` as for folders (JPEG draft decoding, set by the trainer)."""

    def __init__(
        self, shards: Shards, split: str, *, buffer: int = 4096, timeout_s: float = TIMEOUT_S, max_bad: int = 3,
        max_member_mb: float = MAX_MEMBER_MB,
    ) -> None:  # fmt: skip
        require("webdataset", "streaming WebDataset shards (--data wds:...)")  # said before the run starts
        self.shards, self.split = shards, shards.split(split)
        self.classes = list(shards.classes)
        self.options = {"buffer": buffer, "timeout_s": timeout_s, "max_bad": max_bad, "max_member_mb": max_member_mb}
        self.draft: int | None = None

    def __len__(self) -> int:
        return self.split.num_samples

    def __getitem__(self, sample: RawSample) -> tuple[Image.Image, int] | None:
        """The sample's image and label; None (skipped and counted; :meth:`why_skipped` says why) when it has no
        image, its label is not one of the classes' indices, or its image does not decode."""
        if sample.image is None or self._label_problem(sample.label):
            return None
        try:
            return load_rgb(io.BytesIO(sample.image), self.draft), int(sample.label)
        except DECODE_ERRORS:
            return None

    def _label_problem(self, label: int | str) -> str | None:
        expected = f"expected a class index from 0 to {len(self.classes) - 1}"
        if isinstance(label, str):
            return f"its label {label!r} is not a number ({expected})"
        return None if 0 <= label < len(self.classes) else f"its label {label} is outside the classes ({expected})"

    def why_skipped(self, sample: RawSample) -> str:
        """Why ``self[sample]`` was None, for the skipped-sample line."""
        if sample.image is None:
            return "it has no image (.jpg, .png or .webp)"
        return self._label_problem(sample.label) or "the image does not decode"

    def order(self, global_batch: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world: int = 1) -> ShardOrder:
        return ShardOrder(
            self.shards, self.split, global_batch, shuffle=shuffle, seed=seed, rank=rank, world=world, **self.options
        )
