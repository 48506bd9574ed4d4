"""The ``convscale`` command: one module per command group, each a thin shell over library calls."""

from .app import entry, main

__all__ = ["entry", "main"]
