"""Shards, servers and signals tried as an attacker and a careless user would (issue 42, cases 1-15): every claim a
file or a server makes is checked, every long read has a deadline, every stop ends the process in bounded time with
one line. Servers run on 127.0.0.1 inside the test, each bounded in what it sends and for how long; a command that
could hang runs in a subprocess with a timeout, so a regression fails instead of hanging the suite."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.server
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from conftest import make_image_folder, one_line_error
from convscale.cli import main
from convscale.data.shards import INFO, ShardError, read_info
from convscale.train import fit, read_checkpoint
from test_shards import _ENV, _QUIET, _cli, _shards, _tiny  # the shard tests' tiny data and run


def _info(out: Path) -> dict:
    return json.loads((out / INFO).read_text())


def _edit_info(out: Path, edit) -> None:
    info = _info(out)
    edit(info)
    (out / INFO).write_text(json.dumps(info))


# --- a server on 127.0.0.1 whose answers the test chooses, path by path -------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        act = self.server.special.get(self.path.lstrip("/"))
        self.server.asked.append(self.path.lstrip("/"))
        if act is None:
            return super().do_GET()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            act(self)

    def log_message(self, *args) -> None:
        """Silent: the test's output is its assertions."""


@contextlib.contextmanager
def _server(folder: Path, **special):
    """Serves ``folder``; a path in ``special`` is answered by its function instead (each stops within its own
    bound, and at once when the test ends)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
    server.daemon_threads = True
    server.special, server.asked, server.released = special, [], threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.released.set()
        server.shutdown()
        server.server_close()


def _trickle(data: bytes, *, headers: bool = False, every_s: float = 0.2, limit_s: float = 20.0):
    """The answer a byte every ``every_s`` (from the status line on with ``headers``), for at most ``limit_s``."""

    def act(h: _Handler) -> None:
        raw = b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data
        if not headers:
            h.wfile.write(raw[: raw.index(b"\r\n\r\n") + 4])
            raw = data
        end = time.monotonic() + limit_s
        for byte in raw:
            if time.monotonic() > end or h.server.released.is_set():
                return
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(every_s)

    return act


def _endless_member(limit_bytes: int = 64 << 20, limit_s: float = 15.0):
    """A tar whose first member declares 1 TiB, its body zeros without end (no Content-Length), up to the limits."""

    def act(h: _Handler) -> None:
        h.send_response(200)
        h.end_headers()
        member = tarfile.TarInfo("00000000.png")
        member.size = 2**40
        h.wfile.write(member.tobuf(format=tarfile.GNU_FORMAT))
        zeros, sent, end = bytes(1 << 20), 0, time.monotonic() + limit_s
        while sent < limit_bytes and time.monotonic() < end and not h.server.released.is_set():
            h.wfile.write(zeros)
            sent += len(zeros)

    return act


def _redirect(to: str):
    def act(h: _Handler) -> None:
        h.send_response(302)
        h.send_header("Location", to)
        h.end_headers()

    return act


# --- 1: a slow server ------------------------------------------------------------------------------------------------


def test_01_a_server_trickling_a_byte_at_a_time_fails_within_a_small_multiple_of_the_timeout(tmp_path, capsys):
    out = _shards(tmp_path)
    names = read_info(str(out)).splits["train"].filenames
    slow = {name: _trickle((out / name).read_bytes()) for name in names}
    with _server(out, **slow) as (url, _):
        start = time.monotonic()
        with pytest.raises(ShardError, match=r"1 bad shards in epoch 1 .*slower than 4096 bytes/s"):
            fit(_tiny(tmp_path, f"wds:{url}", "slow", shard_timeout_s=1.0, max_bad_shards=0), **_QUIET)
        assert time.monotonic() - start < 12  # 1 s timeout: about 2 s to tell a trickle (old: the server's 20 s)
    with _server(out, **{INFO: _trickle((out / INFO).read_bytes(), headers=True)}) as (url, _):
        start = time.monotonic()
        with pytest.raises(ShardError, match=rf"{url}/{INFO}: slower than 4096 bytes/s"):
            read_info(url, timeout_s=1.0)
        assert time.monotonic() - start < 12
        start = time.monotonic()
        assert main(["train", "--data", f"wds:{url}", "--shard-timeout-s", "1", "--out", str(tmp_path / "o")]) == 2
        assert time.monotonic() - start < 12
        one_line_error(capsys, f"{url}/{INFO}: slower than 4096 bytes/s")


def _sigterm_while_reading(tmp_path: Path, out: Path, slow: dict, flags: list[str], grace_s: float = 3.0):
    """``convscale train`` on a server that trickles ``slow``'s paths (a long --shard-timeout-s: only the stop can
    end it), SIGTERM once the server has been asked for one of them: (exit status, seconds to exit, stderr)."""
    env = {**_ENV, "CONVSCALE_STOP_GRACE_S": str(grace_s)}
    with _server(out, **slow) as (url, server):
        args = ["train", "--data", f"wds:{url}", "--shard-timeout-s", "120", "--model", "test_convnext",
                "--train-res", "32", "--batch-size", "8", "--workers", "0", "--epochs", "1",
                "--out", str(tmp_path / "runs"), *flags]  # fmt: skip
        proc = subprocess.Popen(_cli(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not any(p in slow for p in server.asked) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)  # the reader is inside the slow answer
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=grace_s + 30)
        finally:
            proc.kill()
        return proc.returncode, time.monotonic() - sent, err


def test_01_sigterm_ends_a_run_stalled_on_a_slow_server_within_the_grace(tmp_path):
    out = _shards(tmp_path)
    names = read_info(str(out)).splits["train"].filenames
    slow = {name: _trickle((out / name).read_bytes(), limit_s=60) for name in names}
    code, seconds, err = _sigterm_while_reading(tmp_path, out, slow, ["--name", "shard"])
    assert code == 143 and seconds < 5.0, (code, seconds, err[-2000:])  # the grace is 3 s
    lines = [line for line in err.replace("\r", "\n").splitlines() if "convscale:" in line]
    assert len(lines) == 1 and "terminated; saved" in lines[0] and "Traceback" not in err, err[-2000:]
    info = {INFO: _trickle((out / INFO).read_bytes(), headers=True, limit_s=60)}
    code, seconds, err = _sigterm_while_reading(tmp_path, out, info, ["--name", "info"])
    assert code == 143 and seconds < 5.0, (code, seconds, err[-2000:])  # the grace is 3 s
    assert "terminated while starting the run" in err and "Traceback" not in err, err[-2000:]


# --- 2: names in _info.json ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["/etc/passwd", "../../x.tar", "/dev/urandom", "sub/../../x.tar", "link.tar",
                                  "fifo.tar", "http://127.0.0.1:9/x.tar"])  # fmt: skip
def test_02_a_shard_name_outside_the_folder_or_not_a_regular_file_is_refused(tmp_path, name, capsys):
    out = _shards(tmp_path)
    (out / "link.tar").symlink_to("/etc/passwd")
    os.mkfifo(out / "fifo.tar")

    def edit(info):
        info["splits"]["train"]["filenames"][1] = name

    _edit_info(out, edit)
    with pytest.raises(ShardError, match=r"splits\.train\.filenames\[1\]"):
        read_info(str(out))
    assert main(["train", "--data", f"wds:{out}", "--out", str(tmp_path / "runs")]) == 2
    one_line_error(capsys, "filenames[1]")


def test_02_an_info_file_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    out = _shards(tmp_path)
    (out / INFO).unlink()
    os.mkfifo(out / INFO)
    result: list = []

    def read() -> None:
        try:
            read_info(str(out))
        except ShardError as e:
            result.append(str(e))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():  # the old open() blocks until a writer comes: release it, then fail
        open(out / INFO, "w").close()  # a writer opening the fifo lets the blocked reader go on
        pytest.fail("reading a fifo _info.json blocked")
    assert result and "not a regular file" in result[0]


# --- 3: sample counts are claims --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(10**18, "from 0 to 1e+07"), (-5, "from 0 to 1e+07"),
                                                 ("12", "from 0 to 1e+07"), (5000, "can hold at most")])  # fmt: skip
def test_03_a_count_the_shard_cannot_hold_is_refused_before_the_run(tmp_path, value, expected):
    out = _shards(tmp_path)

    def edit(info):
        info["splits"]["train"]["shard_lengths"][0] = value
        info["splits"]["train"].pop("num_samples")

    _edit_info(out, edit)
    with pytest.raises(ShardError, match=rf"splits\.train\.shard_lengths\[0\].*{re.escape(expected)}"):
        read_info(str(out))


def test_03_a_total_other_than_num_samples_is_refused(tmp_path):
    out = _shards(tmp_path)
    _edit_info(out, lambda info: info["splits"]["val"].update(num_samples=10**12))
    with pytest.raises(ShardError, match=r"splits\.val: num_samples 1000000000000 but the shard_lengths add up to 6"):
        read_info(str(out))


def test_03_a_remote_shard_holding_far_fewer_samples_than_claimed_ends_the_epoch_in_one_line(tmp_path):
    """Over HTTP the sizes are not known before reading: a shard claiming 10^6 samples that ends after a few is seen
    to, and the run ends in one line instead of looping over the good shards for 10^5 steps."""
    out = _shards(tmp_path)
    _edit_info(out, lambda info: (info["splits"]["train"]["shard_lengths"].__setitem__(0, 10**6),
                                  info["splits"]["train"].pop("num_samples")))  # fmt: skip
    with _server(out) as (url, _):
        args = ["train", "--data", f"wds:{url}", "--model", "test_convnext", "--train-res", "32", "--batch-size", "8",
                "--workers", "0", "--epochs", "1", "--out", str(tmp_path / "runs"),
                "--shuffle-buffer", "16"]  # fmt: skip
        try:
            done = subprocess.run(_cli(*args), env=_ENV, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("the epoch went on over the shards that exist")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "shards gave" in done.stderr and "_info.json promises it" in done.stderr, done.stderr[-2000:]


# --- 4: a member that declares 1 TiB ---------------------------------------------------------------------------------


def test_04_a_member_declaring_a_terabyte_makes_its_shard_bad_without_reading_it(tmp_path):
    out = _shards(tmp_path)
    first = read_info(str(out)).splits["train"].filenames[0]
    with _server(out, **{first: _endless_member()}) as (url, _):
        logs: list[str] = []
        result = fit(_tiny(tmp_path, f"wds:{url}", "huge", shard_max_member_mb=1), log=logs.append)
    assert result.metrics["bad_shards"] == 1, logs
    line = next(x for x in logs if x.startswith("bad shard"))
    assert f"{first}: member '00000000.png' declares 1099511627776 bytes, above the 1 MiB" in line, line


# --- 5: evaluation says what it did not see --------------------------------------------------------------------------


def test_05_evaluation_says_how_many_images_it_was_meant_to_see_and_saw(tmp_path, capsys):
    out = _shards(tmp_path)
    run = fit(_tiny(tmp_path, f"wds:{out}", "r"), **_QUIET).run_dir
    val = read_info(str(out)).splits["val"]
    gone = val.filenames[0]
    with _server(out, **{gone: lambda h: h.send_error(404)}) as (url, _):
        logs: list[str] = []
        result = fit(_tiny(tmp_path, f"wds:{url}", "short"), log=logs.append)
        assert main(["eval", str(run), "--data", f"wds:{url}", "--workers", "0"]) == 0
    m = result.metrics
    short = val.shard_lengths[0]
    assert (m["val_expected"], m["val_images"], m["val_missing"]) == (6, 6 - short, short)
    assert any(x.startswith(f"warning: validation saw {6 - short} of the 6 images") and gone in x for x in logs)
    captured = capsys.readouterr()
    assert f"({6 - short} of 6 images)" in captured.out
    assert f"warning: evaluated {6 - short} of the 6 images" in captured.err and "HTTP 404" in captured.err


# --- 6: each bad input named ------------------------------------------------------------------------------------------


def test_06_bad_counts_and_too_few_classes_are_named(tmp_path):
    out = _shards(tmp_path)
    _edit_info(out, lambda info: info.update(classes=["only"]))
    with pytest.raises(ShardError, match=r"names 1 class: a classifier needs at least 2"):
        read_info(str(out))
    _edit_info(out, lambda info: info.update(classes=["a", "b", "c"]))
    _edit_info(out, lambda info: info["splits"]["train"]["shard_lengths"].__setitem__(2, -3))
    with pytest.raises(ShardError, match=r"shard_lengths\[2\] \(.*\.tar\) is -3: expected a count of samples"):
        read_info(str(out))


def _relabel(shard: Path, labels: dict[int, bytes | None]) -> list[str]:
    """The shard rewritten with sample i's label text set to ``labels[i]`` (None: its .cls left out); its keys."""
    with tarfile.open(shard) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    keys = list(dict.fromkeys(name.split(".")[0] for name, _ in members))
    with tarfile.open(shard, "w") as tar:
        for name, data in members:
            key, ext = name.split(".", 1)
            i = keys.index(key)
            if ext == "cls" and i in labels:
                if labels[i] is None:
                    continue
                data = labels[i]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return keys


