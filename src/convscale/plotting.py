"""matplotlib, imported only when a plot is drawn (it is the optional extra ``convscale[plot]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["pyplot", "save_figure"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend, or an ImportError saying what to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'convscale[plot]'") from None
    return plt


def save_figure(fig: Any, path: Path, dpi: int = 120) -> None:
    """Lay out, write (creating the folder) and close ``fig``."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
