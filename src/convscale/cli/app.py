"""The ``convscale`` command. Errors print one line and exit with status 2, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import bench, deploy, models, train, use
from .args import Parser, bounded

__all__ = ["entry", "main"]


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="convscale", description="Efficient ConvNets, exact to their papers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    models.add(sub)
    bench.add(sub)
    train.add(sub)
    use.add(sub)
    deploy.add_export(sub)
    deploy.add_deploy(sub)
    from ..search.cli import add_search

    add_search(sub, bounded)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage errors (one line, status 2) and --help (status 0)
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    try:
        args.func(args)
    except BrokenPipeError:  # `convscale list | head`: the reader left; not an error of ours (an OSError too)
        sys.stderr.close()
    except (ValueError, TypeError, OSError, ImportError) as e:
        print(f"convscale: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convscale: interrupted", file=sys.stderr)
        return 130
    return 0


def entry() -> NoReturn:
    """The ``convscale`` command: :func:`main`, then Ctrl-C ignored while the interpreter exits (a KeyboardInterrupt
    there would end the process by the signal, with no message and status -2, after its work was done)."""
    import signal

    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    entry()


if __name__ == "__main__":
    entry()
