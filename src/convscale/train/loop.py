"""``fit``: the training run, in three blocks — :func:`prepare` (data, model, optimizer, resume), then for each epoch
:func:`train_epoch` and :func:`end_epoch` (validate, log, checkpoint). The pieces it calls are each tested alone:
the plan (``plan.py``), the batch augmentation (``augment.pipeline``), ``train_step`` and ``evaluate``
(``steps.py``), the run folder and evaluation policy (:mod:`convscale.runs`); what the run is made of is built in
``build.py``, and the training methods (:mod:`convscale.methods`) join at the named places of their hooks: this
module names none of them."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..augment import AugmentSettings, BatchShare, augment_batch
from ..data import SHARDS, EpochOrder, TrainTransform, build_loader, epoch_order, make_datasets
from ..data.folder import skip_reason
from ..data.transforms import EvalPolicy, to_uint8
from ..runs import Checkpoint, RunFolder, TrainConfig, TrainState, eval_policy, read_checkpoint, resume_config
from ..utils.allocator import ENV as ALLOCATOR_ENV
from ..utils.allocator import keep_freed_memory
from ..utils.atomic import atomic_write_text
from ..utils.stopping import Stopped, StopRequested
from ..weights.files import RUN_CHECKPOINT
from . import plots
from .build import Hook, build_methods, build_model, build_optimizer, build_step
from .distributed import Dist, all_sum, broadcast_str, launched_world, setup, teardown
from .plan import Plan, ProgressiveStage, make_plan
from .precision import NAMES as PRECISION_NAMES
from .precision import Choice, run_precision
from .steps import EvalTotals, StepResult, StepSettings, evaluate, train_step
from .stop import StopFlag

__all__ = ["FitResult", "Trainer", "TrainingStopped", "end_epoch", "fit", "prepare", "train_epoch"]

Log = Callable[[str], Any]


class TrainingStopped(Stopped):
    """The run stopped before its end (too many non-finite steps, or an interrupt); the last checkpoint is whole."""

    def __init__(self, message: str, run_dir: Path | None = None, exit_code: int = 1) -> None:
        super().__init__(message, exit_code)
        self.run_dir = run_dir


@dataclass(frozen=True)
class FitResult:
    run_dir: Path
    metrics: dict[str, Any]  # the last epoch's row of metrics.csv


@dataclass
class Trainer:
    """What :func:`prepare` builds: everything an epoch needs."""

    cfg: TrainConfig
    dist: Dist
    folder: RunFolder
    train_ds: Any
    val_ds: Any
    classes: list[str]
    policy: EvalPolicy
    plan: Plan
    model: nn.Module
    runner: nn.Module  # the model as trained: DDP-wrapped and/or compiled
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    hooks: list[Hook]
    state: TrainState
    log: Log
    crop_scale: float  # smallest area of the random-resized crop
    crop_on_device: bool  # images held in memory reach the device whole and are cropped there; files: the loader
    step: StepSettings = field(default_factory=StepSettings)  # how each step is taken (the methods' loss, SAM)
    skipped: set[int] = field(default_factory=set)  # training files that did not decode, reported once each
    epoch_skipped: set[int] = field(default_factory=set)  # those of this epoch (its metrics row counts them)
    nonfinite_run: int = 0  # consecutive non-finite steps
    clock: float = field(default_factory=time.monotonic)  # start of the time not yet in state.elapsed_s
    board: Any = None
    compiled: set[tuple[int, int]] = field(default_factory=set)  # (size, batch) shapes whose first step was logged
    loaders: dict[tuple, tuple[DataLoader, EpochOrder]] = field(default_factory=dict)  # see _kept_loader
    precision: Choice | None = None  # how the run's precision was chosen


def fit(
    cfg: TrainConfig | None = None,
    *,
    resume: str | Path | None = None,
    changes: dict[str, Any] | None = None,
    log: Log = print,
    restart: bool = False,
    after_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``cfg``. ``resume``: a run folder (or its checkpoint) to continue exactly where it stopped, with the
    run's own config; ``cfg`` or ``changes`` (the flags given) may change only what :data:`~.config.RESUMABLE`
    lists, and anything else is refused before the folder is touched. ``restart``: the same call may come again
    after a failure (``torchrun --max-restarts``, a requeued Slurm job): the run folder is ``cfg``'s ``out/name``,
    continued from its checkpoint when it has one, else started there. ``after_epoch``: called with each epoch's
    metrics row once its checkpoint is saved; an exception it raises ends the run there (a search's pruner)."""
    if restart:
        if cfg is None or resume is not None:
            raise ValueError("restart takes a config (its out/name is the run folder), not a folder to resume")
        if (Path(cfg.out) / cfg.run_name / RUN_CHECKPOINT).is_file():
            resume = Path(cfg.out) / cfg.run_name
    ckpt = None
    if resume is not None:
        folder = RunFolder.of(resume)
        ckpt = read_checkpoint(folder.checkpoint)
        cfg = resume_config(ckpt.config_obj, cfg, **(changes or {}))
        if ckpt.state.epoch == cfg.epochs and ckpt.state.batch == 0:  # the same command after the run ended
            log(
                f"{folder.path} is already complete ({cfg.epochs} epochs): nothing to do; --epochs above {cfg.epochs} "
                "trains it further"
            )
            return FitResult(folder.path, ckpt.state.history[-1] if ckpt.state.history else {})
        _check_resumable(cfg, ckpt.state)
        _check_world(ckpt, launched_world())
    cfg = cfg or TrainConfig()
    d = setup(cfg.device)
    finished = False
    with StopFlag() as stop:  # also over the teardown: a signal after the last checkpoint lets the run end
        try:
            try:
                t = prepare(cfg, d, ckpt, resume, log if d.main else (lambda *_: None), restart)
            except StopRequested as e:
                raise TrainingStopped(
                    f"{e.word} while starting the run; nothing was trained", None, e.exit_code
                ) from None
            stop.where, stop.at_steps = (lambda: _position(t)), True
            _epochs(t, stop, after_epoch)
            finished = True
            return FitResult(t.folder.path, t.state.history[-1] if t.state.history else {})
        finally:
            teardown(finished)


