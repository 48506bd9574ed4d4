"""matplotlib, imported only when a plot is drawn (it is the optional extra ``convscale[plot]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["pyplot", "save_figure"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend, or :class:`~.extras.MissingExtra` naming ``[plot]``."""
    from .extras import require

    require("matplotlib", "drawing plots").use("Agg")
    return require("matplotlib.pyplot", "drawing plots")


def save_figure(fig: Any, path: Path, dpi: int = 120) -> None:
    """Lay out, write (creating the folder) and close ``fig``."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
