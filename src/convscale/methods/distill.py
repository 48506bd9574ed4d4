"""Knowledge distillation: the three losses as pure functions, and the frozen teacher that feeds them.

- ``kd`` (Hinton et al. 2015): α·CE(student, labels) + (1 − α)·T²·KL(teacher_T ‖ student_T), both softened by T.
- ``hard`` (DeiT, Touvron et al. 2021): α·CE(student, labels) + (1 − α)·CE(student, argmax teacher).
- ``function-matching`` (Beyer et al. 2022, "patient and consistent"): KL(teacher_T ‖ student_T) alone.

In every mode the teacher sees exactly the batch the student sees — augmented, mixed, cut, at the progressive
stage's size — which function matching requires and the other two do no harm by. The teacher is frozen in eval
mode, never in the optimizer, runs without autograd (in bf16 where the device has it) and, when its normalization
differs from the student's, gets the batch renormalized to its own. Its seconds are counted for the epoch's row.
``--teacher SOURCE`` turns it on; ``--distill``, ``--distill-alpha`` and ``--distill-temperature`` choose the loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.checks import choice, number, optional, setting, text
from ..utils.machine import machine
from ..utils.timing import bf16_ok
from .base import Context, Hook, Loss, MethodConfig

if TYPE_CHECKING:
    from ..runs import TrainConfig

__all__ = [
    "MODES",
    "Distill",
    "DistillHook",
    "Teacher",
    "distill_loss",
    "hard_loss",
    "kd_loss",
    "kl_loss",
    "load_teacher",
    "make_loss",
]

MODES = ("kd", "hard", "function-matching")


@dataclass(frozen=True)
class Distill(MethodConfig):
    """``cfg.distill``: the teacher (None: off), the loss and its weight and temperature."""

    teacher: str | None = setting(
        None,
        optional(text),
        "distill from this teacher: a run folder or checkpoint, or MODEL[.TAG] with published weights (frozen, in "
        "eval mode, shown the very batch the student sees)",
        "teacher",
    )
    mode: str | None = setting(
        None,
        optional(choice(*MODES)),
        "distillation loss: kd (alpha CE + (1-alpha) T^2 KL), hard (the teacher's top-1, DeiT), function-matching "
        "(KL only) [kd]",
        "distill",
    )
    alpha: float = setting(0.5, number(0, 1), "kd and hard: the weight of the labels' cross-entropy", "distill_alpha")
    temperature: float | None = setting(
        None,
        optional(number(0.05, 100)),
        "kd and function-matching: softmax temperature [kd 4, function-matching 1]",
        "distill_temperature",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.teacher is None and (self.mode is not None or self.temperature is not None):
            raise ValueError("config key 'distill': distillation needs a teacher (--teacher MODEL[:TAG]|RUN)")
        if self.teacher is not None:  # MODEL[.TAG]: a model with published weights; or a run, a file, a repository
            from ..weights.hub import check

            check(self.teacher, published=True)

    @property
    def loss_mode(self) -> str:
        """The loss: the set one, else kd."""
        return self.mode or "kd"

    @property
    def loss_temperature(self) -> float:
        """The temperature: the set one, else 4 for kd (Hinton) and 1 for function matching (Beyer)."""
        if self.temperature is not None:
            return self.temperature
        return 1.0 if self.loss_mode == "function-matching" else 4.0

    def hook(self, cfg: TrainConfig, ctx: Context) -> Hook | None:
        if self.teacher is None:
            return None
        teacher = load_teacher(self.teacher, ctx.classes, ctx.norm, ctx.device, ctx.resolve)
        return DistillHook(
            teacher, self.teacher, self.loss_mode, alpha=self.alpha, temperature=self.loss_temperature,
            smoothing=cfg.label_smoothing,
        )  # fmt: skip


def _ce(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against class indices or soft targets (mixup's, which carry their own smoothing)."""
    return F.cross_entropy(logits, labels, label_smoothing=smoothing if labels.dim() == 1 else 0.0)


def kl_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher_T ‖ student_T) per image (batch mean), times T² so that its gradient keeps its scale."""
    t = temperature
    log_s = F.log_softmax(student.float() / t, dim=1)
    log_t = F.log_softmax(teacher.float() / t, dim=1)
    return F.kl_div(log_s, log_t, reduction="batchmean", log_target=True) * t * t


def kd_loss(student, teacher, labels, *, alpha: float = 0.5, temperature: float = 4.0, smoothing: float = 0.0):
    """Hinton's KD: α·CE(student, labels) + (1 − α)·T²·KL(teacher_T ‖ student_T)."""
    return alpha * _ce(student.float(), labels, smoothing) + (1 - alpha) * kl_loss(student, teacher, temperature)


def hard_loss(student, teacher, labels, *, alpha: float = 0.5, smoothing: float = 0.0):
    """DeiT's hard distillation: α·CE(student, labels) + (1 − α)·CE(student, the teacher's top-1)."""
    s = student.float()
    return alpha * _ce(s, labels, smoothing) + (1 - alpha) * F.cross_entropy(s, teacher.argmax(1))


def distill_loss(mode: str, student, teacher, labels, *, alpha: float, temperature: float, smoothing: float = 0.0):
    if mode == "kd":
        return kd_loss(student, teacher, labels, alpha=alpha, temperature=temperature, smoothing=smoothing)
    if mode == "hard":
        return hard_loss(student, teacher, labels, alpha=alpha, smoothing=smoothing)
    if mode == "function-matching":
        return kl_loss(student, teacher, temperature)
    raise ValueError(f"distillation mode must be one of {', '.join(MODES)}, got {mode!r}")


