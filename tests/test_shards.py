"""Tar shards in timm's WebDataset layout: writing them, streaming them (local, HTTP on 127.0.0.1), bad shards and
samples, resume after SIGKILL, and an elastic torchrun restart after a killed rank — each on a few dozen 64-px PNGs."""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import make_image_folder, one_line_error
from convscale.data import build_loader, epoch_order, make_datasets
from convscale.data.shards import INFO, ShardError, read_info
from convscale.data.shards.write import ShardSettings, parse_size, write_shards
from convscale.inference import evaluate
from convscale.runs.checkpoint import read_run_config
from convscale.train import TrainConfig, fit, read_checkpoint

_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
_QUIET = {"log": lambda *_: None}


def _shards(tmp_path: Path, per_class: int = 8, size: str = "20KB", **settings) -> Path:
    data = make_image_folder(tmp_path / "data", per_class=per_class, val_per_class=2, res=64)
    out = tmp_path / "shards"
    write_shards(str(data), out, ShardSettings(parse_size(size), **settings), **_QUIET)
    return out


def _members(shard: Path) -> dict[str, dict[str, bytes]]:
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(shard) as tar:
        for m in tar.getmembers():
            key, ext = m.name.split(".", 1)
            samples.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return samples


def test_shards_hold_every_image_once_with_its_label(tmp_path):
    out = _shards(tmp_path)
    info = json.loads((out / INFO).read_text())
    source = tmp_path / "data"
    for split in ("train", "val"):
        meta = info["splits"][split]
        files = {p.read_bytes(): p.parent.name for p in (source / split).rglob("*.png")}
        seen = []
        for name, length in zip(meta["filenames"], meta["shard_lengths"], strict=True):
            samples = _members(out / name)
            assert len(samples) == length and all(set(s) == {"png", "cls"} for s in samples.values())
            seen += [(s["png"], info["classes"][int(s["cls"])]) for s in samples.values()]
        assert meta["num_samples"] == len(seen) == len(files) == sum(meta["shard_lengths"])
        assert dict(seen) == files and len({img for img, _ in seen}) == len(seen)  # each image once, its label
    assert len(info["splits"]["train"]["filenames"]) > 2  # 20 KB shards: several
    assert info["convscale"]["images"] == "as stored" and info["classes"] == ["circle", "star", "triangle"]
    order = [int(k) for name in info["splits"]["train"]["filenames"] for k in _members(out / name)]
    assert order == list(range(24))  # keys: the positions in the seed's order, written in that order


def test_reencoded_shards_record_their_quality_and_size(tmp_path):
    out = _shards(tmp_path, res=48, quality=80)
    info = json.loads((out / INFO).read_text())
    assert info["convscale"]["images"] == "JPEG quality 80, shorter side at most 48 px"
    from PIL import Image

    sample = next(iter(_members(out / info["splits"]["train"]["filenames"][0]).values()))
    assert set(sample) == {"jpg", "cls"} and Image.open(io.BytesIO(sample["jpg"])).size == (48, 48)


def test_a_rerun_keeps_finished_shards_and_ends_with_the_same_bytes(tmp_path, monkeypatch):
    from convscale.data.shards import write

    clean = _shards(tmp_path / "clean")
    data = tmp_path / "clean" / "data"
    calls = {"n": 0}
    real = write.encode

    def dies_at_the_tenth(*args):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt  # the writer stops mid-split, as a kill would
        return real(*args)

    out = tmp_path / "again"
    monkeypatch.setattr(write, "encode", dies_at_the_tenth)
    with pytest.raises(KeyboardInterrupt):
        write_shards(str(data), out, ShardSettings(parse_size("20KB")), **_QUIET)
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    assert finished and not (out / INFO).exists() and not list(out.glob(".*.tmp"))
    monkeypatch.setattr(write, "encode", real)
    write_shards(str(data), out, ShardSettings(parse_size("20KB")), **_QUIET)
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in finished.items())  # not written again
    for shard in clean.glob("*.tar"):
        assert (out / shard.name).read_bytes() == shard.read_bytes()
    with pytest.raises(ValueError, match="other settings"):
        write_shards(str(data), out, ShardSettings(parse_size("20KB"), seed=1), **_QUIET)


def test_the_cli_writes_shards_and_refuses_a_bad_size(tmp_path, capsys):
    from convscale.cli import main

    data = make_image_folder(tmp_path / "data", per_class=4, val_per_class=1, res=40)
    assert main(["shards", str(data), "--out", str(tmp_path / "s"), "--workers", "0", "--shard-size", "1MB"]) == 0
    assert "train: 12 samples in 1 shards" in capsys.readouterr().out
    assert main(["shards", str(data), "--out", str(tmp_path / "t"), "--shard-size", "big"]) == 2
    one_line_error(capsys, "--shard-size: expected a size such as 256MB")