def _epochs(t: Trainer, stop: StopFlag, after_epoch: Callable[[dict[str, Any]], None] | None = None) -> None:
    """The epochs left. A stop that came while the loop waited for data (a shard behind a slow server) saves the run
    where its last step left it, as a stop between steps does."""
    try:
        while t.state.epoch < t.cfg.epochs:
            stage = t.plan.stage_of(t.state.epoch)
            for hook in t.hooks:
                hook.on_stage(stage)
            if not train_epoch(t, stage, stop):
                break  # max_steps reached inside the epoch
            end_epoch(t, stage)
            if after_epoch is not None:
                after_epoch(t.state.history[-1])
    except StopRequested as e:
        _save(t)
        raise _stopped(t, e.word, e.exit_code) from None


def _stopped(t: Trainer, word: str, code: int) -> TrainingStopped:
    return TrainingStopped(
        f"{word}; saved {t.folder.checkpoint}; continue with --resume {t.folder.path}", t.folder.path, code
    )


def _position(t: Trainer) -> str:
    """Where the run is, for a message written when it cannot save: the step, and the checkpoint that stays."""
    s = t.state
    kept = f"the last checkpoint stays: {t.folder.checkpoint}" if t.folder.checkpoint.is_file() else "no checkpoint yet"
    return f"at epoch {s.epoch + 1}, batch {s.batch + 1} (step {s.step + 1}); {kept}"


def _check_resumable(cfg: TrainConfig, state: TrainState) -> None:
    done = state.epoch + (state.batch > 0)
    if cfg.epochs < done or (cfg.epochs == state.epoch and state.batch == 0):
        raise ValueError(
            f"config key 'epochs': the run has trained {state.epoch} epochs"
            + (f" and {state.batch} batches of the next" if state.batch else "")
            + f"; resuming needs --epochs above {max(state.epoch, done - 1)}, got {cfg.epochs}"
        )


def _check_world(ckpt: Checkpoint, world: int) -> None:
    """A run continues with the number of processes it was trained with: each rank's share of a batch, its batch-norm
    statistics and the shard ranges follow from it, so another number would give other weights, silently."""
    trained = ckpt.meta.get("world")  # None: written before convscale recorded it
    if isinstance(trained, int) and trained != world:
        raise ValueError(
            f"the run was trained by {trained} process{'es' if trained > 1 else ''} and would continue with {world}: "
            f"its batches would be split otherwise and its weights differ from an uninterrupted run's; resume with "
            f"{trained} (torchrun --nproc-per-node / --nnodes), or start a new run"
        )


def _fetch_named(data: str, d: Dist) -> None:
    """A dataset by name is downloaded once per machine (by its local rank 0) while the other processes wait."""
    from ..data.catalog import fetch, is_named

    if not is_named(data) or d.world == 1:
        return
    if d.local_main:
        fetch(data)
    all_sum([0.0], d)  # a barrier: every rank sees the extracted folder before it lists it


def _data(cfg: TrainConfig, d: Dist, ckpt: Checkpoint | None):
    _fetch_named(cfg.data, d)
    train_ds, val_ds, classes, native = make_datasets(
        cfg.data,
        seed=cfg.seed,
        shapes_train=cfg.shapes_train,
        shapes_val=cfg.shapes_val,
        shapes_res=cfg.shapes_res,
        workers=cfg.workers,
        shards=cfg.shard_options,
    )
    if ckpt is not None and ckpt.classes != classes:
        raise ValueError(f"the checkpoint was trained on other classes ({len(ckpt.classes)}) than --data has")
    if hasattr(train_ds, "check_readable"):  # files: enough of them must open as images, before any training
        train_ds.check_readable(max(2, d.world), "training")
        val_ds.check_readable(1, "validation")
        if not cfg.allow_empty_classes:
            train_ds.check_classes()
    return train_ds, val_ds, classes, native


def _cached(cfg: TrainConfig, d: Dist, train_res: int, splits: tuple, log: Log) -> list:
    """The splits read from their decoded-image caches, built (or brought up to date) first by each machine's local
    rank 0 while the other processes wait; every rank then checks the cache against the files it lists."""
    from ..data.cache import CachedImages, build_cache, cache_folder

    if cfg.data.startswith(SHARDS):
        raise ValueError(
            "config key 'cache_res': shards are streamed, not cached; write them at the size you train from "
            "(convscale shards --res N) instead"
        )
    if cfg.cache_res < train_res:
        raise ValueError(
            f"config key 'cache_res': {cfg.cache_res} px is below the training size {train_res}; every crop would be "
            f"upscaled (use at least {train_res})"
        )
    folders = [cache_folder(ds.root, cfg.cache_res, cfg.cache_dir) for ds in splits]
    if d.local_main:
        for ds, folder in zip(splits, folders, strict=True):
            built = build_cache(ds, cfg.cache_res, folder, workers=cfg.workers, progress=d.main)
            if d.main:
                log(built.describe())
    all_sum([0.0], d)  # a barrier: no rank reads a cache before its node's build is complete
    return [CachedImages(ds, folder, cfg.cache_res) for ds, folder in zip(splits, folders, strict=True)]


def _runner(cfg: TrainConfig, d: Dist, model: nn.Module) -> nn.Module:
    runner: nn.Module = model
    if d.world > 1:
        ids = [d.device.index] if d.device.type == "cuda" else None
        runner = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return torch.compile(runner) if cfg.compile else runner


def _folder(cfg: TrainConfig, d: Dist, resume: str | Path | None, restart: bool = False) -> RunFolder:
    """The run's folder: the resumed one, ``out/name`` itself for a restartable run, or a new one taken by rank 0
    and told to the others."""
    if resume is not None:
        folder = RunFolder.of(resume)
        if d.main:
            folder.clean_stale()
        return folder
    if restart:
        path = Path(cfg.out) / cfg.run_name
        if d.main:
            path.mkdir(parents=True, exist_ok=True)
        return RunFolder(path)
    path = str(RunFolder.create(cfg.out, cfg.run_name).path) if d.main else ""
    return RunFolder(Path(broadcast_str(path, d)))


