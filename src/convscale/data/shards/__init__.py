"""Tar shards in timm's WebDataset layout: writing them (``convscale shards``), and streaming them into training and
evaluation (``--data wds:FOLDER_OR_URL``) with an order that is a pure function of seed and epoch."""

from __future__ import annotations

from .dataset import ShardDataset
from .layout import INFO, SCHEME, ShardError, Shards, ShardSplit, read_info
from .order import ShardOrder

__all__ = ["INFO", "SCHEME", "ShardDataset", "ShardError", "ShardOrder", "ShardSplit", "Shards", "read_info"]
