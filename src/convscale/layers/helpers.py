"""Channel rounding shared by every family (MobileNet, EfficientNet, GhostNet, RegNet-style widths)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ceil_divisible", "make_divisible", "resolve_layer"]


def resolve_layer(value: Any, table: Mapping[str, Callable[..., Any]], what: str) -> Callable[..., Any] | None:
    """A layer factory from a name in ``table`` (case-insensitive), a class or factory (returned as is), or None."""
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        try:
            return table[value.lower()]
        except KeyError:
            raise ValueError(f"unknown {what} {value!r}; expected one of {sorted(table)}") from None
    raise TypeError(f"{what} must be a name, a module class or None, got {type(value).__name__}")


def ceil_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded *up* to a multiple of ``divisor`` (AsymmNet's ``make_divisible``: no minimum, no 0.9 rule)."""
    return int(math.ceil(value / divisor) * divisor)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, at least ``min_value`` (default ``divisor``).

    If rounding down lost more than ``1 - round_limit`` of ``value`` (10% by default), one more ``divisor`` is added:
    this is the rule of the TPU EfficientNet / MobileNet code (``round_filters``). ``round_limit=0`` turns it off, as
    the EfficientNetV2 code does.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded
