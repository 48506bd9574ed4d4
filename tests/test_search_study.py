"""The search on Optuna: workers sharing one study run each trial once, a killed worker's trial is retried by the
rerun, the pruner stops a laggard, the front and the chosen network are read from the study, and bad storage is one
line. Latency and training are stubbed (``search_stubs``); the engine, the storage and the processes are real."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convscale.cli import main
from convscale.search.compound import ScalingSearch, search_scaling
from convscale.search.proxy import ProxyRun
from convscale.search.report import pareto_front
from convscale.search.stages import StageSearch, search_stages
from search_stubs import runs, stub_latency, stub_training

optuna = pytest.importorskip("optuna")

HERE = Path(__file__).resolve().parent
PROXY = ProxyRun(epochs=3, batch_size=16, shapes_train=32, shapes_val=16, shapes_res=32)
GRID = dict(res=32, target=2.0, step=0.25, tolerance=0.15, phis=1, max_candidates=3)
QUIET = {"log": lambda *_: None}


@pytest.fixture(autouse=True)
def quick_heartbeat(monkeypatch):
    monkeypatch.setenv("CONVSCALE_SEARCH_HEARTBEAT_S", "1")


def _table(tmp_path):
    from convscale.search.latency import LatencyTable

    return LatencyTable(tmp_path / "table.json", min_time=0.005)


WORKER = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from search_stubs import stub_latency, stub_training
from convscale.search.compound import ScalingSearch, search_scaling
from convscale.search.latency import LatencyTable
from convscale.search.proxy import ProxyRun
stub_latency()
stub_training(Path({log!r}), top1=lambda width, seed, calls: 60.0, pause_s={pause}, hang_on={hang!r})
s = ScalingSearch("test_efficientnet", **{grid!r})
proxy = ProxyRun(epochs=3, batch_size=16, shapes_train=32, shapes_val=16, shapes_res=32)
table = LatencyTable({table!r}, min_time=0.005)
search_scaling(s, {out!r}, proxy, table=table, log=lambda line: print(line, flush=True))
"""


def _worker(tmp_path: Path, out: Path, log: Path, pause: float = 0.0, hang: str | None = None) -> subprocess.Popen:
    script = WORKER.format(tests=str(HERE), log=str(log), pause=pause, hang=hang, grid=GRID, out=str(out),
                           table=str(tmp_path / "table.json"))  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONVSCALE_SEARCH_HEARTBEAT_S": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def _study(out: Path):
    return optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")


def _completed(out: Path) -> set[str]:
    study = _study(out)
    return {t.params["point"] for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}


def test_two_workers_on_one_sqlite_study_run_each_trial_once_and_finish_it(tmp_path):
    out, log = tmp_path / "out", tmp_path / "runs.jsonl"
    workers = [_worker(tmp_path, out, log, pause=0.3) for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err[-3000:]
    done = runs(log)
    labels = [r["label"] for r in done]
    assert len(labels) == len(set(labels)) == 4, done  # the base and three grid points, each once
    study = _study(out)
    real = [t for t in study.get_trials() if not t.user_attrs.get("spare")]
    assert len(real) == 4 and {t.state.name for t in real} <= {"COMPLETE", "PRUNED"}
    assert {t.params["point"] for t in real} == set(labels)
    assert len({r["pid"] for r in done}) == 2  # both workers took trials
    assert (out / "pareto.csv").is_file() and json.loads((out / "search.json").read_text())["trials_started"] == 4


def test_workers_opening_a_new_sqlite_study_at_the_same_moment_all_open_it(tmp_path):
    """Two workers creating the same new database's tables at once raced ("table studies already exists": CI's
    failure of the test above); threads reproduce it in most rounds without the folder lock."""
    import threading

    from convscale.search.study import open_storage

    errors = []

    def open_it(out):
        try:
            open_storage(out)
        except Exception as e:  # every failure is collected and shown
            errors.append(str(e))

    for k in range(8):
        threads = [threading.Thread(target=open_it, args=(tmp_path / f"out{k}",)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_a_sigkilled_worker_trial_is_retried_by_the_rerun_and_the_study_ends_as_an_uninterrupted_one(tmp_path):
    straight, log0 = tmp_path / "straight", tmp_path / "straight.jsonl"
    w = _worker(tmp_path, straight, log0)
    assert w.wait(timeout=300) == 0, w.stderr.read()[-3000:]
    grid = sorted(_completed(straight) | {t.params["point"] for t in _study(straight).get_trials()})
    victim = grid[-1]

    out, log = tmp_path / "out", tmp_path / "runs.jsonl"
    killed = _worker(tmp_path, out, log, hang=victim)
    deadline = time.monotonic() + 300
    while not Path(f"{log}.hang").exists() and time.monotonic() < deadline:
        assert killed.poll() is None, killed.stderr.read()[-3000:]
        time.sleep(0.1)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    running = _study(out).get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert [t.params["point"] for t in running] == [victim]  # left running by the dead worker

    rerun = _worker(tmp_path, out, log)
    stdout, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    study = _study(out)
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert [t.params["point"] for t in failed] == [victim]  # failed once its heartbeat went silent
    retried = [t for t in study.get_trials() if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retried) == 1 and retried[0].state.name in ("COMPLETE", "PRUNED")
    finished = {t.params["point"]: t.state.name for t in study.get_trials() if t.state.name != "FAIL"}
    before = {t.params["point"]: t.state.name for t in _study(straight).get_trials()}
    assert finished == before  # the same trials, completed or pruned alike
    assert "1 failed" in stdout


def test_the_pruner_stops_a_trial_whose_top1_lags(tmp_path, monkeypatch):
    stub_latency(monkeypatch)
    log = tmp_path / "runs.jsonl"
    # every run scores 60 but the last of the grid, which lags at 10 after its first epoch
    stub_training(log, top1=lambda width, seed, calls: 10.0 if calls == 3 else 60.0, monkeypatch=monkeypatch)
    summary = search_scaling(ScalingSearch("test_efficientnet", **GRID), tmp_path / "out", PROXY,
                             table=_table(tmp_path), **QUIET)  # fmt: skip
    done = runs(log)
    assert [r["epochs"] for r in done] == [3, 3, 3, 1]  # the laggard stopped after its first epoch
    study = _study(tmp_path / "out")
    last = max(study.get_trials(), key=lambda t: t.number)
    assert last.state.name == "PRUNED" and last.user_attrs["pruned_at"] == 1
    assert summary["trials_pruned"] == 1 and summary["trials_completed"] == 3


def test_the_front_and_the_chosen_network_are_read_from_the_study(tmp_path, monkeypatch):
    stub_latency(monkeypatch)
    log = tmp_path / "runs.jsonl"
    stub_training(log, top1=lambda width, seed, calls: 40.0 + calls % 5 * 3 + seed, monkeypatch=monkeypatch)
    s = StageSearch("test_efficientnetv2", res=32, mode="eval", batch=2, trials=8, stages=(3, 4), seeds=2,
                    objective="accuracy")  # fmt: skip
    summary = search_stages(s, tmp_path / "out", PROXY, table=_table(tmp_path), **QUIET)
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    assert len(study.directions) == 2
    done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    with open(tmp_path / "out" / "pareto.csv") as f:
        front = list(csv.DictReader(f))
    confirmed = optuna.load_study(study_name="search:seeds2", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    seeds = {}
    for t in confirmed.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        seeds.setdefault(t.params["label"], []).append(t.value)
    means = {}
    for t in done:
        label = t.user_attrs["label"]
        means.setdefault(label, (sum([t.values[0], *seeds[label]]) / 2, t.user_attrs["measured_ms"]))
    expected = pareto_front([{"label": k, "top1": v[0], "measured_ms": v[1]} for k, v in means.items()])
    assert [r["label"] for r in front] == [r["label"] for r in expected] == summary["front"]
    inside = {k: v for k, v in means.items() if v[1] <= summary["budget_ms"] + 1e-9}
    assert summary["winner"]["label"] == max(inside, key=lambda k: (inside[k][0], -inside[k][1]))
    assert summary["trials_started"] == 8 and summary["confirmation_runs"] == len(means)


def test_a_rerun_of_a_finished_search_trains_nothing(tmp_path, monkeypatch):
    stub_latency(monkeypatch)
    log = tmp_path / "runs.jsonl"
    stub_training(log, monkeypatch=monkeypatch)
    s = ScalingSearch("test_efficientnet", **GRID, seeds=2)
    first = search_scaling(s, tmp_path / "out", PROXY, table=_table(tmp_path), **QUIET)
    trained = len(runs(log))
    again = search_scaling(s, tmp_path / "out", PROXY, table=_table(tmp_path), **QUIET)
    assert len(runs(log)) == trained and again["winner"]["label"] == first["winner"]["label"]


def _cli_search(tmp_path, *extra: str) -> list[str]:
    return ["search", "scaling", "--base", "test_efficientnet", "--res", "32", "--max-candidates", "1",
            "--table", str(tmp_path / "t.json"), *extra]  # fmt: skip


def test_bad_storage_is_one_line(tmp_path, capsys, monkeypatch):
    cases = [
        ("postgresql://user:secret@127.0.0.1:1/study", "--storage postgresql://user:***@127.0.0.1:1/study"),
        (f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'x.db'}", "cannot open it"),
    ]
    for url, words in cases:
        assert main(_cli_search(tmp_path, "--out", str(tmp_path / "o"), "--storage", url)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err and "secret" not in err, err


def test_a_study_of_another_search_or_format_or_version_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    stub_latency(monkeypatch)
    stub_training(tmp_path / "runs.jsonl", monkeypatch=monkeypatch)
    out = tmp_path / "o"
    search_scaling(ScalingSearch("test_efficientnet", **GRID), out, PROXY, table=_table(tmp_path), **QUIET)
    before = (out / "study.db").read_bytes()
    argv = ["search", "stages", "--base", "test_efficientnetv2", "--res", "32", "--table", str(tmp_path / "t.json")]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is another search" in err and "--study" in err, err
    assert (out / "study.db").read_bytes() == before  # nothing written

    study = _study(out)
    study.set_user_attr("convscale", {"format": 0, "search": {}})
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "study format 0" in err, err

    with sqlite3.connect(out / "study.db") as db:  # as if another Optuna release had written it
        db.execute("UPDATE alembic_version SET version_num = 'v9.9.9.a'")
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--storage" in err and "optuna" in err.lower(), err


def test_the_hypervolume_is_the_area_a_front_dominates():
    from convscale.search.front import hypervolume

    ref = (10.0, 0.0)
    assert hypervolume([(2.0, 50.0)], ref) == pytest.approx(8 * 50)
    # a second point, slower and more accurate, adds its own strip; a dominated one adds nothing
    assert hypervolume([(2.0, 50.0), (6.0, 80.0)], ref) == pytest.approx(4 * 50 + 4 * 80)
    assert hypervolume([(2.0, 50.0), (6.0, 80.0), (7.0, 60.0)], ref) == pytest.approx(4 * 50 + 4 * 80)
    assert hypervolume([(12.0, 90.0), (2.0, -5.0)], ref) == 0.0  # outside the reference: nothing


def test_a_candidate_that_fails_to_train_is_failed_and_the_search_goes_on(tmp_path, monkeypatch):
    stub_latency(monkeypatch)
    log = tmp_path / "runs.jsonl"

    raised = []

    def top1(width, seed, calls):
        if calls == 1 and not raised:  # the second network of the grid, once
            raised.append(True)
            raise RuntimeError("one of the variables needed for gradient computation has been modified")
        return 60.0 + 10 * width

    stub_training(log, top1=top1, monkeypatch=monkeypatch)
    said = []
    summary = search_scaling(ScalingSearch("test_efficientnet", **GRID), tmp_path / "out", PROXY,
                             table=_table(tmp_path), log=said.append)  # fmt: skip
    failed = _study(tmp_path / "out").get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert len(failed) == 1 and "modified" in failed[0].user_attrs["error"]
    assert summary["trials_failed"] == 1 and summary["trials_completed"] == 3
    assert any("failed to train" in line for line in said) and not any("went silent" in line for line in said)