def prepare(
    cfg: TrainConfig, d: Dist, ckpt: Checkpoint | None, resume: str | Path | None, log: Log, restart: bool = False
) -> Trainer:
    """Everything before the first step: data, plan, model, optimizer, the resumed state, the run folder."""
    if cfg.amp == "fp16" and d.device.type != "cuda":
        raise ValueError("config key 'amp': fp16 needs CUDA (a grad scaler); use bf16 on CPU")
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if d.device.type == "cpu" and keep_freed_memory():
        log(f"CPU allocator: freed memory kept for the next step ({ALLOCATOR_ENV}=0 to leave malloc as it is)")
    train_ds, val_ds, classes, native = _data(cfg, d, ckpt)
    policy = eval_policy(cfg)
    if cfg.cache_res is not None:
        train_ds, val_ds = _cached(cfg, d, policy.train_res, (train_ds, val_ds), log)
    plan = make_plan(cfg, policy.train_res, len(train_ds), d.world)
    model = build_model(cfg, d.device, classes, fresh=ckpt is None)
    cfg, precision = _precision(cfg, d, model, plan, len(classes))
    hooks = build_methods(cfg, model, classes, policy, d.device)
    optimizer = build_optimizer(cfg, model, hooks)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    state = _restore(ckpt, model, optimizer, scaler, hooks) if ckpt is not None else TrainState()
    crop_scale = cfg.crop_scale if cfg.crop_scale is not None else (0.6 if native else 0.08)
    if hasattr(train_ds, "draft"):  # JPEG draft decoding: downscale while the smallest crop keeps its pixels
        train_ds.draft = round(policy.train_res / crop_scale**0.5)
        val_ds.draft = round(max(policy.train_res, policy.test_res) / policy.crop_pct)
    folder = _folder(cfg, d, resume, restart)  # after every check that can refuse the run: no folder for a refused one
    t = Trainer(
        cfg=cfg, dist=d, folder=folder, train_ds=train_ds, val_ds=val_ds, classes=classes, policy=policy, plan=plan,
        model=model, runner=_runner(cfg, d, model), optimizer=optimizer, scaler=scaler, hooks=hooks, state=state,
        log=log, crop_scale=crop_scale, crop_on_device=native is not None,
        step=build_step(cfg, hooks, optimizer, scaler), precision=precision,
    )  # fmt: skip
    _announce(t, resume)
    return t


def _precision(cfg: TrainConfig, d: Dist, model: nn.Module, plan: Plan, classes: int) -> tuple[TrainConfig, Choice]:
    """The run's precision (``--amp auto``: measured by rank 0, told to the others); the config then holds it."""
    choice = run_precision(cfg, model, plan.stages[0], classes, d.device, d.world) if d.main else None
    amp = broadcast_str(choice.amp if choice is not None else "", d)
    choice = choice or Choice(amp, "rank 0's choice")
    return (cfg if cfg.amp == amp else dataclasses.replace(cfg, amp=amp)), choice


def _restore(ckpt: Checkpoint, model: nn.Module, optimizer, scaler, hooks: list[Hook]) -> TrainState:
    model.load_state_dict(ckpt.weights("model"))
    for hook in hooks:
        hook.restore(ckpt)
    ckpt.restore_optimizer(optimizer)
    if scaler is not None and ckpt.meta.get("scaler"):
        scaler.load_state_dict(ckpt.meta["scaler"])
    ckpt.restore_rng()  # dropout and drop path continue with the masks the uninterrupted run would draw
    return ckpt.state


