"""The checks a setting carries: each returns None for a valid value, else what was expected, so that every settings
class (a run's :class:`~convscale.runs.TrainConfig`, each training method's own) reports a bad value in one line that
names its key. :func:`setting` is a dataclass field with its check, its ``--help`` and, for a method's settings, the
flat key the CLI and the YAML recipes spell it with."""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable
from dataclasses import field
from typing import Any

__all__ = [
    "Check",
    "choice",
    "flag",
    "integer",
    "is_number",
    "number",
    "optional",
    "setting",
    "short_repr",
    "text",
]

Check = Callable[[Any], str | None]  # value -> None when valid, else what was expected
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 40, 40


def short_repr(value: Any) -> str:
    """A repr of at most about 80 characters whatever ``value`` is (a YAML alias bomb included)."""
    return _REPR.repr(value)[:80]


def is_number(v: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def integer(lo: int, hi: int | None = None) -> Check:
    top = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
    return lambda v: None if _is_int(v) and v >= lo and (hi is None or v <= hi) else f"an integer {top}"


def number(lo: float, hi: float) -> Check:
    return lambda v: None if is_number(v) and lo <= v <= hi else f"a number in [{lo}, {hi}]"


def choice(*options: str) -> Check:
    return lambda v: None if v in options else "one of " + ", ".join(options)


def text(v: Any) -> str | None:
    return None if isinstance(v, str) and v != "" else "a non-empty string"


def flag(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def optional(check: Check) -> Check:
    return lambda v: None if v is None else (None if check(v) is None else f"{check(v)} or null")


def setting(default: Any, check: Check | None, help: str, flat: str | None = None) -> Any:
    """A settings field: its default, its check, its documentation and (a method's setting) its flat key."""
    return field(default=default, metadata={"check": check, "help": help, "flat": flat})
