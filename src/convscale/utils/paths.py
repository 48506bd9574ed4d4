"""Where convscale keeps what it measures and builds on this machine."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """``$CONVSCALE_CACHE``, else ``~/.cache/convscale``: the latency tables and the decoded-image caches live below
    it (named datasets have their own place, ``convscale.data.catalog.cache_dir``)."""
    return Path(os.environ.get("CONVSCALE_CACHE") or Path.home() / ".cache" / "convscale").expanduser()