def _announce(t: Trainer, resume: str | Path | None) -> None:
    cfg, state = t.cfg, t.state
    if t.dist.main:
        t.folder.write_config(cfg)
        if resume is None and t.precision is not None:
            atomic_write_text(t.folder.path / "precision.json", json.dumps(t.precision.to_dict(), indent=1) + "\n")
        t.board = _tensorboard(t.folder.path, t.log)
    if resume is not None:
        t.log(f"resuming {t.folder.path} at epoch {state.epoch + 1}, batch {state.batch} (step {state.step})")
    t.log(
        f"{cfg.model} on {cfg.data}: {len(t.train_ds)} train / {len(t.val_ds)} val images, {len(t.classes)} classes; "
        f"train {t.policy.train_res} px, test {t.policy.test_res} px; {cfg.epochs} epochs, {t.plan.total_steps} "
        f"steps of {cfg.batch_size} on {t.dist.world} x {t.dist.device}; run folder {t.folder.path}"
    )
    if cfg.pretrained not in (None, False) and resume is None:
        p = t.policy
        t.log(
            f"from pretrained {cfg.pretrained}: classifier for {len(t.classes)} classes; normalization mean "
            f"{tuple(round(v, 3) for v in p.mean)}, {p.interpolation}, crop {p.crop_pct:g}"
        )
    if t.precision is not None and resume is None:
        t.log(t.precision.describe())
    for line in filter(None, (hook.describe() for hook in t.hooks)):
        t.log(line)
    if cfg.stages > 1 or cfg.size_start:
        t.log(f"progressive learning ({cfg.progressive_variant}):\n" + t.plan.describe())
        if t.dist.main:
            plots.draw("schedule", t.folder.path / "schedule.png", list(t.plan.stages))


def _tensorboard(run_dir: Path, log: Log):
    """A TensorBoard writer in the run folder when tensorboard is installed (the optional ``[tensorboard]`` extra),
    else None, said once."""
    from ..utils.extras import MissingExtra, note_missing

    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        note_missing(MissingExtra("tensorboard", "TensorBoard logging"), "TensorBoard logs", log)
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _save(t: Trainer) -> None:
    if not t.dist.main:
        return
    parts: dict[str, Any] = {}
    for hook in t.hooks:
        parts.update(hook.save(t.state))
    t.folder.save(
        model=t.model,
        optimizer=t.optimizer,
        state=t.state,
        config=t.cfg.to_dict(),
        classes=t.classes,
        scaler=t.scaler,
        world=t.dist.world,
        **parts,
    )


def train_epoch(t: Trainer, stage: ProgressiveStage, stop: StopFlag) -> bool:
    """Train the rest of epoch ``state.epoch``; False when ``max_steps`` stopped the run inside it."""
    cfg, state, steps = t.cfg, t.state, t.plan.epoch_steps[t.state.epoch]
    loader, order = _train_loader(t, stage.batch_size)
    order.set_epoch(state.epoch, start=state.batch)
    device_crop = t.crop_scale if t.crop_on_device else None
    settings = AugmentSettings.from_config(stage.apply(cfg), stage.image_size, device_crop, t.policy.mean, t.policy.std)
    share = BatchShare(order.rank, order.per_rank, order.world)
    t.model.train()
    for hook in t.hooks:
        hook.on_epoch(state.epoch)
    bar = _progress(t, steps)
    try:
        return _train_batches(t, stage, stop, loader, settings, share, bar, steps)
    finally:
        if bar is not None:
            bar.close()  # also when the epoch ends early: a stop's line starts on a clean line


def _train_batches(t: Trainer, stage, stop: StopFlag, loader, settings, share, bar, steps: int) -> bool:
    """The epoch's batches: a step each, a checkpoint when due or asked for, the stop after it when asked for."""
    cfg, state = t.cfg, t.state
    last_save = started = fetched = time.monotonic()
    for batch in loader:
        stepped = time.monotonic()
        state.epoch_wait_s += stepped - fetched
        _step(t, stage, batch, settings, share)
        stop.longest_step_s = max(stop.longest_step_s, time.monotonic() - stepped)
        if cfg.compile and (stage.image_size, len(batch.labels)) not in t.compiled:
            _log_compile(t, stage.image_size, len(batch.labels), time.monotonic() - stepped)
        state.batch += 1
        _show(bar, t, started)
        done = t.plan.stops_early_at(state.epoch, state.batch - 1)
        due = (cfg.checkpoint_steps and state.batch % cfg.checkpoint_steps == 0) or (
            time.monotonic() - last_save >= 60 * cfg.checkpoint_minutes
        )
        if stop.requested or done or (due and state.batch < steps):
            state.epoch_seconds += time.monotonic() - started
            started = time.monotonic()
            _save(t)
            last_save = time.monotonic()
        if stop.requested:
            raise _stopped(t, *stop.requested)
        if done:
            return False
        fetched = time.monotonic()
    state.epoch_seconds += time.monotonic() - started
    return True