class _Keyed:
    """The shard dataset, each sample decoded into (its position in the write order, the worker that decoded it)."""

    def __init__(self, ds) -> None:
        self.ds = ds

    def __getitem__(self, sample):
        worker = torch.utils.data.get_worker_info()
        position = int(sample.key.rsplit(":", 1)[1])
        return torch.tensor([position, worker.id if worker else -1]), sample.label


def _as_is(x, rng):
    return x


def test_two_ranks_of_two_workers_read_disjoint_samples_covering_the_split(tmp_path):
    out = _shards(tmp_path, per_class=8, size="12KB")  # 24 training samples in uneven shards
    train = make_datasets(f"wds:{out}")[0]
    assert len(train) == 24 and len(train.split.filenames) > 4
    taken: dict[tuple[int, int], list[int]] = {}
    for epoch in (0, 1):
        for rank in (0, 1):
            order = epoch_order(train, 8, shuffle=True, seed=3, rank=rank, world=2)
            order.set_epoch(epoch)
            for batch in build_loader(_Keyed(train), _as_is, order, workers=2):
                for position, worker in batch.images.tolist():
                    taken.setdefault((epoch, rank), []).append(position)
                    taken.setdefault((epoch, rank, worker), []).append(position)
        ranks = [taken[(epoch, r)] for r in (0, 1)]
        assert sorted(ranks[0] + ranks[1]) == list(range(24))  # disjoint, and together the whole split
        workers = [taken[(epoch, r, w)] for r in (0, 1) for w in (0, 1)]
        assert all(workers) and sorted(p for w in workers for p in w) == list(range(24))  # each decoded by one worker
    assert taken[(0, 0)] != taken[(1, 0)]  # another order each epoch
    again = epoch_order(train, 8, shuffle=True, seed=3, rank=1, world=2)
    again.set_epoch(1, start=2)  # from batch 2: the same samples as the full read's from the 8th on
    assert [s.key for s, _ in again] == [s.key for s, _ in list(_epoch(train, 1))[8:]]


def _epoch(train, epoch):
    order = epoch_order(train, 8, shuffle=True, seed=3, rank=1, world=2)
    order.set_epoch(epoch)
    return iter(order)


@contextlib.contextmanager
def _http(folder: Path, stall: bool = False, flaky: bool = False):
    """An HTTP server on 127.0.0.1 serving ``folder``; ``stall``: each shard's first 2 KB, then silence; ``flaky``:
    the first request of each shard is cut off after half its bytes, the second answered 503."""
    released = threading.Event()
    handler = functools.partial(
        _Handler, directory=str(folder), stall=released if stall else None, flaky={} if flaky else None
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        released.set()
        server.shutdown()
        server.server_close()


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, stall: threading.Event | None = None, flaky: dict | None = None, **kwargs) -> None:
        self.stall, self.flaky = stall, flaky
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        if not self.path.endswith(".tar") or (self.stall is None and self.flaky is None):
            return super().do_GET()
        data = Path(self.directory, self.path.lstrip("/")).read_bytes()
        if self.flaky is not None:
            self.flaky[self.path] = tries = self.flaky.get(self.path, 0) + 1
            if tries == 2:
                return self.send_error(503)
            if tries > 2:
                return super().do_GET()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: 2048 if self.stall else len(data) // 2])
        self.wfile.flush()
        if self.stall:
            self.stall.wait(60)  # the server stops answering mid-shard

    def log_message(self, *args) -> None:
        """Silent: the test's output is its assertions."""


def _tiny(tmp_path: Path, data: str, name: str, **extra) -> TrainConfig:
    base = {"model": "test_convnext", "data": data, "epochs": 1, "batch_size": 8, "train_res": 32, "workers": 0,
            "out": str(tmp_path / "runs"), "name": name, "shuffle_buffer": 16}  # fmt: skip
    return TrainConfig(**{**base, **extra})


