"""The search's engine: an Optuna study (the ``search`` extra) holds every trial of a search — its parameters, its
measured latency, its top-1 after each epoch, its state — in a database. By default the SQLite file
``OUT/study.db``, so that the same command with the same ``--out`` resumes (finished trials are not run again); with
``--storage URL`` any database Optuna supports (PostgreSQL or MySQL for workers on many machines), and any number of
``convscale search`` processes given the same URL work on one study, each trial taken by one of them.

- **Exactly once.** A trial is a new number in the study, given to one worker. Work known before it starts (the
  scaling grid; the seeds that confirm the survivors) goes through Optuna's grid sampler, which gives trial ``k``
  grid point ``k``: trials beyond the grid (two workers asking as it ran out) are marked spare and end unrun. A
  waiting trial (queued at set-up, or a retry) is claimed by one worker: Optuna moves it to running only while it is
  still waiting. Sampled work (the stage search's NSGA-II) is a new trial per ask.
- **A killed worker.** Each running trial sends a heartbeat every ``CONVSCALE_SEARCH_HEARTBEAT_S`` seconds (10);
  one silent for three of those is failed and a copy queued again with its parameters (Optuna's
  ``RetryHeartbeatStaleTrialCallback``), which the rerun or another worker takes — its proxy run continues from its
  last checkpoint. A worker with nothing left to take waits for the others' running trials, so that a trial lost
  with its worker is still run before the search reports.
- **The right study.** A study remembers which search it is (the kind and its settings) and convscale's study
  format; another search given the same database and study name, a database written by another Optuna version, or
  one that cannot be reached are each refused in one line, nothing written.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..utils.atomic import folder_lock
from ..utils.extras import require

__all__ = [
    "FORMAT", "CandidateFailed", "Engine", "NothingLeft", "heartbeat_s", "open_storage", "open_study", "optuna",
    "spare_beyond",
]  # fmt: skip

FORMAT = 1  # the attributes convscale keeps on a study; a study of another format is refused
SETUP_WAIT_S = 120.0  # how long a worker waits for the process that sets the study up


def optuna():
    """The ``optuna`` module (its own log and its experimental-feature warnings quiet: the search says what happens),
    or one line naming the extra."""
    import warnings

    module = require("optuna", "convscale search (its engine, Optuna)")
    module.logging.set_verbosity(module.logging.ERROR)
    warnings.filterwarnings("ignore", category=module.exceptions.ExperimentalWarning)
    return module


def heartbeat_s() -> int:
    raw = os.environ.get("CONVSCALE_SEARCH_HEARTBEAT_S", "10")
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"CONVSCALE_SEARCH_HEARTBEAT_S must be a whole number of seconds >= 1, got {raw!r}")
    return value


def open_storage(out: str | Path, url: str | None = None):
    """The study's database: ``url``, or the SQLite file ``OUT/study.db``; any failure to open it is one line."""
    opt = optuna()
    import sqlalchemy.exc

    if url is None:
        Path(out).mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{Path(out).resolve() / 'study.db'}"
    beat = heartbeat_s()
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}  # workers wait for the lock
    for attempt in range(10):
        try:
            with _creating(url):
                return opt.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=beat, grace_period=3 * beat,
                    heartbeat_stale_trial_callback=opt.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
                )  # fmt: skip
        except ImportError:
            scheme = url.split(":", 1)[0]
            raise ValueError(f"--storage {_safe(url)}: the database driver for {scheme} is not installed (e.g. "
                             "psycopg2 for postgresql, pymysql for mysql+pymysql)") from None  # fmt: skip
        except (sqlalchemy.exc.SQLAlchemyError, ValueError) as e:
            if attempt == 9 or not _created_meanwhile(e):
                raise ValueError(f"--storage {_safe(url)}: cannot open it ({first_line(e)})") from None
            time.sleep(0.5)  # another worker was creating the same database's tables: open what it made
        except RuntimeError as e:  # Optuna's schema check: a database written by another version
            raise ValueError(f"--storage {_safe(url)}: {first_line(e)}") from None
    raise AssertionError("unreachable: the last attempt returns or raises")


def _creating(url: str):
    """Workers on one machine create a SQLite file's tables one at a time (a lock on its folder: two creating them
    at once race, "table ... already exists"); other databases race safely and are retried."""
    path = url.removeprefix("sqlite:///")
    if path == url or path.startswith(":memory:") or not Path(path).parent.is_dir():
        return contextlib.nullcontext()
    return folder_lock(Path(path).parent)


def _created_meanwhile(e: Exception) -> bool:
    """Whether opening failed because another worker created the same tables or rows at the same moment."""
    import sqlalchemy.exc

    if isinstance(e, sqlalchemy.exc.IntegrityError):
        return True
    text = str(e).lower()
    return isinstance(e, sqlalchemy.exc.OperationalError) and ("already exists" in text or "duplicate" in text)