def _log_compile(t: Trainer, size: int, batch: int, seconds: float) -> None:
    """The first step at a new input shape is where torch.compile compiles (a graph per shape: the progressive stages'
    sizes, and a smaller last batch): each is logged with its time, so recompiles are counted, never silent."""
    t.compiled.add((size, batch))
    t.log(f"compiled for {batch} x {size} px: first step {seconds:.1f} s (graph {len(t.compiled)})")


def _step(t: Trainer, stage: ProgressiveStage, batch, settings: AugmentSettings, share: BatchShare) -> None:
    """One optimizer step on ``batch`` (augmented on the device), its totals added to the epoch's."""
    cfg, state, device = t.cfg, t.state, t.dist.device
    t.epoch_skipped.update(batch.skipped)
    lr = t.plan.lr_at(state.epoch, state.batch)
    for group in t.optimizer.param_groups:  # a group's fixed factor (layer decay), then the methods' (freezing: 0)
        group["lr"] = lr * group.get("lr_scale", 1.0) * math.prod(hook.lr_factor(group) for hook in t.hooks)
    if not batch.labels.numel():  # nothing in it decoded
        return
    pin = device.type == "cuda"
    x, y = batch.images.to(device, non_blocking=pin), batch.labels.to(device, non_blocking=pin)
    x, y = augment_batch(x, y, settings, len(t.classes), seed=(cfg.seed, state.epoch, state.batch), share=share)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    _after_step(t, stage, train_step(t.runner, x, y, t.optimizer, t.step))


def _after_step(t: Trainer, stage: ProgressiveStage, r: StepResult) -> None:
    """The non-finite policy (skip and count; ``max_nonfinite`` in a row stop the run), then the hooks."""
    state = t.state
    state.epoch_images += r.count
    if not r.finite:
        t.nonfinite_run += 1
        state.nonfinite += 1
        step = t.plan.first_step(state.epoch) + state.batch
        t.log(f"step {step}: non-finite loss or gradients, step skipped ({t.nonfinite_run} in a row)")
        if t.nonfinite_run >= t.cfg.max_nonfinite:
            raise TrainingStopped(
                f"{t.nonfinite_run} consecutive non-finite steps at epoch {state.epoch + 1}, batch {state.batch}: "
                f"stopped. The last good checkpoint is {t.folder.checkpoint}; lower the learning rate, or try "
                "--agc 0.01",
                t.folder.path,
            )
        return
    t.nonfinite_run = 0
    state.step += 1
    state.epoch_loss_sum += r.loss * r.count
    state.epoch_correct += r.correct
    for hook in t.hooks:
        hook.after_step(t.model, stage, t.cfg.batch_size)


def _progress(t: Trainer, steps: int):
    if not t.dist.main:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    desc = f"epoch {t.state.epoch + 1}"
    return tqdm(total=steps, initial=t.state.batch, desc=desc, leave=False, dynamic_ncols=True)


def _show(bar, t: Trainer, started: float) -> None:
    if bar is None:
        return
    s = t.state
    seen = max(1, s.epoch_images)
    rate = s.epoch_images * t.dist.world / max(1e-9, s.epoch_seconds + time.monotonic() - started)
    lr = t.plan.lr_at(s.epoch, max(0, s.batch - 1))  # the schedule's (a frozen group's is 0)
    bar.set_postfix(
        loss=f"{s.epoch_loss_sum / seen:.3f}",
        acc=f"{100 * s.epoch_correct / seen:.1f}",
        img_s=f"{rate:.0f}",
        lr=f"{lr:.3g}",
    )
    bar.update(1)