class Teacher:
    """A frozen model that answers for a batch in the student's normalization; ``seconds`` accumulates its time."""

    def __init__(
        self,
        model: nn.Module,
        *,
        student_norm: tuple[tuple[float, ...], tuple[float, ...]],
        teacher_norm: tuple[tuple[float, ...], tuple[float, ...]],
        amp: bool = True,
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        device = next(model.parameters()).device
        self.device = device
        (sm, ss), (tm, ts) = student_norm, teacher_norm
        self.renormalize = None
        if (tuple(sm), tuple(ss)) != (tuple(tm), tuple(ts)):  # x·std_s + mean_s is the image; then the teacher's
            view = dict(device=device, dtype=torch.float32)
            scale = torch.tensor(ss, **view) / torch.tensor(ts, **view)
            shift = (torch.tensor(sm, **view) - torch.tensor(tm, **view)) / torch.tensor(ts, **view)
            self.renormalize = (scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1))
        self.amp = amp and _has_bf16(device)
        self.seconds = 0.0

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        x = images if self.renormalize is None else images * self.renormalize[0] + self.renormalize[1]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.model(x).float()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - start
        return logits


def _has_bf16(device: torch.device) -> bool:
    """bf16 where PyTorch runs it (``timing.bf16_ok``) and, on a CPU, natively: emulated bf16 is slower than fp32."""
    return bf16_ok(device) and (device.type != "cpu" or machine().native_bf16)


def make_loss(mode: str, teacher: Teacher, *, alpha: float, temperature: float, smoothing: float = 0.0) -> Loss:
    """The step's loss: the teacher asked about the very images the student sees."""

    def loss(logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return distill_loss(
            mode, logits, teacher(images), labels, alpha=alpha, temperature=temperature, smoothing=smoothing
        )

    return loss


class DistillHook(Hook):
    """Distillation as a training method: its loss around the frozen teacher, and the teacher's seconds in each
    epoch's row."""

    def __init__(self, teacher: Teacher, source: str, mode: str, *, alpha: float, temperature: float, smoothing: float):
        self.teacher, self.source, self.mode = teacher, source, mode
        self.alpha, self.temperature, self.smoothing = alpha, temperature, smoothing

    def describe(self) -> str:
        how = f"alpha {self.alpha:g}" if self.mode != "function-matching" else "KL only"
        how += f", T {self.temperature:g}" if self.mode != "hard" else ""
        precision = "bf16" if self.teacher.amp else "fp32"
        return f"distilling from {self.source} ({self.mode}, {how}; teacher in {precision})"

    def loss(self, loss: Loss | None) -> Loss:
        return make_loss(
            self.mode, self.teacher, alpha=self.alpha, temperature=self.temperature, smoothing=self.smoothing
        )

    def columns(self) -> dict[str, float]:
        seconds, self.teacher.seconds = self.teacher.seconds, 0.0  # the teacher's share of the epoch
        return {"teacher_s": round(seconds, 1)}


def load_teacher(
    source: str,
    classes: Sequence[str],
    student_norm: tuple[Sequence[float], Sequence[float]],
    device: torch.device,
    resolve: Callable[..., Any],
) -> Teacher:
    """The teacher named by ``source`` — a run folder or checkpoint (its EMA when it kept one), or ``MODEL[:TAG]``
    with published weights — on ``device``, read through ``resolve`` (:func:`convscale.resolve`); ValueError when it
    does not predict the data's classes."""
    with torch.random.fork_rng(devices=[]):  # building it must not move the run's random stream (dropout, resume)
        model, norm = _teacher_model(source, classes, resolve)
    return Teacher(model.to(device), student_norm=(tuple(student_norm[0]), tuple(student_norm[1])), teacher_norm=norm)


def _teacher_model(source: str, classes: Sequence[str], resolve: Callable[..., Any]):
    """The teacher's model and normalization, through :func:`convscale.resolve`: a run (its EMA when kept), or a model
    with published weights (``MODEL`` alone: its default tag; ``MODEL:TAG``, the older spelling, is ``MODEL.TAG``)."""
    from ..weights.hub import looks_like_path

    named = not looks_like_path(source) and not Path(source).exists() and not source.startswith("hf-hub:")
    if named and ":" in source:
        source = source.replace(":", ".", 1)
    src = resolve(source, pretrained=True if named and "." not in source else None)
    if src.weights == "random":
        raise ValueError(f"the teacher {source} has no trained weights: give a run, or a model with published weights")
    if src.kind == "run" and list(src.folders or []) != list(classes):
        theirs = src.folders or []
        raise ValueError(
            f"the teacher {source} predicts {len(theirs)} classes ({', '.join(theirs[:3])}, ...), "
            f"not the data's {len(classes)} ({', '.join(classes[:3])}, ...): distill from a teacher trained on "
            "the same classes"
        )
    if src.kind != "run" and len(src.labels) != len(classes):
        raise ValueError(
            f"the teacher {source} predicts {len(src.labels)} classes, the data has {len(classes)}: a "
            "published teacher needs the same label set (fine-tune one on your data first, then pass its run)"
        )
    return src.model, (src.policy.mean, src.policy.std)
