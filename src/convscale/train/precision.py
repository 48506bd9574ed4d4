"""The run's precision. ``--amp auto`` (the default) chooses it by measurement before the first epoch; ``--amp none``,
``bf16`` or ``fp16`` force one.

- On a CPU that multiplies bf16 in hardware (AVX-512 BF16 or AMX, :attr:`~convscale.utils.machine.Machine.native_bf16`)
  a short probe times the run's own step — its model (a copy), per-process batch, first stage's size and memory
  format, its optimizer — in fp32 and under bf16 autocast, interleaved, and keeps bf16 only where it is at least
  :data:`MARGIN` faster: within the noise, fp32's exact arithmetic wins. Dense networks gain up to 2x; depthwise ones
  (EfficientNet-B0) can lose.
- On a CPU without it (AVX2 only) bf16 is emulated and many times slower: fp32, with no probe.
- On CUDA: bf16 where the GPU has it, else fp16 with the grad scaler (fp32 when the config refuses fp16, as SAM does).
- Elsewhere (MPS): fp32.

Under autocast only the matrix multiplies and convolutions run in bf16; what needs fp32 stays there: the weights,
their gradients and the optimizer state (so the EMA update and AGC's unit norms are fp32), batch-norm statistics,
and the loss (``steps._upcast`` takes the logits to fp32 first). The probe runs on copies under a forked random
stream, so the run itself starts exactly as it would have; a resumed run keeps the precision it started with (the
run folder's ``config.yaml`` holds the choice, ``precision.json`` the probe's figures).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..utils.machine import machine
from ..utils.timing import bf16_ok, measure

if TYPE_CHECKING:
    from ..runs import TrainConfig
    from .plan import ProgressiveStage

__all__ = ["AUTO", "MARGIN", "Choice", "choose_precision", "probe_speeds", "run_precision"]

AUTO = "auto"
MARGIN = 1.05  # bf16 must be this much faster than fp32 to be chosen
NAMES = {"none": "fp32", "bf16": "bf16", "fp16": "fp16"}


@dataclass(frozen=True)
class Choice:
    """The precision a run trains in (``amp``: none, bf16 or fp16), why, and the probe's images/s by precision."""

    amp: str
    why: str
    img_s: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        measured = ", ".join(f"{NAMES[k]} {v:.1f} img/s" for k, v in self.img_s.items())
        return f"precision {NAMES[self.amp]} ({self.why})" + (f": {measured}" if measured else "")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"machine": machine().to_dict()}


def probe_speeds(
    model: nn.Module,
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    precisions: list[str],
    *,
    batch: int,
    size: int,
    classes: int,
    channels_last: bool,
    device: torch.device,
    seconds: float = 0.5,
) -> dict[str, float]:
    """Images/s of one training step of a copy of ``model`` in each of ``precisions``, timed in interleaved rounds
    (the order reversed every other round; the median of each), on random images of the run's batch and size."""
    from .steps import StepSettings, train_step

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        net = copy.deepcopy(model).train()
        optimizer = make_optimizer(net)
        x = torch.randn(batch, 3, size, size, device=device)
        x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        y = torch.randint(0, classes, (batch,), device=device)
        steps = {p: (lambda p=p: train_step(net, x, y, optimizer, StepSettings(amp=p))) for p in precisions}
        timings = measure(steps, device, warmup=1, min_iters=3, min_time=seconds, max_iters=50)
    return {p: batch / timings[p].median for p in precisions}


def choose_precision(asked: str, device: torch.device, probe: Callable[[list[str]], dict[str, float]],
                     refuses: Callable[[str], bool] = lambda amp: False) -> Choice:  # fmt: skip
    """The run's precision: ``asked`` itself unless it is ``auto`` (see the module's rules); ``probe`` times a list
    of precisions (:func:`probe_speeds` with the run's settings), ``refuses`` says whether the config refuses one."""
    if asked != AUTO:
        return Choice(asked, f"--amp {asked}")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Choice("bf16", "--amp auto: this GPU has bf16")
        if not refuses("fp16"):
            return Choice("fp16", "--amp auto: this GPU has no bf16; fp16 with the grad scaler")
        return Choice("none", "--amp auto: this GPU has no bf16, and the run refuses fp16")
    if device.type != "cpu":
        return Choice("none", f"--amp auto: mixed precision is not used on {device.type}")
    here = machine()
    if not here.native_bf16 or not bf16_ok(device):
        return Choice("none", f"--amp auto: {here.cpu} has no native bf16 (AVX-512 BF16 or AMX); it would be emulated")
    speeds = probe(["none", "bf16"])
    ratio = speeds["bf16"] / speeds["none"]
    if ratio >= MARGIN:
        return Choice("bf16", f"--amp auto: bf16 steps {ratio:.2f}x as fast as fp32 here", speeds)
    why = f"--amp auto: bf16 steps {ratio:.2f}x as fast as fp32 here, under the {MARGIN:.2f}x it must gain"
    return Choice("none", why, speeds)


def run_precision(cfg: TrainConfig, model: nn.Module, stage: ProgressiveStage, classes: int, device, world: int):
    """:func:`choose_precision` for a run: the probe times its model with its optimizer at its first stage's size
    and per-process batch."""
    from .optimizer import create_optimizer

    def probe(precisions: list[str]) -> dict[str, float]:
        return probe_speeds(
            model, lambda net: create_optimizer(net, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum),
            precisions, batch=max(2, stage.batch_size // world), size=stage.image_size, classes=classes,
            channels_last=cfg.channels_last, device=device,
        )  # fmt: skip

    def refuses(amp: str) -> bool:
        try:
            cfg.replace(amp=amp)
        except ValueError:
            return True
        return False

    return choose_precision(cfg.amp, device, probe, refuses)
