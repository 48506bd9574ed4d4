"""A run's plan, computed before it trains: its progressive stages, the optimizer steps of each epoch, and the
learning rate at every step. Pure functions of the config, the data size and the number of processes."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from functools import cached_property

from ..methods.progressive import (
    ProgressiveConfig,
    ProgressiveStage,
    format_schedule,
    progressive_schedule,
    regularizer_ranges,
)
from ..runs.settings import TrainConfig, check_accum_steps
from .optimizer import lr_at

__all__ = ["Plan", "ProgressiveStage", "make_plan"]


@dataclass(frozen=True)
class Plan:
    stages: tuple[ProgressiveStage, ...]
    epoch_steps: tuple[int, ...]  # optimizer steps (global batches) in each epoch
    base_steps: int  # steps per epoch at the base batch: the unit of the learning-rate schedule
    warmup: int  # warm-up steps, in base steps
    lr: float
    min_lr: float
    max_steps: int  # stop after this many steps (0: never early)

    def stage_of(self, epoch: int) -> ProgressiveStage:
        return next(st for st in self.stages if st.start_epoch <= epoch < st.end_epoch)

    @cached_property
    def _starts(self) -> tuple[int, ...]:
        return tuple(itertools.accumulate(self.epoch_steps, initial=0))  # the global step at each epoch's start

    def first_step(self, epoch: int) -> int:
        """The global step at which ``epoch`` starts."""
        return self._starts[epoch]

    @property
    def total_steps(self) -> int:
        return self._starts[-1]

    def stops_early_at(self, epoch: int, batch: int) -> bool:
        """Whether ``max_steps`` ends the run once batch ``batch`` of ``epoch`` has been trained."""
        step = self.first_step(epoch) + batch + 1
        return 0 < self.max_steps < self.total_steps and step >= self.max_steps

    def describe(self) -> str:
        """The stages as the table printed before a progressive run."""
        return format_schedule(list(self.stages))

    def lr_at(self, epoch: int, batch: int) -> float:
        """The learning rate of batch ``batch`` of ``epoch``. The schedule runs in steps of the base batch, so that
        warm-up and cosine span the same epochs when the smaller stages take fewer, larger steps (constant_memory)."""
        stage = self.stage_of(epoch)
        position = epoch * self.base_steps + batch * self.base_steps / self.epoch_steps[epoch]
        total = len(self.epoch_steps) * self.base_steps
        return stage.lr_scale * lr_at(position, total, self.lr, self.warmup, self.min_lr)


def _schedule(cfg: TrainConfig, train_res: int) -> list[ProgressiveStage]:
    progressive = ProgressiveConfig(
        stages=cfg.stages,
        image_size=(cfg.size_start or train_res, train_res),
        variant=cfg.progressive_variant,
        multiple=cfg.size_multiple or (32 if cfg.compile else 8),
        constant_memory=cfg.constant_memory,
        **regularizer_ranges(cfg),
    )
    stages = progressive_schedule(progressive, cfg.epochs, cfg.batch_size)
    if cfg.stages == 1 and not cfg.size_start:  # a plain run: exactly the sizes asked for, no rounding
        stages = [dataclasses.replace(st, image_size=train_res) for st in stages]
    return stages


def _epoch_steps(stages: list[ProgressiveStage], images: int, world: int) -> list[int]:
    """Optimizer steps in each epoch (each stage has its own global batch), checked against the data and ranks."""
    steps = []
    for st in stages:
        key = "constant_memory" if st.lr_scale != 1 else "batch_size"
        if st.batch_size % world:
            raise ValueError(f"config key {key!r}: batch {st.batch_size} is not divisible by the {world} processes")
        if st.batch_size > images:
            raise ValueError(f"config key {key!r}: batch {st.batch_size} is larger than the {images} images")
        steps += [images // st.batch_size] * (st.end_epoch - st.start_epoch)
    return steps


def make_plan(cfg: TrainConfig, train_res: int, images: int, world: int) -> Plan:
    """The plan of ``cfg`` at final training size ``train_res`` over ``images`` training images on ``world``
    processes. A batch that cannot be split into ``accum_steps`` slices of 2 images per process is an error here."""
    check_accum_steps(cfg.accum_steps, cfg.batch_size // world)
    stages = _schedule(cfg, train_res)
    base_steps = images // cfg.batch_size
    return Plan(
        stages=tuple(stages),
        epoch_steps=tuple(_epoch_steps(stages, images, world)),
        base_steps=base_steps,
        warmup=round(cfg.warmup_epochs * base_steps),
        lr=cfg.lr,
        min_lr=cfg.min_lr,
        max_steps=cfg.max_steps,
    )
