"""timm's own training pipeline, assembled as its ``train.py`` assembles it, for ``train_vs_timm.py`` to run in the
reference environment (``shared/tools/ref_env.sh``: timm and torchvision; convscale is not imported here).

    REF_PY benchmarks/timm_pipeline.py --data DIGITS --model resnet18 --epochs 10 --res 64 --out timm.json

``timm.data.create_dataset`` and ``create_loader`` (random-resized crop, flip, RandAugment from its string, timm's
prefetcher normalizing on the device), ``timm.data.Mixup`` with label smoothing and ``SoftTargetCrossEntropy``,
``timm.optim.create_optimizer_v2`` (AdamW), ``timm.scheduler.create_scheduler_v2`` (cosine, per-step warm-up), and
``timm.utils.ModelEmaV3`` with its warm-up; optionally ``torch.compile``, and ``--amp-dtype bfloat16`` (train.py's
``--amp --amp-dtype bfloat16``: the forward and the loss under ``torch.autocast``, no grad scaler for bf16, the
validation under the same autocast). Per epoch it records images/s over the
epoch, seconds spent waiting for the loader, and (as train.py, every epoch) the top-1 of the model and of its EMA.
Writes one JSON file.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import time

import torch


def main() -> None:
    import timm
    from timm.data import Mixup, create_dataset, create_loader
    from timm.loss import SoftTargetCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from timm.utils import ModelEmaV3

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--randaug", default="rand-m9-n2-inc1-p1.0", help="RandAugment as the paper: both ops always")
    p.add_argument("--crop-scale", type=float, default=0.08, help="smallest area of the random-resized crop")
    p.add_argument("--mixup", type=float, default=0.2)
    p.add_argument("--smoothing", type=float, default=0.1)
    p.add_argument("--ema-decay", type=float, default=0.998)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--amp-dtype", choices=["float32", "bfloat16"], default="float32", help="float32: no autocast")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device("cpu")
    train_set = create_dataset("", root=args.data, split="train", is_training=True)
    val_set = create_dataset("", root=args.data, split="val")
    classes = len(train_set.reader.class_to_idx)
    model = timm.create_model(args.model, num_classes=classes).to(memory_format=torch.channels_last)
    common = dict(input_size=(3, args.res, args.res), num_workers=args.workers, device=device, use_prefetcher=True,
                  interpolation="bicubic", persistent_workers=True)  # fmt: skip
    train_loader = create_loader(
        train_set,
        batch_size=args.batch,
        is_training=True,
        auto_augment=args.randaug,
        scale=(args.crop_scale, 1.0),
        **common,
    )
    val_loader = create_loader(val_set, batch_size=2 * args.batch, is_training=False, crop_pct=0.875, **common)
    mixup = Mixup(mixup_alpha=args.mixup, label_smoothing=args.smoothing, num_classes=classes)
    loss_fn = SoftTargetCrossEntropy()
    optimizer = create_optimizer_v2(model, "adamw", lr=args.lr, weight_decay=args.weight_decay)
    scheduler, _ = create_scheduler_v2(
        optimizer, "cosine", num_epochs=args.epochs, warmup_epochs=args.warmup_epochs, warmup_lr=args.lr * 1e-3,
        step_on_epochs=False, updates_per_epoch=len(train_loader),
    )  # fmt: skip
    ema = ModelEmaV3(model, decay=args.ema_decay, use_warmup=True)  # train.py's --model-ema-warmup
    runner = torch.compile(model) if args.compile else model
    amp_autocast = contextlib.nullcontext  # as train.py: autocast only with --amp
    if args.amp_dtype == "bfloat16":
        amp_autocast = functools.partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16)
    epochs, updates = [], 0
    for epoch in range(args.epochs):
        model.train()
        images, wait, start = 0, 0.0, time.monotonic()
        fetched = start
        first_step = None
        for x, y in train_loader:
            wait += time.monotonic() - fetched
            step_start = time.monotonic()
            x, y = mixup(x.contiguous(memory_format=torch.channels_last), y)
            with amp_autocast():
                loss = loss_fn(runner(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            updates += 1
            ema.update(model, step=updates)
            scheduler.step_update(num_updates=updates)
            images += x.shape[0]
            if first_step is None:
                first_step = time.monotonic() - step_start
            fetched = time.monotonic()
        seconds = time.monotonic() - start
        scheduler.step(epoch + 1)
        evaluated = time.monotonic()
        with amp_autocast():  # as train.py: every epoch, under the run's autocast
            top1, ema_top1 = evaluate(model, val_loader), evaluate(ema.module, val_loader)
        epochs.append(dict(epoch=epoch + 1, images=images, seconds=round(seconds, 3), img_s=round(images / seconds, 1),
                           loader_wait_s=round(wait, 3), first_step_s=round(first_step, 3), top1=top1,
                           ema_top1=ema_top1, eval_s=round(time.monotonic() - evaluated, 3)))  # fmt: skip
        print(json.dumps(epochs[-1]), flush=True)
    result = dict(epochs=epochs, top1=epochs[-1]["top1"], ema_top1=epochs[-1]["ema_top1"])
    result["torch"], result["timm"], result["amp_dtype"] = torch.__version__, timm.__version__, args.amp_dtype
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: result[k] for k in ("top1", "ema_top1")}))


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader) -> float:
    model.eval()
    correct = total = 0
    for x, y in loader:
        correct += (model(x.contiguous(memory_format=torch.channels_last)).argmax(1) == y).sum().item()
        total += y.numel()
    return round(100.0 * correct / total, 2)


if __name__ == "__main__":
    main()