def test_06_bad_labels_are_skipped_each_with_its_reason(tmp_path):
    out = _shards(tmp_path, size="1MB")  # one shard a split
    shard = out / read_info(str(out)).splits["train"].filenames[0]
    keys = _relabel(shard, {0: b"9999", 1: b"-1", 2: b"abc", 3: b""})
    logs: list[str] = []
    result = fit(_tiny(tmp_path, f"wds:{out}", "labels"), log=logs.append)
    assert result.metrics["bad_shards"] == 0 and result.metrics["skipped"] == 4, logs
    said = "\n".join(logs)
    for key, why in zip(keys, ("its label 9999 is outside the classes (expected a class index from 0 to 2)",
                               "its label -1 is outside the classes", "its label 'abc' is not a number",
                               "its label '' is not a number"), strict=False):  # fmt: skip
        assert f"skipped {shard.name}:{key}: {why}" in said, said
    assert "truncated" not in said and "not images" not in said


# --- 7: redirects -----------------------------------------------------------------------------------------------------


def test_07_a_redirect_to_ftp_is_not_followed(tmp_path):
    out = _shards(tmp_path)
    with _server(out, **{INFO: _redirect("ftp://127.0.0.1:9/_info.json")}) as (url, _):
        with pytest.raises(ShardError, match=r"redirected to ftp://127\.0\.0\.1:9/_info\.json: only http and https"):
            read_info(url, timeout_s=2.0)
    with _server(out) as (target, _), _server(out, **{INFO: _redirect(f"{target}/{INFO}")}) as (url, _):
        assert read_info(url).classes == ("circle", "star", "triangle")  # http(s) is followed as before