def _kept_loader(t: Trainer, key: tuple, make: Callable[[], tuple]) -> tuple[DataLoader, EpochOrder]:
    """The loader for ``key`` (training at a batch size, validation at a size), built from ``make()`` (dataset,
    transform, order) on first use and kept, so that its worker processes start once per run rather than once per
    epoch and evaluation (about a second each on a small machine). A training loader of another batch size (a
    progressive stage) replaces the previous one."""
    if key not in t.loaders:
        for old in [k for k in t.loaders if k[0] == key[0] == "train"]:
            del t.loaders[old]  # its workers stop
        dataset, transform, order = make()
        pin = t.dist.device.type == "cuda"
        t.loaders[key] = build_loader(dataset, transform, order, workers=t.cfg.workers, pin_memory=pin), order
    return t.loaders[key]


def _train_loader(t: Trainer, batch_size: int) -> tuple[DataLoader, EpochOrder]:
    """Images held in memory go to the device whole, where the random-resized crop happens; files are decoded and
    cropped (from the full-resolution image) in the loader workers at the run's final size. Either way the device
    resizes to the stage's size, so a stage change costs nothing."""

    def make() -> tuple:
        crop = TrainTransform(t.policy.train_res, (t.crop_scale, 1.0), flip=0.0, normalize=False)
        d = t.dist
        order = epoch_order(t.train_ds, batch_size, shuffle=True, seed=t.cfg.seed, rank=d.rank, world=d.world)
        return t.train_ds, to_uint8 if t.crop_on_device else crop, order

    return _kept_loader(t, ("train", batch_size), make)


def _validate(t: Trainer, net: nn.Module, res: int) -> EvalTotals:
    def make() -> tuple:
        d = t.dist
        order = epoch_order(t.val_ds, t.cfg.batch_size, shuffle=False, rank=d.rank, world=d.world)
        return t.val_ds, t.policy.transform(res), order

    loader, _ = _kept_loader(t, ("val", res), make)
    r = evaluate(net, loader, t.dist.device, amp=t.cfg.amp, channels_last=t.cfg.channels_last)
    summed = all_sum([r.loss_sum, r.top1, r.top5, r.count, r.skipped], t.dist)
    total = EvalTotals(summed[0], *(int(v) for v in summed[1:]))
    if total.count == 0:
        raise TrainingStopped(f"no validation image of {t.cfg.data} decoded ({total.skipped} skipped)", t.folder.path)
    return total


def _validation_columns(t: Trainer) -> dict[str, float]:
    """Top-1, top-5 and loss of the raw model and every hook's (the EMA), at the training and the test size; the
    images the val split holds, those evaluated, and a warning line when some were not (skipped, or never read)."""
    row: dict[str, float] = {}
    nets = {"val": t.model} | {name: net for hook in t.hooks for name, net in hook.eval_models().items()}
    for name, net in nets.items():
        for res in dict.fromkeys((t.policy.train_res, t.policy.test_res)):
            r = _validate(t, net, res)
            tag = name if res == t.policy.train_res else f"{name}_{res}px"
            m = r.metrics
            row |= {
                f"{tag}_top1": round(m["top1"], 3),
                f"{tag}_top5": round(m["top5"], 3),
                f"{tag}_loss": round(m["loss"], 5),
            }
            expected = len(t.val_ds)
            row |= {"val_expected": expected, "val_images": r.count, "val_skipped": r.skipped}
            row["val_missing"] = max(0, expected - r.count - r.skipped)
    if row["val_images"] < row["val_expected"]:
        t.log(
            f"warning: validation saw {row['val_images']} of the {row['val_expected']} images of {t.cfg.data}'s val "
            f"split ({row['val_skipped']} skipped, {row['val_missing']} never read"
            + "".join(f"; {line}" for line in _bad_shards(t, "val"))
            + "): its top-1 is over the images seen"
        )
    return row


