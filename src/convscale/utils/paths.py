"""Where convscale keeps what it measures and builds on this machine, and the one rule for a name that a file
or an archive gives (a shard list, a deploy report, an archive member): it must stay inside its folder."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

__all__ = ["cache_root", "file_inside", "stays_inside"]


def cache_root() -> Path:
    """``$CONVSCALE_CACHE``, else ``~/.cache/convscale``: the latency tables and the decoded-image caches live below
    it (named datasets have their own place, ``convscale.data.catalog.cache_dir``)."""
    return Path(os.environ.get("CONVSCALE_CACHE") or Path.home() / ".cache" / "convscale").expanduser()


def stays_inside(name: str) -> bool:
    """Whether ``name`` is a relative path that cannot leave the folder it is joined to: not empty, not absolute,
    no ``..``, no drive, backslash or NUL (as a file or an archive member names it, before anything is opened)."""
    parts = PurePosixPath(name).parts
    return (
        bool(name) and not name.startswith("/") and ".." not in parts
        and not any(":" in part or "\\" in part or "\0" in part for part in parts)
    )  # fmt: skip


def file_inside(folder: str | Path, name: str) -> Path:
    """``folder / name`` when ``name`` stays inside ``folder`` (:func:`stays_inside`, then links resolved) and is a
    regular file; else a ValueError saying which rule it broke."""
    if not isinstance(name, str) or not stays_inside(name):
        raise ValueError(f"{str(name)[:100]!r} is not a file name inside the folder (no absolute path, no ..)")
    path = Path(folder) / name
    if not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder)):
        raise ValueError(f"{name!r} leads outside {folder} (a link)")
    if not path.is_file():
        raise ValueError(f"{name!r} is missing or not a regular file")
    return path
