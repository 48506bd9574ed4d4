"""Stopping a run on a signal, also when a step never returns.

Ctrl-C (SIGINT) or SIGTERM (schedulers, ``kill``) asks the loop to stop after the current step and save; a second
signal interrupts at once. Before the first step (reading ``_info.json`` from a slow server, building the model) a
signal ends the run at once: nothing was trained that a save would keep. A wait for data inside the loop (a shard
reader behind a slow server) sees the stop through :mod:`convscale.utils.stopping` and ends within a fraction of a
second, and the loop saves at the step where it was.

Python runs a signal's handler only between bytecodes of the main thread, so a kernel that never returns (oneDNN's
strided 1×1 weight gradient on AVX2 CPUs spun forever) would leave the process deaf to both. A watchdog thread
therefore hears each signal too (``signal.set_wakeup_fd``): if the main thread has not
run the handler within the grace time, it says where the run was and ends the process with the signal's exit
status. Checkpoints are written atomically, so the last one stays whole.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..utils import stopping

__all__ = ["GRACE_ENV", "STOP_SIGNALS", "StopFlag", "grace_seconds"]

#: the signals that stop a run cleanly (it saves, and says how to resume): what they are called, the exit status
STOP_SIGNALS = stopping.EXIT
GRACE_ENV = "CONVSCALE_STOP_GRACE_S"
_DEFAULT_GRACE_S = 30.0


def grace_seconds(longest_step_s: float = 0.0) -> float:
    """How long the main thread may stay away from Python after a signal: ``$CONVSCALE_STOP_GRACE_S`` (default 30 s),
    and at least three times the longest step seen (a compiled step is one long native call)."""
    raw = os.environ.get(GRACE_ENV, "")
    try:
        grace = float(raw) if raw else _DEFAULT_GRACE_S
    except ValueError:
        raise ValueError(f"{GRACE_ENV} must be a number of seconds, got {raw!r}") from None
    if not grace > 0:
        raise ValueError(f"{GRACE_ENV} must be a number of seconds above 0, got {raw!r}")
    return max(grace, 3 * longest_step_s)


def _main_thread_frames() -> str:
    """The main thread's innermost Python frame, and convscale's innermost one when that is another."""
    frame = sys._current_frames().get(threading.main_thread().ident)
    spots: list[str] = []
    while frame is not None:
        code = frame.f_code
        spot = f"{os.path.basename(code.co_filename)}:{frame.f_lineno} in {code.co_name}"
        if not spots or (len(spots) == 1 and f"{os.sep}convscale{os.sep}" in code.co_filename):
            spots.append(spot)
        if len(spots) == 2:
            break
        frame = frame.f_back
    return ", called from ".join(spots) or "no Python frame"


class StopFlag:
    """The loop polls ``requested`` after each step. ``where`` describes the run's position for the watchdog's
    message (the loop sets it once it has a run); ``longest_step_s`` stretches the grace time."""

    def __init__(self) -> None:
        self.requested: tuple[str, int] | None = None
        self.where: Callable[[], str] = lambda: "while starting the run"
        self.longest_step_s = 0.0
        self.at_steps = False  # True once the loop runs: a signal then waits for the step's end (or a wait's check)
        self._previous: dict[int, Any] = {}
        self._handled = 0
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self._previous_fd = -1
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StopFlag:
        grace_seconds()  # a bad setting is refused before the run starts
        stopping.clear()
        for sig in STOP_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave the signals alone
                return self
        self._wakeup = socket.socketpair()
        reader, writer = self._wakeup
        writer.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, args=(reader,), name="convscale-stop-watchdog", daemon=True)
        self._thread.start()
        return self

    def _handle(self, signum, frame) -> None:
        self._handled += 1
        if self.requested:
            raise KeyboardInterrupt
        self.requested = STOP_SIGNALS[signal.Signals(signum)]
        stopping.request(signum)
        if not self.at_steps:
            raise stopping.StopRequested(*self.requested)

    def _watch(self, reader: socket.socket) -> None:
        """Runs in its own thread: for each stop signal, wait for the main thread's handler, else end the process."""
        heard = 0
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            if not data:  # closed by __exit__
                return
            for signum in (s for s in data if s in STOP_SIGNALS):
                heard += 1
                grace = grace_seconds(self.longest_step_s)
                deadline = time.monotonic() + grace
                while self._handled < heard and time.monotonic() < deadline:
                    time.sleep(0.05)
                if self._handled < heard:
                    self._give_up(signal.Signals(signum), grace)

    def _give_up(self, sig: signal.Signals, grace: float) -> None:
        word, code = STOP_SIGNALS[sig]
        message = (
            f"\nconvscale: {word} ({sig.name}), but the main thread did not come back from native code within "
            f"{grace:.0f} s (in {_main_thread_frames()}) {self.where()}: a kernel that does not return; exiting "
            f"without saving ({GRACE_ENV} sets the wait)\n"
        )
        try:
            os.write(2, message.encode())
        finally:
            os._exit(code)

    def __exit__(self, *exc) -> None:
        stopping.clear()
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        if self._wakeup is not None:
            signal.set_wakeup_fd(self._previous_fd)
            reader, writer = self._wakeup
            reader.shutdown(socket.SHUT_RDWR)  # the watchdog's recv returns b"" and its thread ends
            if self._thread is not None:  # ended before the interpreter is: a daemon thread still running at exit
                self._thread.join(timeout=5)  # is ended by pthread_exit, which can abort the process
            reader.close()
            writer.close()
            self._wakeup = None