def end_epoch(t: Trainer, stage: ProgressiveStage) -> None:
    """Validate, write the epoch's metrics row, save the checkpoint, log."""
    state, cfg = t.state, t.cfg
    bad = _bad_shards(t)
    loss, correct, count, seconds, wait, bad_count = all_sum(
        [state.epoch_loss_sum, state.epoch_correct, state.epoch_images, state.epoch_seconds, state.epoch_wait_s,
         len(bad)], t.dist,
    )  # fmt: skip
    if count == 0:
        raise TrainingStopped(f"no training image of epoch {state.epoch + 1} decoded: check {cfg.data}", t.folder.path)
    seconds, wait = seconds / t.dist.world, wait / t.dist.world  # the mean over processes
    row: dict[str, Any] = {
        "epoch": state.epoch + 1,
        "step": state.step,
        "lr": t.plan.lr_at(state.epoch, t.plan.epoch_steps[state.epoch] - 1),
        "stage": stage.index + 1,
        "train_res": stage.image_size,
        "batch_size": stage.batch_size,
        "precision": PRECISION_NAMES[cfg.amp],
        **stage.columns(cfg),
        "train_loss": round(loss / count, 5),
        "train_top1": round(100 * correct / count, 3),
        "train_images": int(count),
        **_validation_columns(t),
    }
    state.elapsed_s += time.monotonic() - t.clock
    t.clock = time.monotonic()
    row |= {
        "img_s": round(count / max(1e-9, seconds), 1),
        "epoch_s": round(seconds, 1),
        "loader_wait_s": round(wait, 2),
    }
    for hook in t.hooks:
        row |= hook.columns()
    new = sorted(t.epoch_skipped - t.skipped)
    t.skipped |= t.epoch_skipped
    row |= {"elapsed_s": round(state.elapsed_s, 1), "nonfinite": state.nonfinite, "skipped": len(t.epoch_skipped)}
    if cfg.data.startswith(SHARDS):
        row["bad_shards"] = int(bad_count)
    row["skipped_total"] = len(t.skipped)
    t.epoch_skipped = set()
    state.history.append(row)
    state.end_epoch()
    _save(t)
    if t.dist.main:
        t.folder.write_metrics(state.history)
        plots.draw("history", t.folder.path / "curves.png", state.history)
        t.log(_summary(row))
        _board(t.board, row)
    _report_skipped(t, new)


def _bad_shards(t: Trainer, split: str = "train") -> list[str]:
    """This process's shards of ``split`` that failed or broke off in the epoch (streamed data), with their reasons;
    the training ones are logged each."""
    orders = [order for key, (_, order) in t.loaders.items() if key[0] == split]
    bad = list(dict.fromkeys(f"{url}: {why}" for order in orders for url, why in getattr(order, "bad", {}).items()))
    for line in bad if split == "train" else ():
        t.log(f"bad shard, its samples skipped: {line}")
    return bad


def _report_skipped(t: Trainer, new: list, shown: int = 10) -> None:
    """Each training file that failed to decode, once, in the epoch it first failed: a plain line with its path and
    the decoder's reason (the first ``shown`` of an epoch; every one in the run folder's ``skipped.txt``)."""
    if not new or not t.dist.main or not (hasattr(t.train_ds, "path") or hasattr(t.train_ds, "order")):
        return
    lines = [
        i if isinstance(i, str) else f"{t.train_ds.path(i)}: {skip_reason(t.train_ds.path(i))}" for i in new
    ]  # a streamed sample: "SHARD:KEY: why"
    listing = t.folder.path / "skipped.txt"
    previous = listing.read_text().splitlines() if listing.is_file() else []
    atomic_write_text(listing, "\n".join([*previous, *lines]) + "\n")
    for line in lines[:shown]:
        t.log(f"skipped {line}")
    if len(lines) > shown:
        t.log(f"skipped {len(lines) - shown} more files this epoch; every skipped file is listed in {listing}")


def _board(board, row: dict[str, Any]) -> None:
    if board is None:
        return
    for key, value in row.items():
        if key != "epoch" and isinstance(value, int | float):
            board.add_scalar(key, value, row["epoch"])
    board.flush()


def _summary(row: dict[str, Any]) -> str:
    parts = [f"epoch {row['epoch']}", f"train loss {row['train_loss']:.3f}", f"train top-1 {row['train_top1']:.1f}"]
    for key, value in row.items():
        if key.endswith("_top1") and not key.startswith("train"):
            parts.append(f"{key.removesuffix('_top1')} top-1 {value:.2f}")
    parts.append(f"{row['img_s']:.0f} img/s, {row['epoch_s']:.0f} s")
    return "  ".join(parts)