def _safe(url: str) -> str:
    """The URL without its password."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, user = head.partition("://")
    return f"{scheme}://{user.split(':')[0]}:***@{tail}"


def first_line(e: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def open_study(storage, name: str, identity: dict[str, Any], *, directions: Sequence[str], sampler=None, pruner=None):
    """The study ``name`` in ``storage`` — created here (``True`` second) or loaded (``False``) — refused in one line
    when it holds another search (its ``identity`` differs) or another format."""
    opt = optuna()
    identity = json.loads(json.dumps(identity))  # as the database gives it back (tuples as lists)
    try:
        study = opt.create_study(
            storage=storage, study_name=name, directions=list(directions), sampler=sampler, pruner=pruner
        )
        study.set_user_attr("convscale", {"format": FORMAT, "search": identity})
        return study, True
    except opt.exceptions.DuplicatedStudyError:
        study = opt.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
    own = _identity(study)
    if own is None:
        raise ValueError(f"the study {name!r} in this database is not a convscale search: give another --study")
    if own.get("format") != FORMAT:
        raise ValueError(f"the study {name!r} was written in convscale's study format {own.get('format')}, this "
                         f"release reads format {FORMAT}: start a new --out or --study")  # fmt: skip
    if own.get("search") != identity:
        theirs, ours = own.get("search") or {}, identity
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        shown = ", ".join(f"{k}={theirs.get(k)!r}" for k in diff[:3])
        raise ValueError(f"the study {name!r} in this database is another search ({shown}): give another --study "
                         "or --out, or the same settings to resume it")  # fmt: skip
    if [d.name.lower() for d in study.directions] != list(directions):
        raise ValueError(f"the study {name!r} optimises {len(study.directions)} objectives, not {len(directions)}")
    return study, False


def _identity(study) -> dict[str, Any] | None:
    for _ in range(50):  # its creator sets it right after creating it
        own = study.user_attrs.get("convscale")
        if own is not None:
            return own
        time.sleep(0.1)
    return None


@dataclass
class Engine:
    """One worker's part in a study: set it up once (whoever created it), take waiting or new trials until the
    search's work is done, then wait for the other workers' running trials."""

    study: Any
    created: bool
    log: Callable[[str], Any] = print

    def setup(self, make: Callable[[], dict[str, Any]], queue: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        """The study's shared facts (``make()``: e.g. the base's measured latency), and ``queue``'s trials enqueued,
        done once by the process that created the study; the others wait for them (and, when that process was
        killed before it finished, do it themselves, skipping what it queued)."""
        facts = self.study.user_attrs.get("setup")
        if facts is not None:
            return facts
        if not self.created:
            deadline = time.monotonic() + SETUP_WAIT_S
            while time.monotonic() < deadline:
                facts = self.study.user_attrs.get("setup")
                if facts is not None:
                    return facts
                time.sleep(0.5)
            self.log(f"the study was not set up within {SETUP_WAIT_S:.0f} s: setting it up here")
        facts = make()
        for params in queue:
            self.study.enqueue_trial(params, skip_if_exists=not self.created)
        self.study.set_user_attr("setup", facts)
        return facts

    def run(self, objective: Callable[[Any], Any], trials: int) -> None:
        """Take trials until none is waiting and the study has ``trials`` (spare ones aside), then wait for the
        running ones — failing those whose worker went silent, whose retries come back as waiting trials."""
        opt = optuna()
        beat = heartbeat_s()
        retry = opt.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)

        def guarded(trial):
            try:
                return objective(trial)
            except STOPS:  # a signal: the trial is queued again for the rerun, then the stop goes on
                retry(self.study, self.study._storage.get_trial(trial._trial_id))
                raise

        seen = self._failed()
        while True:
            if self.count("WAITING") or len(self.study.get_trials(deepcopy=False)) < trials:
                try:
                    self.study.optimize(guarded, n_trials=1, catch=(CandidateFailed,), gc_after_trial=False)
                except NothingLeft:
                    pass  # another worker took the last trial first
            elif not self.count("RUNNING"):
                return
            else:
                time.sleep(beat)
                opt.storages.fail_stale_trials(self.study)
            seen = self._say_failed(seen, beat)

    def _failed(self) -> set[int]:
        opt = optuna()
        failed = self.study.get_trials(deepcopy=False, states=(opt.trial.TrialState.FAIL,))
        return {t.number for t in failed if not t.user_attrs.get("spare") and "error" not in t.user_attrs}

    def _say_failed(self, seen: set[int], beat: int) -> set[int]:
        """Log the trials failed since ``seen`` (a worker silent for three heartbeats: failed here or when a trial
        started), each queued again."""
        now = self._failed()
        for number in sorted(now - seen):
            self.log(f"trial {number}: its worker went silent for {3 * beat} s (killed?): marked failed and queued "
                     "again, to run here or on another worker")  # fmt: skip
        return now

    def count(self, *states: str) -> int:
        opt = optuna()
        wanted = tuple(getattr(opt.trial.TrialState, s) for s in states)
        return sum(not t.user_attrs.get("spare") for t in self.study.get_trials(deepcopy=False, states=wanted))


def _stops() -> tuple[type[BaseException], ...]:
    from ..train import TrainingStopped
    from ..utils.stopping import StopRequested

    return KeyboardInterrupt, TrainingStopped, StopRequested


STOPS = _stops()


class CandidateFailed(Exception):
    """A candidate whose proxy run raised (its error kept on the trial as ``error``): the trial fails, the search
    goes on."""


class NothingLeft(Exception):
    """A trial beyond the study's planned number (two workers asked as the last was given): spare, failed unrun."""


def spare_beyond(trial, trials: int) -> None:
    """End ``trial`` unrun, marked spare, when its number is beyond the planned ``trials`` and it is not the retry
    of a trial whose worker was lost."""
    if trial.number >= trials and "failed_trial" not in trial.storage.get_trial_system_attrs(trial._trial_id):
        trial.set_user_attr("spare", True)
        raise NothingLeft
