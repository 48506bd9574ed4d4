"""The training process keeps freed memory for its next step (``utils/allocator.py``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from convscale.utils.allocator import ENV, keep_freed_memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")

PROBE = """
from convscale.utils.allocator import keep_freed_memory
set_ = keep_freed_memory()
page = __import__("os").sysconf("SC_PAGE_SIZE")
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * page
block = bytearray(256 << 20)  # written through: every page taken
held = rss()
del block
print(set_, (held - rss()) >> 20)
"""


def _given_back(env_value: str) -> tuple[bool, int]:
    """(thresholds set, MiB given back to the system when a 256 MiB block is freed) in a fresh process."""
    env = {**os.environ, ENV: env_value}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    set_, mib = out.stdout.split()
    return set_ == "True", int(mib)


def test_a_freed_block_stays_in_the_process_and_the_env_variable_leaves_malloc_alone():
    kept, given_back = _given_back("1")
    assert kept and given_back < 16  # the block stays for reuse
    untouched, given_back = _given_back("0")
    assert not untouched and given_back > 200  # glibc's default: a block this large is unmapped when freed


def test_opting_out_in_this_process(monkeypatch):
    monkeypatch.setenv(ENV, "0")
    assert keep_freed_memory() is False
