"""What every command shares: the parser that makes usage errors one line, bounded numbers, and the source
arguments (one syntax for every command that takes a model, :func:`convscale.resolve`'s)."""

from __future__ import annotations

import argparse
from typing import NoReturn

from ..utils.device import DEVICES

SOURCE_HELP = (
    "MODEL, MODEL.TAG, hf-hub:ORG/REPO, a weights file, a run folder or its checkpoint, or an architecture .yaml"
)


class Parser(argparse.ArgumentParser):
    """Usage errors as one line (``convscale bench: error: ...``), exit status 2, like every other error. No flag
    may be abbreviated (``train --res`` was read as ``--resume``): every command, sub-command and flag is spelled
    out."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def bounded(kind: type, lo: float, hi: float):
    """An argparse type: ``kind`` in ``[lo, hi]``, checked by the config's own rule (finite numbers only); anything
    else is a usage error naming what was expected."""
    from ..utils.checks import integer, number

    check = integer(lo, hi) if kind is int else number(lo, hi)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        expected = check(value) if value is not None else f"{'an integer' if kind is int else 'a number'}"
        if expected is not None:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text[:40]!r}")
        return value

    return parse


def add_weights(p: argparse.ArgumentParser) -> None:
    """``--pretrained [TAG]`` (with a MODEL) and ``--weights`` (a run's EMA or raw weights)."""
    p.add_argument(
        "--pretrained", nargs="?", const=True, metavar="TAG",
        help="with a MODEL: its published weights (default tag; or a tag, model.tag, hf-hub:org/repo, a file)",
    )  # fmt: skip
    p.add_argument("--weights", choices=("auto", "ema", "model"), default="auto", help="a run's weights [auto: EMA]")


def add_device(p: argparse.ArgumentParser, text: str = "auto: CUDA, else MPS, else the CPU") -> None:
    p.add_argument("--device", default="auto", choices=DEVICES, help=text)


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]