def test_shards_over_http_train_and_a_brace_pattern_picks_shards(tmp_path):
    out = _shards(tmp_path)
    with _http(out) as url:
        result = fit(_tiny(tmp_path, f"wds:{url}", "http", workers=2), **_QUIET)
        assert result.metrics["train_images"] == 24 and result.metrics["bad_shards"] == 0
        scored = evaluate(result.run_dir, data=f"wds:{url}", workers=0)  # convscale eval --data wds:URL
        assert scored.count == 6 and scored.top1 == pytest.approx(result.metrics["ema_top1"], abs=1e-3)
        names = read_info(str(out)).splits["train"].filenames
        first, last = names[0].rsplit("-", 1)[1][:-4], names[2].rsplit("-", 1)[1][:-4]
        pattern = f"{url}/{names[0].rsplit('-', 1)[0]}-{{{first}..{last}}}.tar"
        train = make_datasets(f"wds:{pattern}")[0]
        assert train.split.filenames == names[:3] and len(train) == sum(
            read_info(str(out)).splits["train"].shard_lengths[:3]
        )


def test_a_dropped_connection_is_tried_again_from_where_it_broke_off(tmp_path, monkeypatch):
    """Every shard's first answer is cut off mid-body and its second is a 503: the third, from the sample where the
    first broke off, completes it — no bad shard, and the weights of the run from the local folder."""
    from convscale.data.shards import order

    monkeypatch.setattr(order, "RETRY_WAIT_S", 0.0)
    out = _shards(tmp_path)
    local = fit(_tiny(tmp_path, f"wds:{out}", "local"), **_QUIET)
    with _http(out, flaky=True) as url:
        remote = fit(_tiny(tmp_path, f"wds:{url}", "flaky"), **_QUIET)
    assert remote.metrics["bad_shards"] == 0 and remote.metrics["train_images"] == 24
    a, b = (read_checkpoint(r.run_dir / "checkpoints" / "last.safetensors").weights() for r in (local, remote))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_deploy_reads_its_calibration_and_check_images_from_shards(tmp_path):
    from convscale.data import EvalTransform
    from convscale.deploy.bundle import _batches, _Data

    out = _shards(tmp_path)
    d = _Data(EvalTransform(32), ["circle", "star", "triangle"], {}, None)
    batches = list(_batches(f"wds:{out}", d, 4, "train", limit=10))
    assert [tuple(x.shape) for x, _ in batches] == [(4, 3, 32, 32)] * 3 and (batches[-1][1] == -1).sum() == 2
    assert sum(int((y >= 0).sum()) for _, y in _batches(f"wds:{out}", d, 4, "val")) == 6


def test_a_truncated_shard_and_a_corrupt_sample_are_skipped_and_counted(tmp_path):
    out = _shards(tmp_path)
    names = read_info(str(out)).splits["train"].filenames
    cut = out / names[1]
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # breaks off inside its second sample
    bad = out / names[2]
    samples = _members(bad)
    first = next(iter(samples))
    samples[first]["png"] = b"\x89PNG\r\n\x1a\n not an image"
    with tarfile.open(bad, "w") as tar:
        for key, parts in samples.items():
            for ext, data in parts.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    logs: list[str] = []
    result = fit(_tiny(tmp_path, f"wds:{out}", "bad"), log=logs.append)
    m = result.metrics
    assert m["bad_shards"] == 1 and m["skipped"] == 1  # the corrupt sample: once per key, however often read
    assert 22 <= m["train_images"] < 24  # 3 full steps: the lost samples' places taken by reading the range again
    assert any(line.startswith(f"bad shard, its samples skipped: {cut}") for line in logs), logs
    assert f"skipped {bad.name}:{first}: the image does not decode" in logs
    assert (result.run_dir / "skipped.txt").read_text() == f"{bad.name}:{first}: the image does not decode\n"
    with pytest.raises(ShardError, match=r"1 bad shards in epoch 1 \(at most 0: --max-bad-shards\)"):
        fit(_tiny(tmp_path, f"wds:{out}", "strict", max_bad_shards=0), **_QUIET)


