"""The roofline a deployed form is measured against: this CPU's dense multiply-add rate in each precision it runs
natively — fp32, bf16 (AVX-512 BF16 or AMX only; emulated bf16 has no peak worth the name) and int8 — as the best
of a square matmul and a 3×3 convolution (channels-last, the layout the runtimes use) in that precision. A
candidate's achieved rate (its model's multiply-adds per second) over its precision's peak says how much room the
form leaves: near 1, only a cheaper precision moves it."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..utils.machine import machine
from ..utils.timing import fastest_rate

__all__ = ["matmul_peak", "peak_of", "peaks"]

_CPU = torch.device("cpu")


def peaks(seconds: float = 0.3) -> dict[str, float]:
    """Multiply-adds per second for each precision this CPU runs natively: ``{"fp32": …, "bf16": …, "int8": …}``."""
    out = {"fp32": fastest_rate(_fp32_kernels(), _CPU, seconds)}
    if machine().native_bf16:
        out["bf16"] = fastest_rate(_bf16_kernels(), _CPU, seconds)
    int8 = _int8_kernels()
    if int8:
        out["int8"] = fastest_rate(int8, _CPU, seconds)
    return out


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 0.3) -> float:
    """Multiply-adds per second of a square matmul in ``dtype`` on ``device`` (any device): the reference
    ``convscale bench`` gives each model's achieved rate."""
    n = 1024 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    return fastest_rate([(lambda: a @ b, n**3)], device, seconds)


def peak_of(precision: str, found: dict[str, float]) -> float | None:
    """The peak a form of ``precision`` (fp32, bf16, int8 or int8+bf16) is measured against: int8's for int8 forms."""
    return found.get(precision.split("+")[0])


_N = 1024  # the matmul's size
_CONV = (16, 256, 28)  # batch, channels, size of the 3x3 convolution: a ResNet-50 stage-2 layer


def _conv_macs() -> int:
    b, c, s = _CONV
    return b * c * c * 9 * s * s


def _fp32_kernels() -> list[tuple[Callable[[], object], int]]:
    a = torch.randn(_N, _N)
    b, c, s = _CONV
    x = torch.randn(b, c, s, s).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, 3, 3).contiguous(memory_format=torch.channels_last)
    return [(lambda: a @ a, _N**3), (lambda: F.conv2d(x, w, padding=1), _conv_macs())]


def _bf16_kernels() -> list[tuple[Callable[[], object], int]]:
    return [(lambda f=f: _bf16(f), macs) for f, macs in _fp32_kernels()]


def _bf16(fn: Callable[[], object]) -> object:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return fn()


def _int8_kernels() -> list[tuple[Callable[[], object], int]]:
    """``torch._int_mm`` (int8 × int8 → int32) and a quantized 3×3 convolution on oneDNN, where they exist."""
    kernels = []
    a = torch.randint(-128, 127, (_N, _N), dtype=torch.int8)
    with contextlib.suppress(RuntimeError, AttributeError):  # a build without the int8 matmul: the conv alone
        torch._int_mm(a, a)
        kernels.append((lambda: torch._int_mm(a, a), _N**3))
    conv = _quantized_conv()
    if conv is not None:
        kernels.append((conv, _conv_macs()))
    return kernels


def _quantized_conv() -> Callable[[], object] | None:
    if "onednn" not in torch.backends.quantized.supported_engines:
        return None
    b, c, s = _CONV
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = "onednn"
    try:
        with warnings.catch_warnings():  # quantized tensors are deprecated for torchao's; oneDNN's kernel stays
            warnings.simplefilter("ignore")
            conv = torch.ao.nn.quantized.Conv2d(c, c, 3, padding=1)
            x = torch.quantize_per_tensor(torch.rand(b, c, s, s), 1 / 255, 0, torch.quint8)
        x = x.contiguous(memory_format=torch.channels_last)
        conv(x)
    except RuntimeError:
        return None
    finally:
        torch.backends.quantized.engine = previous

    def run() -> object:
        torch.backends.quantized.engine = "onednn"
        try:
            return conv(x)
        finally:
            torch.backends.quantized.engine = previous

    return run
