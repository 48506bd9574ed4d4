"""Where the work and the time go: every ATen op of a forward pass, attributed to a layer kind and a stage.

A ``TorchDispatchMode`` sees each op after autograd and composite decomposition (``conv2d`` arrives as
``convolution``, ``linear`` as ``addmm``/``mm``); module hooks keep the stack of modules the op runs in. For each op
it records

- multiply-adds: convolutions and matrix products, the same count as :func:`convscale.counting.count_macs`;
- memory-access cost, ShuffleNetV2's definition (§2, guideline 1) applied to every op: the elements it reads
  (inputs, weights included) plus the elements it writes; views cost nothing, an in-place op reads and writes;
- conv output elements (the "activations" of Radosavovic et al., 2020), a Linear over every position (ConvNeXt's
  channels-last MLP) counting as the 1×1 conv it is;
- its wall time, when timed (synchronised per op on CUDA).

The kind of an op is that of the *outermost* module on the stack that has one, so a squeeze-excite's two 1×1 convs
count as SE, not as 1×1 convs. Ops outside any such module are global pooling (``mean``, ``amax``) or elementwise
work (residual adds, layer scale, channel-shuffle copies). Run on the ``meta`` device the pass costs nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..layers.norm import LayerNorm2d
from ..layers.residual import LayerScale
from ..layers.squeeze_excite import SqueezeExcite

__all__ = ["KINDS", "OpRecord", "layer_kind", "stage_of", "trace_forward"]

#: layer kinds, in the order tables and plots show them
KINDS = (
    "conv",  # dense or grouped k×k convolution
    "depthwise conv",
    "1x1 conv",  # pointwise: a 1×1 convolution, or a Linear applied at every position (ConvNeXt's MLP)
    "norm",
    "activation",
    "se",
    "pooling",
    "linear",  # on pooled features: the classifier and MobileNetV3's hidden head layer
    "elementwise",  # residual adds, layer scale, shuffle copies, padding outside a conv
)

_NORMS = (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, LayerNorm2d)
_ACTS = (
    nn.ReLU,
    nn.ReLU6,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.LeakyReLU,
    nn.ELU,
    nn.Mish,
)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_POOL_OPS = {
    "mean",
    "amax",
    "max_pool2d",
    "max_pool2d_with_indices",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "_adaptive_avg_pool2d",
}
_CONV_OPS = {"conv2d", "convolution", "_convolution"}
_FREE_OPS = {"_unsafe_view", "detach", "alias", "lift_fresh", "empty", "empty_like", "empty_strided", "new_empty"}


def layer_kind(module: nn.Module, x: object = None) -> str | None:
    """The kind of a layer module (one of :data:`KINDS`), or None for containers. ``x`` is its first input: a Linear
    on a 4-D tensor is a pointwise (1×1) convolution in channels-last form."""
    if isinstance(module, SqueezeExcite):
        return "se"
    if isinstance(module, nn.Conv2d):
        if module.groups > 1 and module.groups == module.in_channels:
            return "depthwise conv"
        return "1x1 conv" if module.kernel_size == (1, 1) and module.groups == 1 else "conv"
    if isinstance(module, nn.Linear):
        return "1x1 conv" if isinstance(x, torch.Tensor) and x.dim() > 2 else "linear"
    if isinstance(module, _NORMS):
        return "norm"
    if isinstance(module, _ACTS):
        return "activation"
    if isinstance(module, _POOLS):
        return "pooling"
    if isinstance(module, LayerScale):
        return "elementwise"
    return None


def stage_of(qualified_name: str) -> str:
    """The stage a module belongs to, from its name in the model: ``stages.2.1.conv`` → ``stages.2``."""
    parts = qualified_name.split(".")
    if parts[0] == "stages" and len(parts) > 1:
        return f"stages.{parts[1]}"
    return parts[0] or "(model)"


@dataclass(frozen=True)
class OpRecord:
    """One ATen op of a forward pass. Counts are for the whole batch; ``seconds`` is 0 when not timed."""

    op: str
    kind: str
    stage: str
    macs: int
    elements: int  # read + written: ShuffleNetV2's memory-access cost, in elements
    conv_outputs: int
    seconds: float


def _numel(shape: torch.Size | list[int]) -> int:
    return math.prod(shape)


def _macs(name: str, args: tuple, out: object) -> int:
    if name in _CONV_OPS:
        weight = args[1]  # (C_out, C_in / groups, kH, kW)
        return out.numel() * _numel(weight.shape[1:])
    if name == "linear":
        return out.numel() * args[1].shape[1]  # weight (C_out, C_in)
    if name in ("mm", "addmm", "bmm", "baddbmm", "matmul"):
        return out.numel() * args[-2].shape[-1]
    return 0


class _Tracer(TorchDispatchMode):
    def __init__(self, stack: list[tuple[str, str | None]], timer: Callable[[], float] | None) -> None:
        super().__init__()
        self.stack = stack
        self.timer = timer
        self.records: list[OpRecord] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        start = self.timer() if self.timer else 0.0
        out = func(*args, **kwargs)
        seconds = self.timer() - start if self.timer else 0.0
        name = func.overloadpacket.__name__
        if func.is_view or name in _FREE_OPS or (out is (args[0] if args else None) and not name.endswith("_")):
            return out  # a view, an allocation, or an op that hands back its input (dropout in eval)
        kind = next((k for _, k in self.stack if k is not None), None)
        if kind is None:
            kind = "pooling" if name in _POOL_OPS else "elementwise"
        stage = self.stack[-1][0] if self.stack else "(model)"
        tensors = [t for t in tree_flatten((args, kwargs))[0] + tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        self.records.append(
            OpRecord(
                op=name,
                kind=kind,
                stage=stage,
                macs=_macs(name, args, out),
                elements=sum(t.numel() for t in tensors),
                conv_outputs=out.numel() if name in _CONV_OPS or (name == "linear" and args[0].dim() > 2) else 0,
                seconds=seconds,
            )
        )
        return out


@contextmanager
def _module_stack(model: nn.Module) -> Iterator[list[tuple[str, str | None]]]:
    """Hooks that keep (stage, kind) of every module being run, outermost first."""
    stack: list[tuple[str, str | None]] = []
    handles = []
    for qualified_name, module in model.named_modules():
        stage = stage_of(qualified_name)

        def pre(m, inputs, stage=stage):
            stack.append((stage, layer_kind(m, inputs[0] if inputs else None)))

        def post(m, inputs, output):
            stack.pop()

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    try:
        yield stack
    finally:
        for h in handles:
            h.remove()


def trace_forward(model: nn.Module, x: torch.Tensor, *, timed: bool = False) -> list[OpRecord]:
    """Run ``model(x)`` once without gradients and return its ops; ``timed`` adds each op's wall time."""
    timer = None
    if timed:
        if x.device.type == "cuda":

            def timer() -> float:
                torch.cuda.synchronize(x.device)
                return time.perf_counter()
        else:
            timer = time.perf_counter
    with _module_stack(model) as stack, torch.inference_mode(), _Tracer(stack, timer) as tracer:
        model(x)
    return tracer.records
