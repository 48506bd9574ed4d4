"""A stop asked for by a signal, as every long wait sees it.

The trainer's :class:`~convscale.train.stop.StopFlag` and the CLI set :data:`REQUESTED` when SIGINT or SIGTERM
arrives. Waits that may last long — a shard reader's next samples, a slow server's next bytes — call :func:`check`
while they wait, so a stop ends them within a fraction of a second instead of after the read's own deadline; the
caller turns :class:`StopRequested` into its save-and-exit (training) or its one line and exit status (the CLI).
"""

from __future__ import annotations

import signal
import threading

__all__ = ["EXIT", "REQUESTED", "StopRequested", "Stopped", "check", "clear", "request"]

#: what a stop signal is called and the exit status it ends the process with (128 + the signal's number)
EXIT = {signal.SIGINT: ("interrupted", 130), signal.SIGTERM: ("terminated", 143)}
REQUESTED = threading.Event()
_why: list[tuple[str, int]] = [EXIT[signal.SIGTERM]]


class StopRequested(KeyboardInterrupt):
    """A wait ended by a stop signal: ``word`` ("interrupted", "terminated") and the ``exit_code`` it asks for. A
    KeyboardInterrupt, so that no ``except Exception`` on the way swallows it."""

    def __init__(self, word: str = "terminated", exit_code: int = 143) -> None:
        super().__init__(word)
        self.word, self.exit_code = word, exit_code


def request(signum: int) -> None:
    """Mark a stop as asked for by ``signum`` (a signal handler's first step)."""
    _why[0] = EXIT.get(signal.Signals(signum), EXIT[signal.SIGTERM])
    REQUESTED.set()


def check() -> None:
    """Raise :class:`StopRequested` when a stop was asked for."""
    if REQUESTED.is_set():
        raise StopRequested(*_why[0])


def clear() -> None:
    REQUESTED.clear()


class Stopped(RuntimeError):
    """A command that stopped before its end and says so in one line, ending the process with ``exit_code``
    (a training run: :class:`~convscale.train.TrainingStopped`; a search interrupted between its proxy runs)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
