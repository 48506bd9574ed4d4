"""What this machine is, for every figure measured on it: the CPU's name, the instruction sets that decide which
precision is fast (AVX2, AVX-512, VNNI, bf16, AMX), the thread count, and the versions of the libraries a runtime
comes from. Read once from ``/proc/cpuinfo`` where there is one; elsewhere the CPU is named by ``platform``."""

from __future__ import annotations

import contextlib
import functools
import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

__all__ = ["ISA", "Machine", "machine", "versions"]

#: the instruction sets that matter for inference, as the kernel names them in /proc/cpuinfo
ISA = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


@dataclass(frozen=True)
class Machine:
    cpu: str
    isa: tuple[str, ...]  # the ones of :data:`ISA` this CPU has
    threads: int  # torch's intra-op threads

    @property
    def native_bf16(self) -> bool:
        """bf16 multiplied in hardware (AVX-512 BF16 or AMX); elsewhere it is emulated and slower than fp32."""
        return "avx512_bf16" in self.isa or "amx_bf16" in self.isa

    @property
    def vnni(self) -> bool:
        """An int8 dot product instruction (AVX-512 VNNI, AVX-VNNI or AMX): int8 does twice bf16's multiply-adds."""
        return any(f in self.isa for f in ("avx512_vnni", "avx_vnni", "amx_int8"))

    def describe(self) -> str:
        return f"{self.cpu}; {self.threads} threads; {' '.join(self.isa) or 'no AVX2'}"

    def to_dict(self) -> dict:
        return {"cpu": self.cpu, "isa": list(self.isa), "threads": self.threads}


@functools.cache
def _cpuinfo() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/cpuinfo").read_text()
    return ""


def machine() -> Machine:
    text = _cpuinfo()
    cpu = next(iter(re.findall(r"model name\s*:\s*(.+)", text)), "") or platform.processor() or platform.machine()
    flags = set(next(iter(re.findall(r"^flags\s*:\s*(.+)$", text, re.M)), "").split())
    return Machine(cpu.strip(), tuple(f for f in ISA if f in flags), torch.get_num_threads())


def versions(*packages: str) -> dict[str, str]:
    """Each package's installed version, or "absent"."""
    found = {}
    for name in ("torch", *packages):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found