# --- 8-9: signals in search, shards and deploy ------------------------------------------------------------------------


def _stop_when(proc: subprocess.Popen, ready, sig=signal.SIGTERM, deadline_s: float = 180) -> tuple[int, str]:
    deadline = time.monotonic() + deadline_s
    while not ready() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, err


def _one_line(err: str, fragment: str) -> None:
    assert "Traceback" not in err and "Error" not in err, err[-3000:]
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    lines = [line for line in lines if not re.match(r"epoch \d+:", line)]  # the progress bar, redrawn in place
    assert len(lines) == 1 and fragment in lines[0], err[-3000:]


def test_08_sigterm_during_a_search_is_one_line_and_the_rerun_continues_the_proxy_run(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=24, val_per_class=2, res=32)
    out = tmp_path / "search"
    args = ["search", "scaling", "--base", "test_efficientnet", "--res", "32", "--target", "2", "--step", "0.25",
            "--tolerance", "0.15", "--phi", "1", "--max-candidates", "1", "--proxy-epochs", "2", "--proxy-batch", "8",
            "--data", str(data), "--table", str(tmp_path / "table.json"), "--out", str(out)]  # fmt: skip
    ckpt = out / "runs" / "base.seed0" / "checkpoints" / "last.safetensors"
    proc = subprocess.Popen(_cli(*args), env=_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    code, err = _stop_when(proc, ckpt.exists)
    assert code == 143, err[-3000:]
    _one_line(err, "terminated; run the same command again to continue the search in")
    stopped_at = read_checkpoint(ckpt).state
    again = subprocess.run(_cli(*args), env=_ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert not (out / "runs" / "base.seed0-2").exists()  # the interrupted proxy run was continued, not started again
    state = read_checkpoint(ckpt).state
    assert state.epoch == 2 and state.step > stopped_at.step


def test_09_sigterm_during_shards_and_deploy_is_one_line_and_143(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=60, val_per_class=2, res=64)
    shards = tmp_path / "shards"
    args = ["shards", str(data), "--out", str(shards), "--shard-size", "20KB", "--workers", "2"]
    proc = subprocess.Popen(_cli(*args), env=_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    code, err = _stop_when(proc, lambda: len(list(shards.glob("*.tar"))) >= 2)
    assert code == 143, err[-3000:]
    _one_line(err, "convscale: terminated")
    run = fit(_tiny(tmp_path, str(data), "run", epochs=1, max_steps=2), **_QUIET).run_dir
    args = ["deploy", str(run), "--out", str(tmp_path / "dep"), "--runtimes", "eager,compile", "--res", "32",
            "--min-time", "60"]  # fmt: skip  # still timing when the signal comes
    proc = subprocess.Popen(_cli(*args), env=_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    code, err = _stop_when(proc, lambda: time.monotonic() - started > 4)
    assert code == 143, err[-3000:]
    _one_line(err, "convscale: terminated")


# --- 10-11: the same command again, another world size ---------------------------------------------------------------


def test_10_a_finished_run_run_again_is_already_complete(tmp_path, capsys):
    data = make_image_folder(tmp_path / "data", per_class=8, val_per_class=2, res=32)
    flags = ["--data", str(data), "--model", "test_resnet", "--train-res", "32", "--batch-size", "8", "--epochs", "1",
             "--workers", "0", "--out", str(tmp_path / "runs"), "--name", "r"]  # fmt: skip
    assert main(["train", "--restartable", *flags]) == 0
    before = (tmp_path / "runs" / "r" / "checkpoints" / "last.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["train", "--restartable", *flags]) == 0
    assert "already complete (1 epochs)" in capsys.readouterr().out
    assert main(["train", "--resume", str(tmp_path / "runs" / "r")]) == 0
    assert "already complete" in capsys.readouterr().out
    assert (tmp_path / "runs" / "r" / "checkpoints" / "last.safetensors").read_bytes() == before


def test_11_a_run_continued_with_another_number_of_processes_is_refused(tmp_path, capsys, monkeypatch):
    from safetensors.torch import load_file, save_file

    out = _shards(tmp_path)
    result = fit(_tiny(tmp_path, f"wds:{out}", "w", epochs=2, max_steps=1), **_QUIET)
    ckpt = result.run_dir / "checkpoints" / "last.safetensors"
    world = read_checkpoint(ckpt).meta.get("world")
    from safetensors import safe_open

    with safe_open(str(ckpt), "pt") as f:
        meta = json.loads(f.metadata()["convscale"])
    meta["world"] = 2  # as a 2-process run writes it
    save_file(load_file(str(ckpt)), str(ckpt), metadata={"convscale": json.dumps(meta)})
    assert main(["train", "--resume", str(result.run_dir)]) == 2
    one_line_error(capsys, "trained by 2 processes and would continue with 1", "resume with 2")
    assert world == 1  # recorded by every run


# --- 12-13: deploy's folder ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run")
    data = make_image_folder(root / "data", per_class=4, val_per_class=2, res=32)
    return fit(_tiny(root, str(data), "run", epochs=1, max_steps=1), **_QUIET).run_dir


def test_12_a_folder_being_deployed_into_is_refused_to_a_second_deploy(tiny_run, tmp_path, capsys):
    folder = tmp_path / "dep"
    folder.mkdir()
    fd = os.open(folder, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what a running deploy holds
    try:
        args = ["deploy", str(tiny_run), "--out", str(folder), "--runtimes", "eager", "--min-time", "0.05"]
        assert main(args) == 2
        one_line_error(capsys, "is being written by another convscale deploy right now")
        assert list(folder.iterdir()) == []
    finally:
        os.close(fd)
    assert main(args) == 0 and (folder / "deploy.json").is_file()


#: where a full disk shows without a small disk to fill: a flush to disk refused (ENOSPC), OpenVINO's own error
_FULL_DISK = {
    "onnxruntime": ("os.fsync", OSError(28, "No space left on device")),
    "openvino": ("openvino.save_model", RuntimeError("basic_ios::clear: iostream error")),
}


@contextlib.contextmanager
def _small_disk(path: Path, size: str, runtime: str, monkeypatch):
    """A folder on a tmpfs of ``size`` (a real full disk); where mounting is refused (not root), the folder on this
    disk with the runtime's writer failing as it does on a full disk and the disk reporting no free space."""
    path.mkdir()
    try:
        command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
        mounted = subprocess.run(command, capture_output=True).returncode == 0
    except FileNotFoundError:
        mounted = False
    if not mounted:
        import shutil

        import convscale.utils.atomic as atomic

        target, error = _FULL_DISK[runtime]

        def full(*args, **kwargs):
            raise error

        monkeypatch.setattr(target, full)
        usage = shutil.disk_usage(path)
        monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _: usage._replace(free=0))
        yield path
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_13_a_full_disk_during_deploy_is_named(tiny_run, tmp_path, capsys, runtime, monkeypatch):
    pytest.importorskip("onnxruntime" if runtime == "onnxruntime" else "openvino")
    with _small_disk(tmp_path / "disk", "48k", runtime, monkeypatch) as disk:
        args = ["deploy", str(tiny_run), "--out", str(disk / "dep"), "--runtimes", runtime, "--min-time", "0.05"]
        assert main(args) == 2
        one_line_error(capsys, "no space left on the disk holding", str(disk / "dep"))


# --- 14-15: what outlives the command -------------------------------------------------------------------------------

_BLOCKED_LOADER = """
import sys, time
from convscale.data import build_loader
from convscale.data.loader import EpochOrder

class Slow:
    def __getitem__(self, i):
        time.sleep(120)  # a worker busy for minutes (a huge image, a hung file system)
    def __len__(self):
        return 8

loader = build_loader(Slow(), lambda img, rng: img, EpochOrder(8, 4, shuffle=False), workers=2)
print("started", flush=True)
next(iter(loader))
"""


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has ended


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker processes in /proc (Linux)")
def test_14_loader_workers_die_with_a_sigkilled_parent(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _BLOCKED_LOADER], env=_ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        children: list[int] = []
        deadline = time.monotonic() + 60
        while len(children) < 2 and time.monotonic() < deadline:
            path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            children = [int(p) for p in path.read_text().split()] if path.exists() else []
            time.sleep(0.1)
        time.sleep(1.0)  # the workers are inside __getitem__
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p in children if _alive(p)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert len(children) == 2 and not left, f"workers {left} outlived their parent"
    finally:
        proc.kill()


def test_15_openvino_writes_no_telemetry_outside_the_output(tmp_path):
    pytest.importorskip("openvino")
    home = tmp_path / "home"
    home.mkdir()
    script = (
        "import torch\nfrom convscale.utils.extras import require\n"
        "ov = require('openvino', 'a test')\nrequire('nncf', 'a test')\n"
        "ov.convert_model(torch.nn.Conv2d(3, 4, 3).eval(), example_input=torch.randn(1, 3, 8, 8))\n"
    )
    env = {k: v for k, v in _ENV.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")} | {"HOME": str(home)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True, timeout=300)
    assert list(home.iterdir()) == []
