"""``fit``: the training run. It wires the pieces (data order, train step, schedule, EMA, evaluation, checkpoint)
together and does little else, so it can be read in one sitting."""

from __future__ import annotations

import csv
import dataclasses
import io
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write_text
from ..augment import flip_mask, mix_batch, rand_augment, random_erasing, resized_crop, sample_boxes
from ..data import EpochOrder, EvalTransform, TrainTransform, build_loader, make_datasets
from ..data.folder import warn_skipped
from ..data.transforms import normalize, to_uint8
from ..factory import create_model, model_info
from ..optim.agc import agc_parameters
from .config import TrainConfig
from .distributed import Dist, all_sum, setup, teardown
from .ema import ModelEMA
from .optim import create_optimizer, lr_at
from .progressive import (
    ProgressiveConfig,
    ProgressiveStage,
    format_schedule,
    progressive_schedule,
    regularization_setter,
)
from .state import TrainState, read_checkpoint, write_checkpoint
from .steps import EvalResult, evaluate, train_step

__all__ = ["FitResult", "TrainingStopped", "fit"]

CHECKPOINT = "checkpoints/last.safetensors"


class TrainingStopped(RuntimeError):
    """The run stopped before its end (too many non-finite steps, or an interrupt); the last checkpoint is whole."""

    def __init__(self, message: str, run_dir: Path | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.run_dir, self.exit_code = run_dir, exit_code


@dataclass(frozen=True)
class FitResult:
    run_dir: Path
    metrics: dict[str, Any]  # the last epoch's row of metrics.csv


def _resolutions(cfg: TrainConfig, native: int | None) -> tuple[int, int]:
    info = model_info(cfg.model)
    train_res = cfg.train_res or native or info.train_res
    if cfg.test_res:
        return train_res, cfg.test_res
    # the model's own train -> test ratio (the FixRes effect its recipe was tuned with), on a multiple of 8
    test_res = max(32, 8 * round(train_res * info.test_res / info.train_res / 8))
    return train_res, test_res


def _new_run_dir(cfg: TrainConfig) -> Path:
    base = Path(cfg.out) / cfg.run_name
    run_dir, n = base, 1
    while (run_dir / CHECKPOINT).exists() or (run_dir / "metrics.csv").exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    return run_dir


def _resume_path(resume: str | Path) -> Path:
    path = Path(resume)
    return path / CHECKPOINT if path.is_dir() else path


def _tensorboard(run_dir: Path):
    """A TensorBoard writer in the run folder when tensorboard is installed (optional), else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(run_dir / "metrics.csv", buf.getvalue())
    _plot("plot_history", run_dir / "curves.png", history)


def _plot(name: str, path: Path, data) -> None:
    """Draw a run-folder plot from ``train.plots``; without matplotlib (the optional ``[plot]`` extra) skip it."""
    try:
        from . import plots

        getattr(plots, name)(path, data)
    except ImportError:
        return


class _StopFlag:
    """Ctrl-C asks the loop to stop after the current step (and save); a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _StopFlag:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave SIGINT alone
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def fit(cfg: TrainConfig, *, resume: str | Path | None = None, log=print) -> FitResult:
    """Train ``cfg``; ``resume``: a run folder or checkpoint to continue exactly where it stopped."""
    d = setup(cfg.device)
    try:
        return _fit(cfg, d, resume, log if d.main else (lambda *_: None))
    finally:
        teardown()


def _start(value, end):
    return end if value is None else value


def _model_rates(cfg: TrainConfig) -> tuple[tuple[float, float], tuple[float, float]]:
    """(first, last) classifier dropout and drop-path rates; None in the config means the model's own."""
    own = model_info(cfg.model).config
    drop = cfg.drop_rate if cfg.drop_rate is not None else own.drop_rate
    path = cfg.drop_path_rate if cfg.drop_path_rate is not None else own.drop_path_rate
    return (_start(cfg.drop_rate_start, drop), drop), (_start(cfg.drop_path_rate_start, path), path)


def _schedule(cfg: TrainConfig, train_res: int) -> list[ProgressiveStage]:
    drop, path = _model_rates(cfg)
    progressive = ProgressiveConfig(
        stages=cfg.stages,
        image_size=(_start(cfg.size_start, train_res), train_res),
        drop_rate=drop,
        drop_path_rate=path,
        randaug_magnitude=(_start(cfg.randaug_m_start, cfg.randaug_m), cfg.randaug_m),
        mixup_alpha=(_start(cfg.mixup_start, cfg.mixup), cfg.mixup),
        cutmix_alpha=(_start(cfg.cutmix_start, cfg.cutmix), cfg.cutmix),
        variant=cfg.progressive_variant,
        multiple=cfg.size_multiple or (32 if cfg.compile else 8),
        constant_memory=cfg.constant_memory,
    )
    stages = progressive_schedule(progressive, cfg.epochs, cfg.batch_size)
    if cfg.stages == 1 and not cfg.size_start:  # a plain run: exactly the sizes asked for, no rounding
        stages = [dataclasses.replace(st, image_size=train_res) for st in stages]
    return stages


def _steps(schedule: list[ProgressiveStage], images: int, world: int) -> list[int]:
    """Optimizer steps in each epoch (each stage has its own global batch), checked against the data and ranks."""
    steps = []
    for st in schedule:
        key = "constant_memory" if st.lr_scale != 1 else "batch_size"
        if st.batch_size % world:
            raise ValueError(f"config key {key!r}: batch {st.batch_size} is not divisible by the {world} processes")
        if st.batch_size > images:
            raise ValueError(f"config key {key!r}: batch {st.batch_size} is larger than the {images} images")
        steps += [images // st.batch_size] * (st.end_epoch - st.start_epoch)
    return steps


def _augment(
    x,
    y,
    stage: ProgressiveStage,
    cfg: TrainConfig,
    num_classes: int,
    seed: tuple[int, ...],
    order: EpochOrder,
    crop_scale: float | None,
):
    """uint8 batch from the loader -> augmented, normalized float batch and its targets, on the device: the
    random-resized crop (when ``crop_scale`` is given: the loader sent whole images; else it sent crops) resized to
    the stage's size, antialiased, and a flip; RandAugment at the stage's magnitude; mixup/CutMix (soft targets,
    smoothing folded in); random erasing. The random draws follow from (seed, epoch, batch), so a resumed run repeats
    them; per-image draws are made for the whole global batch and this rank's part of it (``order``) taken, so that N
    processes augment each image exactly as one process would."""
    gen = torch.Generator().manual_seed(int(np.random.default_rng(list(seed)).integers(2**62)))
    n, _, h, w = x.shape
    everyone = order.per_rank * order.world
    mine = slice(order.rank * order.per_rank, order.rank * order.per_rank + n)
    boxes = sample_boxes(everyone, h, w, (crop_scale, 1.0), generator=gen)[mine] if crop_scale is not None else None
    flips = flip_mask(everyone, 0.5, generator=gen)[mine]
    x = resized_crop(x, boxes, stage.image_size, flips).div_(255).clamp_(0, 1)
    if cfg.randaug_n and stage.randaug_magnitude > 0:
        x = rand_augment(x, cfg.randaug_n, stage.randaug_magnitude, generator=gen)
    x = normalize(x)
    if stage.mixup_alpha > 0 or stage.cutmix_alpha > 0:
        mixed = mix_batch(
            x,
            y,
            num_classes,
            mixup_alpha=stage.mixup_alpha,
            cutmix_alpha=stage.cutmix_alpha,
            switch_prob=cfg.mixup_switch_prob,
            label_smoothing=cfg.label_smoothing,
            generator=gen,
        )
        x, y = mixed.images, mixed.targets
    if cfg.random_erasing > 0:
        x = random_erasing(x, cfg.random_erasing, generator=gen)
    return x, y


def _fit(cfg: TrainConfig, d: Dist, resume: str | Path | None, log) -> FitResult:
    device = d.device
    if cfg.amp == "fp16" and device.type != "cuda":
        raise ValueError("config key 'amp': fp16 needs CUDA (a grad scaler); use bf16 on CPU")
    ckpt = read_checkpoint(_resume_path(resume)) if resume is not None else None
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    train_ds, val_ds, classes, native = make_datasets(
        cfg.data,
        seed=cfg.seed,
        shapes_train=cfg.shapes_train,
        shapes_val=cfg.shapes_val,
        shapes_res=cfg.shapes_res,
        workers=cfg.workers,
    )
    if ckpt is not None and ckpt.classes != classes:
        raise ValueError(f"the checkpoint was trained on other classes ({len(ckpt.classes)}) than --data has")
    train_res, test_res = _resolutions(cfg, native)
    schedule = _schedule(cfg, train_res)
    epoch_steps = _steps(schedule, len(train_ds), d.world)  # optimizer steps in each epoch
    first_step = np.concatenate([[0], np.cumsum(epoch_steps)]).tolist()  # global step at each epoch's start
    stop_at = min(first_step[-1], cfg.max_steps) if cfg.max_steps else first_step[-1]  # max_steps only stops early
    # the learning rate follows the position in the run in steps of the base batch, so that warm-up and cosine span
    # the same epochs when the smaller stages take fewer, larger steps (constant_memory)
    base_steps = len(train_ds) // cfg.batch_size
    warmup = round(cfg.warmup_epochs * base_steps)
    torch.manual_seed(cfg.seed)
    # built with the run's largest rates, so that every dropout / drop-path module exists; each stage sets its own
    built = _model_rates(cfg)
    model = create_model(cfg.model, num_classes=len(classes), drop_rate=max(built[0]), drop_path_rate=max(built[1])).to(
        device
    )
    set_rates = regularization_setter(model, max(built[1]))
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = ModelEMA(model, cfg.ema_decay) if cfg.ema else None
    optimizer = create_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    state = TrainState()
    if ckpt is not None:
        model.load_state_dict(ckpt.weights("model"))
        if ema is not None:
            ema.module.load_state_dict(ckpt.weights("ema"))
        ckpt.restore_optimizer(optimizer)
        if scaler is not None and ckpt.meta.get("scaler"):
            scaler.load_state_dict(ckpt.meta["scaler"])
        state = ckpt.state
        ckpt.restore_rng()  # dropout and drop path continue with the masks the uninterrupted run would draw
        if ema is not None:
            ema.updates = state.ema_updates
        run_dir = _resume_path(resume).parent.parent
        log(f"resuming {run_dir} at epoch {state.epoch + 1}, batch {state.batch} (step {state.step})")
    else:
        run_dir = _new_run_dir(cfg)
    agc_params = agc_parameters(model) if cfg.agc else []
    runner: nn.Module = model
    if d.world > 1:
        runner = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        runner = torch.compile(runner)

    if d.main:
        import yaml

        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    log(
        f"{cfg.model} on {cfg.data}: {len(train_ds)} train / {len(val_ds)} val images, {len(classes)} classes; "
        f"train {train_res} px, test {test_res} px; {cfg.epochs} epochs, {first_step[-1]} steps of "
        f"{cfg.batch_size} on {d.world} x {device}; run folder {run_dir}"
    )
    if cfg.stages > 1 or cfg.size_start:
        log("progressive learning (" + cfg.progressive_variant + "):\n" + format_schedule(schedule))
        if d.main:
            _plot("plot_schedule", run_dir / "schedule.png", schedule)
    crop_scale = cfg.crop_scale if cfg.crop_scale is not None else (0.6 if native else 0.08)
    crop = 1.0 if native else 0.875  # synthetic images are the whole scene; photos get the usual centre crop
    if hasattr(train_ds, "draft"):  # JPEG draft decoding: downscale while the smallest crop keeps its pixels
        train_ds.draft = round(train_res / crop_scale**0.5)
        val_ds.draft = round(max(train_res, test_res) / crop)
    val_order = EpochOrder(len(val_ds), cfg.batch_size, shuffle=False, rank=d.rank, world=d.world)
    # Images held in memory at one size (synthetic-shapes) go to the device whole, where the random-resized crop
    # happens; files are decoded in the loader workers, which also crop them (from the full-resolution image) to
    # the run's final size. Either way the device resizes to the stage's size, so a stage change costs nothing.
    crop_on_device = native is not None
    if crop_on_device:
        train_tf = to_uint8
    else:
        train_tf = TrainTransform(train_res, scale=(crop_scale, 1.0), flip=0.0, normalize=False)
    pin = device.type == "cuda"

    def save() -> None:
        if d.main:
            if ema is not None:
                state.ema_updates = ema.updates
            write_checkpoint(
                run_dir / CHECKPOINT,
                model=model,
                optimizer=optimizer,
                state=state,
                config=cfg.to_dict(),
                classes=classes,
                ema=ema.module if ema else None,
                scaler=scaler,
            )

    def validate(net: nn.Module, res: int) -> dict[str, float]:
        loader = build_loader(val_ds, EvalTransform(res, crop), val_order, workers=cfg.workers, pin_memory=pin)
        r = evaluate(net, loader, device, amp=cfg.amp, channels_last=cfg.channels_last)
        summed = all_sum([r.loss_sum, r.top1, r.top5, r.count], d)
        return EvalResult(summed[0], int(summed[1]), int(summed[2]), int(summed[3])).metrics

    board = _tensorboard(run_dir) if d.main else None
    skipped: set[int] = set()
    consecutive = 0
    last_save = time.monotonic()
    started = time.monotonic()
    result_row: dict[str, Any] = state.history[-1] if state.history else {}
    with _StopFlag() as stop:
        while first_step[state.epoch] + state.batch < stop_at:
            stage = next(st for st in schedule if st.start_epoch <= state.epoch < st.end_epoch)
            steps_per_epoch = epoch_steps[state.epoch]
            order = EpochOrder(len(train_ds), stage.batch_size, shuffle=True, seed=cfg.seed, rank=d.rank, world=d.world)
            order.set_epoch(state.epoch, start=state.batch)
            set_rates(stage.drop_rate, stage.drop_path_rate)
            loader = build_loader(train_ds, train_tf, order, workers=cfg.workers, pin_memory=pin)
            model.train()
            sums = [0.0, 0.0, 0.0]  # loss * n, correct, n
            epoch_start, images, wait = time.monotonic(), 0, 0.0
            bar = _progress(d, steps_per_epoch, state)
            fetched = time.monotonic()
            for batch in loader:
                wait += time.monotonic() - fetched
                it = first_step[state.epoch] + state.batch
                skipped.update(batch.skipped)
                position = state.epoch * base_steps + state.batch * base_steps / steps_per_epoch
                lr = stage.lr_scale * lr_at(position, cfg.epochs * base_steps, cfg.lr, warmup, cfg.min_lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                if batch.labels.numel():
                    x = batch.images.to(device, non_blocking=pin)
                    y = batch.labels.to(device, non_blocking=pin)
                    x, y = _augment(
                        x,
                        y,
                        stage,
                        cfg,
                        len(classes),
                        seed=(cfg.seed, state.epoch, state.batch),
                        order=order,
                        crop_scale=crop_scale if crop_on_device else None,
                    )
                    if cfg.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    r = train_step(
                        runner,
                        x,
                        y,
                        optimizer,
                        amp=cfg.amp,
                        scaler=scaler,
                        label_smoothing=0.0 if y.dim() == 2 else cfg.label_smoothing,
                        accum_steps=min(cfg.accum_steps, len(y)),
                        agc=cfg.agc,
                        agc_params=agc_params,
                    )
                    if r.finite:
                        consecutive = 0
                        state.step += 1
                        if ema is not None:
                            ema.update(model, weight=stage.batch_size / cfg.batch_size)
                        sums[0] += r.loss * r.count
                        sums[1] += r.correct
                        sums[2] += r.count
                    else:
                        consecutive += 1
                        state.nonfinite += 1
                        log(f"step {it}: non-finite loss or gradients, step skipped ({consecutive} in a row)")
                        if consecutive >= cfg.max_nonfinite:
                            raise TrainingStopped(
                                f"{consecutive} consecutive non-finite steps at epoch {state.epoch + 1}, batch "
                                f"{state.batch}: stopped. The last good checkpoint is {run_dir / CHECKPOINT}; "
                                "lower the learning rate, or try --agc 0.01",
                                run_dir,
                            )
                    images += len(batch.labels)
                state.batch += 1
                if bar is not None:
                    rate = images * d.world / max(1e-9, time.monotonic() - epoch_start)
                    bar.set_postfix(
                        loss=f"{sums[0] / max(1, sums[2]):.3f}",
                        acc=f"{100 * sums[1] / max(1, sums[2]):.1f}",
                        img_s=f"{rate:.0f}",
                        lr=f"{lr:.3g}",
                    )
                    bar.update(1)
                done = it + 1 >= stop_at and stop_at < first_step[-1]
                due = (cfg.checkpoint_steps and state.batch % cfg.checkpoint_steps == 0) or (
                    time.monotonic() - last_save >= 60 * cfg.checkpoint_minutes
                )
                if stop.requested or (due and state.batch < steps_per_epoch) or done:
                    save()
                    last_save = time.monotonic()
                if stop.requested:
                    raise TrainingStopped(
                        f"interrupted; saved {run_dir / CHECKPOINT}; continue with --resume {run_dir}",
                        run_dir,
                        exit_code=130,
                    )
                if done:
                    break
                fetched = time.monotonic()
            if bar is not None:
                bar.close()
            epoch_time = time.monotonic() - epoch_start
            if state.batch < steps_per_epoch:  # stopped by max_steps inside the epoch
                break
            train_loss, correct, count = all_sum(sums, d)
            row: dict[str, Any] = {
                "epoch": state.epoch + 1,
                "step": state.step,
                "lr": lr,
                "stage": stage.index + 1,
                "train_res": stage.image_size,
                "batch_size": stage.batch_size,
                "drop_rate": stage.drop_rate,
                "drop_path_rate": stage.drop_path_rate,
                "randaug_m": stage.randaug_magnitude if cfg.randaug_n else 0.0,
                "mixup": stage.mixup_alpha,
                "cutmix": stage.cutmix_alpha,
                "train_loss": round(train_loss / max(1, count), 5),
                "train_top1": round(100 * correct / max(1, count), 3),
                "train_images": int(count),
            }
            for name, net in (("val", model), ("ema", ema.module if ema else None)):
                if net is None:
                    continue
                for res in dict.fromkeys((train_res, test_res)):
                    m = validate(net, res)
                    tag = name if res == train_res else f"{name}_{res}px"
                    row.update(
                        {
                            f"{tag}_top1": round(m["top1"], 3),
                            f"{tag}_top5": round(m["top5"], 3),
                            f"{tag}_loss": round(m["loss"], 5),
                        }
                    )
            state.elapsed_s += time.monotonic() - started
            started = time.monotonic()
            row.update(
                {
                    "img_s": round(count / max(1e-9, epoch_time), 1),
                    "epoch_s": round(epoch_time, 1),
                    "loader_wait_s": round(wait, 2),
                    "elapsed_s": round(state.elapsed_s, 1),
                    "nonfinite": state.nonfinite,
                    "skipped": len(skipped),
                }
            )
            state.history.append(row)
            state.epoch += 1
            state.batch = 0
            save()
            last_save = time.monotonic()
            if d.main:
                _write_metrics(run_dir, state.history)
                log(_summary(row))
                if board is not None:
                    for key, value in row.items():
                        if key != "epoch" and isinstance(value, int | float):
                            board.add_scalar(key, value, row["epoch"])
                    board.flush()
            if skipped and state.epoch == 1 and hasattr(train_ds, "path"):
                warn_skipped([str(train_ds.path(i)) for i in sorted(skipped)], len(train_ds))
            result_row = row
    return FitResult(run_dir, result_row)


def _progress(d: Dist, steps: int, state: TrainState):
    if not d.main:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=steps, initial=state.batch, desc=f"epoch {state.epoch + 1}", leave=False, dynamic_ncols=True)


def _summary(row: dict[str, Any]) -> str:
    parts = [f"epoch {row['epoch']}", f"train loss {row['train_loss']:.3f}", f"train top-1 {row['train_top1']:.1f}"]
    for key, value in row.items():
        if key.endswith("_top1") and not key.startswith("train"):
            parts.append(f"{key.removesuffix('_top1')} top-1 {value:.2f}")
    parts.append(f"{row['img_s']:.0f} img/s, {row['epoch_s']:.0f} s")
    return "  ".join(parts)
