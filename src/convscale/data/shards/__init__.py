"""Tar shards in timm's WebDataset layout: writing them (``convscale shards``), and streaming them into training and
evaluation (``--data wds:FOLDER_OR_URL``) with an order that is a pure function of seed and epoch."""

from __future__ import annotations

from .dataset import ShardDataset
from .layout import INFO, ShardError, Shards, ShardSplit, read_info
from .order import ShardOrder
from .stream import TIMEOUT_S

__all__ = ["INFO", "TIMEOUT_S", "ShardDataset", "ShardError", "ShardOrder", "ShardSplit", "Shards", "read_info"]