@contextlib.contextmanager
def _silent_server():
    """A server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_a_server_that_stops_answering_is_a_clear_error_within_the_timeout(tmp_path, capsys):
    from convscale.cli import main

    with _silent_server() as url:
        start = time.monotonic()
        with pytest.raises(ShardError, match=rf"{url}/_info.json: cannot read|no answer within 1 s"):
            read_info(url, timeout_s=1.0)
        assert time.monotonic() - start < 5
        assert main(["train", "--data", f"wds:{url}", "--shard-timeout-s", "1", "--out", str(tmp_path)]) == 2
        one_line_error(capsys, "no answer within 1 s")
    out = _shards(tmp_path)
    with _http(out, stall=True) as url:  # _info.json answered, then every shard stops after its first 2 KB
        start = time.monotonic()
        with pytest.raises(ShardError, match=r"1 bad shards in epoch 1 .* no answer within 1 s"):
            fit(_tiny(tmp_path, f"wds:{url}", "gone", shard_timeout_s=1.0, max_bad_shards=0), **_QUIET)
        assert time.monotonic() - start < 10


def test_without_webdataset_streaming_says_which_extra(tmp_path, monkeypatch):
    out = _shards(tmp_path)
    monkeypatch.setitem(sys.modules, "webdataset", None)
    with pytest.raises(ImportError, match=r"needs webdataset: pip install 'convscale\[webdataset\]'"):
        fit(_tiny(tmp_path, f"wds:{out}", "none"), **_QUIET)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "convscale.cli", *args]


def _flags(data: Path, out: Path, name: str, **extra) -> list[str]:
    flags = {"model": "test_convnext", "data": f"wds:{data}", "epochs": 2, "batch_size": 8, "train_res": 64,
             "workers": 2, "out": str(out), "name": name, "shuffle_buffer": 16, "drop_rate": 0.2,
             "amp": "none", **extra}  # fmt: skip  # runs compared bit for bit: one precision, not the probe's pick
    return [part for k, v in flags.items() for part in (f"--{k.replace('_', '-')}", str(v))]


def _wait_for_step(ckpt: Path, step: int, proc: subprocess.Popen, deadline_s: float = 180) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and proc.poll() is None:
        if ckpt.exists():
            try:
                state = read_run_config(ckpt)[1]
            except ValueError:
                state = None
            if state is not None and state.step >= step:
                return
        time.sleep(0.005)


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path):
    """A run on shards (two loader workers, a shuffle buffer) killed at a random step of its first epoch and resumed
    from its last checkpoint ends with the weights of a run never interrupted, bit for bit: the shard order, the
    buffer and each sample's augmentation follow from (seed, epoch), and the checkpoint holds the batch."""
    data = _shards(tmp_path, per_class=16)  # 48 samples: 6 steps an epoch
    runs = tmp_path / "runs"
    subprocess.run(_cli("train", *_flags(data, runs, "straight")), check=True, env=_ENV, capture_output=True)
    ckpt = runs / "killed" / "checkpoints" / "last.safetensors"
    proc = subprocess.Popen(_cli("train", *_flags(data, runs, "killed", checkpoint_steps=1)), env=_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    _wait_for_step(ckpt, random.Random().randint(1, 4), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = read_checkpoint(ckpt).state
    assert state.epoch == 0 and 0 < state.batch < 6, f"killed at epoch {state.epoch}, batch {state.batch}"
    subprocess.run(_cli("train", *_flags(data, runs, "killed"), "--resume", str(runs / "killed")), check=True,
                   env=_ENV, capture_output=True)  # fmt: skip
    a, b = (read_checkpoint(runs / n / "checkpoints" / "last.safetensors").weights() for n in ("straight", "killed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [int(e.split(b"=", 1)[1]) for e in env if e.startswith(b"RANK=")]
    return ranks[0] if ranks else None


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the worker processes in /proc (Linux)")
def test_torchrun_restarts_a_killed_rank_and_ends_with_the_uninterrupted_weights(tmp_path):
    """torchrun (2 processes on gloo, ``--max-restarts 1``) with rank 1 SIGKILLed mid-epoch: the agent stops the
    group and starts it again, ``--restartable`` makes every rank resume from the last checkpoint, and the run ends
    with the weights of the same job never interrupted, bit for bit."""
    data = _shards(tmp_path, per_class=16)
    runs = tmp_path / "runs"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "--max-restarts", "1", "-m", "convscale.cli", "train", "--restartable"]  # fmt: skip
    straight = subprocess.run([*torchrun, *_flags(data, runs, "straight")], env=_ENV, capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr[-3000:]
    ckpt = runs / "elastic" / "checkpoints" / "last.safetensors"
    proc = subprocess.Popen([*torchrun, *_flags(data, runs, "elastic", checkpoint_steps=1)], env=_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for_step(ckpt, random.Random().randint(1, 4), proc)
    victim = next(pid for pid in _children(proc.pid) if _rank_of(pid) == 1)
    os.kill(victim, signal.SIGKILL)
    killed_at = read_checkpoint(ckpt).state
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert killed_at.epoch == 0 and 0 < killed_at.batch < 6, f"killed at {killed_at.epoch}, {killed_at.batch}"
    assert "resuming" in stdout + stderr and stdout.count("done:") == 1
    a, b = (read_checkpoint(runs / n / "checkpoints" / "last.safetensors").weights() for n in ("straight", "elastic"))
    assert all(torch.equal(a[k], b[k]) for k in a)
