"""A crash or a hang in a CPU kernel fails a test instead of killing or blocking the suite.

One channels_last training step of every registered family's tiny variants and of every variant's stem and first
block (full width, 64 px), in a child process per family with a timeout (kernel_probe.py), which also checks that no
registered model holds a plain strided 1×1 conv. The case that found it:
oneDNN 3.12's weight gradient of a strided 1×1 conv on few channels, which segfaults or spins on AVX2-only CPUs
(RepVGG's stem); convscale computes such convs as a subsampled stride-1 conv (layers/conv.py).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from convscale.layers.conv import StridedPointwiseConv2d, create_conv2d
from convscale.registry import list_families
from convscale.train import read_checkpoint

PROBE = Path(__file__).with_name("kernel_probe.py")
TIMEOUT_S = 180  # a family takes 5-20 s alone here; a hung kernel spins until killed


@pytest.mark.parametrize("family", list_families())
def test_one_training_step_per_family_neither_crashes_nor_hangs(family):
    try:
        proc = subprocess.run([sys.executable, str(PROBE), family], capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        started = [line for line in (e.stdout or b"").decode().splitlines() if line.startswith("start ")]
        pytest.fail(f"{family}: hung for {TIMEOUT_S} s in {started[-1][6:] if started else 'start-up'}")
    lines = proc.stdout.splitlines()
    started = [line[6:] for line in lines if line.startswith("start ")]
    done = {line[3:] for line in lines if line.startswith("ok ")}
    failed = [case for case in started if case not in done]
    refused = [line for line in lines if line.startswith("fail ")]  # a plain strided 1x1 conv in a model
    assert not refused, refused
    assert proc.returncode == 0, f"{family}: exit {proc.returncode} in {failed or 'start-up'}\n{proc.stderr[-2000:]}"
    assert started and not failed


def test_the_failing_kernel_case_runs_in_a_child(tmp_path):
    """The issue's minimal case through convscale's conv: it must finish where the bare strided conv can crash
    (the bare form is not run: on an AVX2-only CPU it takes the process down)."""
    script = (
        "import torch\n"
        "from convscale.layers.conv import create_conv2d\n"
        "conv = create_conv2d(3, 48, 1, 2).to(memory_format=torch.channels_last)\n"
        "x = torch.randn(16, 3, 224, 224).contiguous(memory_format=torch.channels_last)\n"
        "for _ in range(3):\n"
        "    conv(x).sum().backward()\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


@pytest.mark.parametrize("padding", ["symmetric", "same"])
@pytest.mark.parametrize("size", [7, 8, 31])
def test_strided_pointwise_conv_equals_the_strided_conv(padding, size):
    """Same outputs, gradients and state dict as ``nn.Conv2d(c, o, 1, 2)`` (contiguous input: the kernel that works
    everywhere), odd and even sizes, both padding rules."""
    conv = create_conv2d(4, 6, 1, 2, padding=padding, bias=True)
    assert isinstance(conv, StridedPointwiseConv2d)
    ref = nn.Conv2d(4, 6, 1, 2, bias=True)
    ref.load_state_dict(conv.state_dict())
    assert conv.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(2, 4, size, size, dtype=torch.float64, requires_grad=True)
    conv, ref = conv.double(), ref.double()
    out, expected = conv(x), ref(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, [x, conv.weight, conv.bias], g)
    expected_grads = torch.autograd.grad(expected, [x, ref.weight, ref.bias], g)
    for a, b in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_a_strided_pointwise_conv_without_its_geometry_is_refused():
    with pytest.raises(ValueError, match="strided 1x1"):
        StridedPointwiseConv2d(3, 8, 3, 2)


_STUCK_CHILD = """
import ctypes
import signal
import sys
import convscale.train.loop as loop
from convscale.cli import main

real, calls = loop.train_step, []


def stuck_in_epoch_2(*args, **kwargs):  # epoch 1 has 2 steps; the third never returns to Python
    calls.append(1)
    if len(calls) == 3:
        # a kernel that never returns: native code, GIL released, that no signal interrupts (the signals go to the
        # process's other threads, as they do when a kernel spins on the main thread)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        print("stuck", flush=True)
        ctypes.CDLL(None).sleep(3600)
    return real(*args, **kwargs)


loop.train_step = stuck_in_epoch_2
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_during_a_step_that_never_returns_ends_the_run_and_says_where(tmp_path):
    """Python runs a signal handler only between bytecodes, so a stuck kernel left SIGTERM unheard; the watchdog
    (train/stop.py) ends the process after the grace time, naming the step, and the last checkpoint stays."""
    argv = ["train", "--model", "test_resnet", "--shapes-train", "32", "--shapes-val", "16", "--shapes-res", "32"]
    argv += ["--batch-size", "16", "--workers", "0", "--epochs", "3", "--out", str(tmp_path), "--name", "r"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONVSCALE_STOP_GRACE_S": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _STUCK_CHILD, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for line in proc.stdout:  # the run's log lines, then the child's word
            if line.strip() == "stuck":
                break
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert time.monotonic() - sent < 30
    assert "did not come back from native code within 2 s" in err and "at epoch 2, batch 1 (step 3)" in err, err
    assert f"the last checkpoint stays: {tmp_path / 'r' / 'checkpoints' / 'last.safetensors'}" in err
    assert "Traceback" not in err
    assert read_checkpoint(tmp_path / "r" / "checkpoints" / "last.safetensors").state.epoch == 1


def test_the_watchdog_leaves_a_healthy_stop_to_the_loop(tmp_path):
    """A signal that the main thread handles in time is the loop's clean stop (saved, exit 143), not the watchdog's."""
    argv = ["-m", "convscale", "train", "--model", "test_resnet", "--shapes-train", "32", "--shapes-val", "16"]
    argv += ["--shapes-res", "32", "--batch-size", "16", "--workers", "0", "--epochs", "50", "--out", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONVSCALE_STOP_GRACE_S": "5"}
    proc = subprocess.Popen([sys.executable, *argv, "--name", "r"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "r" / "metrics.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated; saved" in err and "did not come back" not in err, err[-2000:]


def test_a_bad_grace_setting_is_refused(monkeypatch):
    from convscale.train.stop import grace_seconds

    monkeypatch.setenv("CONVSCALE_STOP_GRACE_S", "soon")
    with pytest.raises(ValueError, match="CONVSCALE_STOP_GRACE_S must be a number"):
        grace_seconds()
    monkeypatch.setenv("CONVSCALE_STOP_GRACE_S", "4")
    assert grace_seconds() == 4 and grace_seconds(longest_step_s=2) == 6
