"""The ``convscale`` command. Errors print one line and exit with status 2, never a traceback."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..utils import stopping
from . import bench, deploy, models, serve, train, use
from .args import Parser, bounded

__all__ = ["entry", "main"]


def _parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(prog="convscale", description="Efficient ConvNets, exact to their papers.")
    parser.add_argument("--version", action="version", version=f"convscale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    models.add(sub)
    bench.add(sub)
    train.add(sub)
    use.add(sub)
    deploy.add_export(sub)
    deploy.add_deploy(sub)
    serve.add(sub)
    from ..search.cli import add_search

    add_search(sub, bounded)
    for name in QUIET:
        if not any("--verbose" in a.option_strings for a in sub.choices[name]._actions):
            sub.choices[name].add_argument(
                "--verbose", action="store_true", help="show other libraries' warnings and logs too"
            )
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
        with _terminate_as_interrupt(args.command), _quiet(args):
            args.func(args)
    except BrokenPipeError:  # `convscale list | head`: the reader left; not an error of ours (an OSError too)
        sys.stderr.close()
    except (ValueError, TypeError, OSError, ImportError) as e:
        print(f"convscale: error: {_disk_full(e) or e}", file=sys.stderr)
        return 2
    except stopping.Stopped as e:  # a run or a search stopped early: its own line says what stays
        print(f"convscale: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (StopRequested)
        word, code = (e.word, e.exit_code) if isinstance(e, stopping.StopRequested) else ("interrupted", 130)
        print(f"convscale: {word}", file=sys.stderr)
        return code
    return 0


@contextlib.contextmanager
def _terminate_as_interrupt(command: str):
    """Ctrl-C and SIGTERM (``kill``, a scheduler, a container's stop) end every command with one line and status 130
    or 143, instead of a traceback or a silent -15; one stuck in native code is ended by the watchdog after the grace
    time (:class:`~convscale.train.stop.StopFlag`, which training nests with its own: it saves first)."""
    from ..train.stop import StopFlag

    with StopFlag() as flag:
        flag.where = lambda: f"in convscale {command}"
        yield


#: the commands that keep other libraries' warnings and log lines out of the terminal (``--verbose`` shows them)
QUIET = ("deploy", "bench", "predict", "serve", "eval", "export")


def _quiet(args: argparse.Namespace):
    from ..utils.quiet import quiet_libraries

    return quiet_libraries(verbose=args.command not in QUIET or getattr(args, "verbose", False))


def _disk_full(e: BaseException) -> str | None:
    """A full disk named as such, whatever layer reported it (an ONNX exporter, OpenVINO's iostream error)."""
    from ..utils.atomic import disk_full_message

    return disk_full_message(e)


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
