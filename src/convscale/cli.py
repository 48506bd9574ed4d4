"""The ``convscale`` command. Errors print one line and exit with status 2, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

__all__ = ["entry", "main"]


def _cmd_list(args: argparse.Namespace) -> None:
    from .factory import count_model
    from .registry import get_entry, list_models

    if args.pretrained:
        _list_pretrained(args.pattern)
        return
    names = list_models(args.pattern, include_tiny=args.all)
    if not names:
        raise ValueError(f"no model matches {args.pattern!r}; try `convscale list`")
    print(f"{'model':26s} {'family':15s} {'params':>9s} {'train/test':>10s} {'GMACs@test':>10s} {'top-1':>6s}")
    for name in names:
        entry = get_entry(name)
        cfg, pub = entry.config, entry.config.published
        params, macs = count_model(name, (cfg.test_res,))
        top1 = f"{pub.top1:.1f}" if pub and pub.top1 else "-"
        res, gmacs = f"{cfg.train_res}/{cfg.test_res}", macs[cfg.test_res] / 1e9
        print(f"{name:26s} {entry.family:15s} {params / 1e6:8.2f}M {res:>10s} {gmacs:10.2f} {top1:>6s}")


def _list_pretrained(pattern: str) -> None:
    from .weights import default_tag, get_weights, list_pretrained

    names = list_pretrained(pattern)
    if not names:
        raise ValueError(f"no published weights for models matching {pattern!r}; try `convscale list --pretrained`")
    print(f"{'weights (model.tag)':48s} {'top-1':>6s} {'@px':>4s} {'train/test':>10s} {'classes':12s} {'licence'}")
    for full in names:
        w = get_weights(full)
        top1 = f"{w.top1:.2f}" if w.top1 else "-"
        at = str(w.top1_res) if w.top1_res else ""
        star = " *" if default_tag(w.model) == w.tag else ""
        size = f"{w.input_size}/{w.test_input_size}"
        print(f"{full + star:48s} {top1:>6s} {at:>4s} {size:>10s} {w.label_set:12s} {w.license or '-'}")
    print("* the default tag (pretrained=True); top-1: ImageNet-1k val as published (timm's results, torchvision's)")


def _print_weights(name: str) -> None:
    from .weights import default_tag, weights_for

    found = weights_for(name)
    if not found:
        print("  pretrained      none published")
        return
    for i, w in enumerate(found):
        lead = "  pretrained      " if i == 0 else " " * 18
        top1 = f"top-1 {w.top1:.2f} at {w.top1_res} px" if w.top1 else "top-1 not published"
        star = " (default)" if default_tag(name) == w.tag else ""
        print(f"{lead}{w.tag}{star}: {w.source}, {w.label_set}, {top1}, test {w.test_input_size} px")


def _cmd_info(args: argparse.Namespace) -> None:
    from . import model_info

    i = model_info(args.name)
    p = i.published
    print(f"{i.name}  (family {i.family})")
    print(f"  params          {i.params:,}" + (f"   paper: {p.params_m}M" if p and p.params_m else ""))
    print(
        f"  GMACs           {i.gmacs_train:.4f} at {i.train_res} (train), {i.gmacs_test:.4f} at {i.test_res} (test)"
        + (f"   paper: {p.gflops}" if p and p.gflops else "")
    )
    if p and p.top1:
        print(f"  ImageNet top-1  {p.top1}% (published{', ' + p.note if p.note else ''})")
    print(f"  dropout {i.config.drop_rate}, drop path {i.config.drop_path_rate}")
    _print_weights(i.name)
    rows = i.config.stage_rows()
    if rows:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
        print("  " + "  ".join(c.ljust(widths[c]) for c in cols))
        for r in rows:
            print("  " + "  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))


def _cmd_export(args: argparse.Namespace) -> None:
    from .exporter import export, prepare_export
    from .runtimes import check_onnx

    batch = "dynamic" if args.batch == "dynamic" else _batch_arg(args.batch)
    model, spec = prepare_export(
        args.source, pretrained=args.pretrained, res=args.res, batch=batch, normalize=args.normalize,
        fused=args.fuse, weights=args.weights, dynamic_size=args.dynamic_size,
    )  # fmt: skip
    fmt = args.format or ("pt2" if args.out.endswith(".pt2") else "onnx")
    path = export(model, args.out, spec, fmt=fmt, opset=args.opset)
    size = f"dynamic size (example {spec.res} px)" if spec.dynamic_size else f"{spec.res} px"
    line = f"{spec.model} ({spec.weights}) -> {path}: {fmt}, {size}, batch {spec.batch}"
    line += ", fused" if spec.fused else ""
    line += ", normalization in the graph (input RGB in [0, 1])" if spec.normalize_in_graph else ""
    if fmt == "onnx" and args.check:
        line += f"; ONNX Runtime vs PyTorch fp32: max relative error {check_onnx(path, model, spec):.1e}"
    print(line)


def _batch_arg(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 4096:
        raise ValueError(f"--batch must be an integer in [1, 4096] or 'dynamic', got {text[:40]!r}")
    return int(text)


def _cmd_datasets(args: argparse.Namespace) -> None:
    from .data.catalog import DATASETS, cache_dir, cached, fetch

    for name in args.fetch:
        print(f"{name}: {fetch(name)}")
    print(f"named datasets (cache: {cache_dir()}; set CONVSCALE_DATASETS to move it)")
    for d in DATASETS.values():
        where = cached(d.name)
        state = f"cached at {where}" if where else f"{d.size / 1e6:,.0f} MB to download"
        print(f"  {d.name:16s} {d.train_images:>5d} train / {d.val_images:>4d} val  {state}")
        print(f"  {'':16s} {d.about}")


def _cmd_cache(args: argparse.Namespace) -> None:
    from .data import ImageFolder, resolve_data
    from .data.cache import build_cache, cache_folder

    root = resolve_data(args.data)
    if not root.is_dir():
        raise ValueError(f"{args.data}: no such folder (expected DATA/train/<class>/<images>, or DATA/<class>/...)")
    splits = [root / s for s in ("train", "val") if (root / s).is_dir()] or [root]
    for split in splits:
        ds = ImageFolder(split)
        folder = cache_folder(split, args.res, args.cache_dir)
        print(build_cache(ds, args.res, folder, workers=args.workers, progress=True).describe())


def _cmd_roadmap(args: argparse.Namespace) -> None:
    from .factory import count_model
    from .models.roadmap import ROADMAP

    print("ResNet-50 -> ConvNeXt-T, the ConvNeXt paper's modernization study (Table 10); GMACs at 224 px")
    print(f"{'model':30s} {'change':34s} {'params':>8s} {'GMACs':>6s} {'paper':>6s} {'top-1':>6s}")
    for step in ROADMAP:
        params, macs = count_model(step.name, (224,))
        change = step.change if step.on_path else f"({step.change}, side experiment)"
        print(
            f"{step.name:30s} {change:34s} {params / 1e6:7.2f}M {macs[224] / 1e9:6.2f} {step.gflops:6.2f} "
            f"{step.top1:6.2f}"
        )
    print("convscale counts the multiply-adds of convolutions and linear layers; the paper's counter, unnamed, adds")
    print("about 0.3 G from the BN -> LN step on, which LayerNorm's own arithmetic (about 0.01 G) does not explain")


def _cmd_signal(args: argparse.Namespace) -> None:
    from . import create_model
    from .extras import note_missing
    from .signal_propagation import plot_signal, signal_propagation, write_signal_csv

    if args.res < 32 or args.batch < 2:
        raise ValueError(f"--res must be >= 32 and --batch >= 2, got --res {args.res} --batch {args.batch}")
    rows = []
    for name in args.models:
        model = create_model(name, drop_path_rate=0.0, drop_rate=0.0)
        rows += signal_propagation(model, name=name, res=args.res, batch=args.batch, seed=args.seed)
    out = Path(args.out)
    write_signal_csv(out / "signal.csv", rows)
    written = [out / "signal.csv"]
    try:
        plot_signal(out / "signal.png", rows)
        written.append(out / "signal.png")
    except ImportError as e:
        note_missing(e, "signal.png")
    for name in args.models:
        mine = [r for r in rows if r.model == name]
        print(
            f"{name:24s} {len(mine):3d} blocks  variance {mine[0].var:.3g} -> {mine[-1].var:.3g}  "
            f"squared mean {mine[0].mean_sq:.3g} -> {mine[-1].mean_sq:.3g}"
        )
    print("wrote " + " and ".join(str(p) for p in written))


def _cmd_bench(args: argparse.Namespace) -> None:
    from . import bench

    if args.runtime:
        _bench_runtimes(args)
        return
    settings = bench.BenchSettings(
        res=args.res,
        batch=args.batch,
        mode=args.mode,
        dtype=args.dtype,
        channels_last=args.channels_last,
        compile=args.compile,
        fuse=args.fuse,
        device=args.device,
        per_layer=args.per_layer,
        compare=args.compare,
        warmup=args.warmup,
        min_iters=args.min_iters,
        min_time=args.min_time,
    )
    report = bench.run(args.models, settings, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(bench.format_table(report))
    if report.layers:
        print(bench.format_layers(report))
    if args.out:
        written = bench.write_report(report, Path(args.out))
        try:
            written += bench.plot_report(report, Path(args.out))
        except ImportError as e:
            from .extras import note_missing

            note_missing(e, "plots")
        print("wrote " + ", ".join(str(p) for p in written))


def _bench_runtimes(args: argparse.Namespace) -> None:
    from .bench.runtimes import bench_runtimes, format_runtimes, write_runtimes

    if args.device not in ("auto", "cpu") or args.mode != "infer" or args.dtype != "fp32":
        raise ValueError("--runtime compares inference runtimes on the CPU in fp32 (bf16 is a runtime: eager-bf16)")
    runtimes = [r.strip() for r in args.runtime.split(",") if r.strip()]
    rows = bench_runtimes(args.models, runtimes, res=args.res, batch=args.batch or 16, min_time=args.min_time)
    print(format_runtimes(rows))
    if args.out:
        print(f"wrote {write_runtimes(rows, Path(args.out))}")


def _cmd_train(args: argparse.Namespace) -> None:
    from .train import TrainingStopped, fit, load_config

    if args._res is not None:
        raise ValueError(
            "train has two image sizes: --train-res (training) and --test-res (evaluation); --res is the image size of "
            "eval, predict, export and deploy"
        )
    overrides = {k: getattr(args, k) for k in _train_flags() if getattr(args, k, None) is not None}
    if args.resume is not None and args.config is not None:
        raise ValueError(
            "--config does not go with --resume: a resumed run keeps its own config (flags may change "
            "what is safe to change)"
        )
    try:
        if args.resume is not None:
            result = fit(resume=args.resume, changes=overrides)
        else:
            cfg = load_config(args.config, **overrides)
            if args.check:
                import yaml

                print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
                return
            result = fit(cfg)
    except TrainingStopped as e:
        print(f"convscale: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    m = result.metrics
    best = max((v for k, v in m.items() if k.endswith("_top1") and not k.startswith("train")), default=None)
    line = f"done: {result.run_dir}" + (f"  (best val top-1 of the last epoch {best:.2f}%)" if best is not None else "")
    if m.get("skipped_total"):
        line += f"; {m['skipped_total']} training files skipped, listed in {result.run_dir / 'skipped.txt'}"
    print(line)


def _device(name: str):
    from .train.distributed import device_named

    return device_named(name)


@dataclass(frozen=True)
class _Source:
    """What eval and predict use: a trained run, or a model with published weights."""

    model: object
    classes: list[str]  # the label of each logit, readable
    folders: list[str] | None  # the class folder of each logit (a run's classes; ImageNet's WordNet ids)
    transform: Callable  # res or None -> the evaluation transform
    test_res: int
    crop_pct: float
    label: str
    data: str | None  # the run's data, the default of --data
    val_options: dict = field(default_factory=dict)  # how the run's synthetic val split was made


def _source(args: argparse.Namespace, device) -> _Source:
    if args.model is not None:
        return _published_source(args, device)
    if args.pretrained is not None:
        raise ValueError("--pretrained needs --model NAME (a run's own weights are given as RUN)")
    from .train import load_run
    from .weights import readable_class_names

    run = load_run(_run_path(args), weights=args.weights, device=device)
    p = run.policy
    label = f"{run.config.model} ({run.weights} weights)"
    classes = readable_class_names(run.classes)
    c = run.config
    return _Source(run.model, classes, run.classes, p.transform, p.test_res, p.crop_pct, label, c.data, c.val_options)


def _published_source(args: argparse.Namespace, device) -> _Source:
    from .factory import create_model

    if args.run is not None or args.checkpoint is not None:
        raise ValueError("give either a run (RUN or --checkpoint) or --model NAME --pretrained, not both")
    model = create_model(args.model, pretrained=True if args.pretrained is None else args.pretrained)
    w = model.pretrained_cfg
    if w is None:  # a local file: no published evaluation settings
        raise ValueError("--model with a local checkpoint: evaluate it as a run, or give a published tag")
    names = w.classes or [str(i) for i in range(w.num_classes)]
    crop = w.eval_crop_pct
    return _Source(model.to(device).eval(), names, w.folders, w.transforms, w.test_input_size, crop, w.name, None)


def _cmd_eval(args: argparse.Namespace) -> None:
    import torch

    from .data import EpochOrder, build_loader, make_val_dataset
    from .train import evaluate

    device = _device(args.device)
    src = _source(args, device)
    data = args.data or src.data
    if data is None:
        raise ValueError("--data DIR: a folder with val/<class>/ images, or a named dataset (convscale datasets)")
    if src.folders is None:
        raise ValueError(f"{src.label} has no class folder names to match {data}'s folders with")
    # the model's classes give the labels: a val folder with a class the model never saw is an error
    val, _ = make_val_dataset(data, classes=src.folders, **src.val_options)
    res = args.res or src.test_res
    order = EpochOrder(len(val), args.batch, shuffle=False)
    loader = build_loader(val, src.transform(res), order, workers=args.workers, pin_memory=device.type == "cuda")
    confusion = torch.zeros(len(src.classes), len(src.classes), dtype=torch.long)
    r = evaluate(src.model, loader, device, confusion=confusion)
    if r.count == 0:
        raise ValueError(f"no image of {data}'s val split decoded ({r.skipped} skipped)")
    m, skipped = r.metrics, f", {r.skipped} skipped: not images" if r.skipped else ""
    print(
        f"{src.label} on {data} val at {res} px (crop {src.crop_pct:g}): "
        f"top-1 {m['top1']:.2f}%  top-5 {m['top5']:.2f}%  loss {m['loss']:.4f}  ({r.count} images{skipped})"
    )
    _report_confusion(confusion, src.classes, args.confusion)


def _report_confusion(confusion, names: list[str], csv_path: str | None) -> None:
    """The most frequent mistakes by class name, and with ``csv_path`` the confusion matrix (rows: true class,
    columns: predicted; only the classes that occur) written atomically."""
    off = confusion.clone()
    off.fill_diagonal_(0)
    worst = [(int(n), int(i)) for n, i in zip(*off.flatten().topk(min(5, off.numel())), strict=True) if n > 0]
    if worst:
        side = confusion.shape[1]
        print("most confused: " + ", ".join(f"{names[i // side]} as {names[i % side]} ({n})" for n, i in worst))
    if csv_path is None:
        return
    import csv
    import io

    from .atomic import atomic_write_text

    used = sorted(
        set(confusion.sum(1).nonzero().flatten().tolist()) | set(confusion.sum(0).nonzero().flatten().tolist())
    )
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["true \\ predicted", *(names[j] for j in used)])
    for i in used:
        writer.writerow([names[i], *(int(confusion[i, j]) for j in used)])
    atomic_write_text(csv_path, buf.getvalue())
    print(f"confusion matrix: {csv_path}")


def _cmd_predict(args: argparse.Namespace) -> None:
    import torch

    from .data import DECODE_ERRORS, load_rgb

    device = _device(args.device)
    images = _image_paths(args.images)
    src = _source(args, device)
    transform = src.transform(args.res)
    read = 0
    for path in images:
        try:
            x = transform(load_rgb(path))[None].to(device)
        except DECODE_ERRORS as e:
            print(f"{path}: cannot read as an image ({str(e)[:200]})", file=sys.stderr)
            continue
        read += 1
        with torch.no_grad():
            probs = src.model(x).float().softmax(1)[0].cpu()
        top = probs.topk(min(5, len(src.classes)))
        pairs = zip(top.values.tolist(), top.indices.tolist(), strict=True)
        print(f"{path}: " + ", ".join(f"{src.classes[i]} {100 * p:.1f}%" for p, i in pairs))
    if read == 0:
        raise ValueError(f"none of the {len(images)} images could be read")


def _image_paths(args: list[str]) -> list[str]:
    """The files to predict: each file as given; a folder gives every image file in it (by suffix, its sub-folders
    too), sorted. A path that does not exist, or a folder without images, is a ValueError."""
    from .data.folder import IMAGE_SUFFIXES

    paths: list[str] = []
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))  # fmt: skip
            if not found:
                raise ValueError(f"{arg}: a folder without image files ({', '.join(IMAGE_SUFFIXES)})")
            paths += found
        elif p.exists():
            paths.append(arg)
        else:
            raise ValueError(f"{arg}: no such file or folder")
    return paths


def _run_path(args: argparse.Namespace) -> str:
    path = args.run or args.checkpoint
    if path is None:
        raise ValueError("which run? give its folder (RUN) or --checkpoint RUN/checkpoints/last.safetensors")
    return path


def _train_flags() -> dict[str, type]:
    """Every TrainConfig key is a flag of `convscale train` (``batch_size`` -> ``--batch-size``): name -> type."""
    import dataclasses

    from .train.config import TrainConfig

    kinds = {"int": int, "float": float, "str": str, "bool": bool}
    return {f.name: kinds[str(f.type).split(" |")[0]] for f in dataclasses.fields(TrainConfig)}


def _bounded(kind: type, lo: float, hi: float):
    """An argparse type: ``kind`` in ``[lo, hi]``, checked by the config's own rule (finite numbers only); anything
    else is a usage error naming what was expected."""
    from .train.config import integer, number

    check = integer(lo, hi) if kind is int else number(lo, hi)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        expected = check(value) if value is not None else f"{'an integer' if kind is int else 'a number'}"
        if expected is not None:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text[:40]!r}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (``convscale bench: error: ...``), exit status 2, like every other error. No flag
    may be abbreviated (``train --res`` was read as ``--resume``): every command, sub-command and flag is spelled
    out."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_models(sub) -> None:
    p = sub.add_parser("list", help="list registered models: params, resolutions, GMACs, published top-1")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'efficientnetv2*'")
    p.add_argument("--all", action="store_true", help="include the tiny test variants")
    p.add_argument("--pretrained", action="store_true", help="list the published weights (model.tag) instead")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("datasets", help="the datasets known by name, and which are in the cache; NAME downloads one")
    p.add_argument("fetch", nargs="*", metavar="NAME", help="download (and extract) these into the cache")
    p.set_defaults(func=_cmd_datasets)
    p = sub.add_parser(
        "cache", help="decode an ImageFolder's images once into the memory-mapped cache training reads (--cache-res)"
    )
    p.add_argument("data", metavar="DATA", help="a folder with train/ and val/ (each cached), a split, or a name")
    p.add_argument("--res", type=_bounded(int, 16, 4096), required=True, help="shorter side at most this many px")
    p.add_argument("--cache-dir", help="where caches live (default ~/.cache/convscale/images)")
    p.add_argument("--workers", type=_bounded(int, 0, 256), default=2, help="decoding processes [2]")
    p.set_defaults(func=_cmd_cache)
    p = sub.add_parser("info", help="one model: params, GMACs, resolutions, published numbers, stage table")
    p.add_argument("name")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser(
        "roadmap", help="the ResNet-50 -> ConvNeXt-T study: each step's params and GMACs beside the paper's"
    )
    p.set_defaults(func=_cmd_roadmap)
    p = sub.add_parser("signal", help="signal propagation plots at initialization (PNG and CSV), models side by side")
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="signal", help="output folder (default: ./signal)")
    p.set_defaults(func=_cmd_signal)


def _add_bench(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="measured speed beside FLOPs: throughput, latency, memory, memory-access cost, time per layer kind",
        description="Benchmark registered models on this machine. Timing is interleaved between contenders; achieved "
        "GMAC/s is compared with a matmul peak measured in the same run, in the same dtype.",
    )
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--res", type=int, help="input size (default: each model's test resolution)")
    p.add_argument("--batch", type=int, help="batch size (default: 256 on CUDA, 16 elsewhere)")
    p.add_argument("--mode", default="infer", choices=("infer", "train", "both"))
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--compile", action="store_true", help="torch.compile the models (per-layer stays eager)")
    p.add_argument("--fuse", action="store_true", help="measure the deploy.fuse form (inference)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--per-layer", action="store_true", help="forward time per layer kind and per stage")
    p.add_argument("--compare", choices=("timm",), help="time timm's model of the same name, interleaved")
    p.add_argument("--runtime", help="compare runtimes instead, e.g. eager,compile,onnxruntime (fused models, CPU)")
    p.add_argument("--warmup", type=_bounded(int, 0, 10_000), default=3, help="untimed calls first (default 3)")
    p.add_argument("--min-iters", type=_bounded(int, 1, 1_000_000), default=10, help="timed calls at least (10)")
    p.add_argument("--min-time", type=_bounded(float, 0, 86_400), default=2.0, help="seconds of timed calls (2)")
    p.add_argument("--out", help="folder for bench.csv, bench.json, bench_layers.csv and the plots")
    p.set_defaults(func=_cmd_bench)


def _add_train(sub) -> None:
    import dataclasses

    from .train.config import TrainConfig, field_help, list_recipes

    p = sub.add_parser(
        "train",
        help="train a model on synthetic-shapes (default) or an ImageFolder (train/ and val/)",
        description="Train; with no arguments, the default small model on the built-in synthetic-shapes dataset. "
        "Settings come from the defaults, then --config recipe.yaml, then these flags.",
    )
    p.add_argument(
        "--config",
        "--recipe",
        dest="config",
        help=f"a shipped recipe by name ({', '.join(list_recipes())}) or a YAML file of config keys; flags override "
        "it, and its learning rate and warm-up adapt to your batch size and epochs",
    )
    p.add_argument("--check", action="store_true", help="validate the configuration, print it, and exit")
    p.add_argument("--resume", help="a run folder to continue exactly where it stopped, with its own config")
    p.add_argument("--res", dest="_res", help=argparse.SUPPRESS)  # the other commands' image size: refused by name
    docs, defaults = field_help(), {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for flag, kind in _train_flags().items():
        name = "--" + flag.replace("_", "-")
        text = docs[flag] + (f" [{defaults[flag]}]" if defaults[flag] is not None else "")
        if flag == "pretrained":  # --pretrained alone: the default tag
            p.add_argument(name, dest=flag, nargs="?", const=True, metavar="TAG", help=text)
        elif kind is bool:
            p.add_argument(name, dest=flag, action=argparse.BooleanOptionalAction, help=text)
        else:
            p.add_argument(name, dest=flag, type=kind, help=text, metavar=kind.__name__.upper())
    p.set_defaults(func=_cmd_train)


def _add_use(sub) -> None:
    from .train.config import MAX_RES

    for cmd, text in (
        ("eval", "top-1/top-5 of a run or of published weights on a validation split, with their own transform"),
        ("predict", "the top-5 labels of images, from a trained run or published weights"),
    ):
        p = sub.add_parser(cmd, help=text)
        if cmd == "eval":
            p.add_argument("run", nargs="?", metavar="RUN", help="the run folder")
        else:
            p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or folders (every image in them)")
            p.set_defaults(run=None)
        p.add_argument("--checkpoint", "--run", dest="checkpoint", help="the run folder or its checkpoint file")
        p.add_argument("--model", help="a registered model, with its published weights (instead of a run)")
        p.add_argument(
            "--pretrained",
            nargs="?",
            const=True,
            metavar="TAG",
            help="with --model: its published weights (default tag; or a tag, model.tag, hf-hub:org/repo)",
        )
        p.add_argument("--res", type=_bounded(int, 32, MAX_RES), help="image size (default: the run's test size)")
        p.add_argument("--weights", choices=("auto", "ema", "model"), default="auto", help="auto: EMA when saved")
        p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"), help="auto: CUDA if present")
        if cmd == "eval":
            p.add_argument(
                "--data", help="a folder with val/, a named dataset or synthetic-shapes (default: the run's data)"
            )
            p.add_argument("--batch", type=_bounded(int, 1, 1 << 16), default=64, help="images per batch [64]")
            p.add_argument("--workers", type=_bounded(int, 0, 256), default=2, help="loader processes [2]")
            p.add_argument("--confusion", metavar="CSV", help="also write the confusion matrix (class names) here")
        p.set_defaults(func=_cmd_eval if cmd == "eval" else _cmd_predict)


def _add_export(sub) -> None:
    from .exporter import FORMATS, OPSETS

    p = sub.add_parser(
        "export",
        help="export a model or a run to ONNX or .pt2 (fused, with its preprocessing recorded in the file)",
    )
    p.add_argument("source", metavar="MODEL|RUN", help="a registered model (with --pretrained) or a run folder")
    p.add_argument("--out", required=True, help="the file to write (.onnx or .pt2)")
    p.add_argument("--format", choices=FORMATS, help="default: from the file's suffix (.pt2), else onnx")
    p.add_argument("--pretrained", nargs="?", const=True, metavar="TAG", help="a model's published weights")
    p.add_argument("--weights", choices=("auto", "ema", "model"), default="auto", help="a run's weights [auto]")
    p.add_argument("--res", type=_bounded(int, 32, 4096), help="image size (default: the test size)")
    p.add_argument("--batch", default="1", help="batch size, or 'dynamic' [1]")
    p.add_argument("--dynamic-size", action="store_true", help="height and width dynamic (--res: the example size)")
    p.add_argument("--fuse", action=argparse.BooleanOptionalAction, default=True, help="the deploy.fuse form [on]")
    p.add_argument("--normalize", action="store_true", help="bake the normalization in: input RGB in [0, 1]")
    p.add_argument("--opset", type=int, default=18, help=f"ONNX opset, {OPSETS[0]}-{OPSETS[-1]} [18]")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="run the ONNX file in ONNX Runtime and compare with PyTorch [on]")  # fmt: skip
    p.set_defaults(func=_cmd_export)


def _cmd_deploy(args: argparse.Namespace) -> None:
    from .deploy import deploy_model

    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    r = deploy_model(
        args.source, args.out, pretrained=args.pretrained, weights=args.weights, res=args.res, batch=args.batch,
        runtimes=runtimes, tolerance=args.tolerance, val=args.val, max_top1_drop=args.max_top1_drop,
        int8=args.int8, calibrate=args.calibrate, min_time=args.min_time, force=args.force,
    )  # fmt: skip
    print(f"{'runtime':16s} {'ms/batch':>9s} {'img/s':>8s} {'max rel err':>11s} {'top-1':>6s}  kept")
    for c in r["candidates"]:
        top1 = f"{c['top1']:.2f}" if c["top1"] is not None else "-"
        line = f"{c['runtime']:16s} {c['median_ms']:9.2f} {c['img_s']:8.1f} {c['max_rel_error']:11.1e} {top1:>6s}"
        print(line + ("  yes" if c["kept"] else "  no") + (f" ({c['note']})" if c["note"] else ""))
    print(f"chosen: {r['choice']} -> {Path(args.out) / r['file']} (batch {r['batch']}, {r['res']} px)")
    if "int8" in r:
        q = r["int8"]
        top = f"; top-1 {q['top1_fp32']:.2f} -> {q['top1_int8']:.2f}" if q["top1_int8"] is not None else ""
        print(f"int8: {q['file']}, {q['speedup_vs_fp32_onnx']:.2f}x the fp32 ONNX model{top}")
    print(f"wrote {', '.join(r['written'])} in {args.out}")


def _add_deploy(sub) -> None:
    from .runtimes import RUNTIMES

    p = sub.add_parser("deploy", help="measure every runtime on this machine and write the fastest correct form")
    p.add_argument("source", metavar="MODEL|RUN", help="a registered model (with --pretrained) or a run folder")
    p.add_argument("--out", required=True, help="the folder to write the model and its report into")
    p.add_argument("--pretrained", nargs="?", const=True, metavar="TAG", help="a model's published weights")
    p.add_argument("--weights", choices=("auto", "ema", "model"), default="auto", help="a run's weights [auto]")
    p.add_argument("--res", type=_bounded(int, 32, 4096), help="image size (default: the test size)")
    p.add_argument("--batch", type=_bounded(int, 1, 4096), default=16, help="the batch to optimize for [16]")
    p.add_argument("--runtimes", default=",".join(RUNTIMES), help=f"which to try [{','.join(RUNTIMES)}]")
    p.add_argument("--tolerance", type=_bounded(float, 0, 1), default=2e-2, help="max relative error vs fp32")
    p.add_argument("--val", help="score each runtime's top-1 here (default: a run's own data)")
    p.add_argument("--max-top1-drop", type=_bounded(float, 0, 100), default=0.5, help="points of top-1 [0.5]")
    p.add_argument("--int8", action="store_true", help="also an int8 ONNX model (ONNX Runtime, QDQ)")
    p.add_argument("--calibrate", help="int8 calibration images: a folder (default: a run's own training data)")
    p.add_argument("--min-time", type=_bounded(float, 0, 3600), default=2.0, help="seconds of timing each [2]")
    p.add_argument("--force", action="store_true", help="replace the deployed model --out already holds")
    p.set_defaults(func=_cmd_deploy)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="convscale", description="Efficient ConvNets, exact to their papers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_models(sub)
    _add_bench(sub)
    _add_train(sub)
    _add_use(sub)
    _add_export(sub)
    _add_deploy(sub)
    from .search.cli import add_search

    add_search(sub, _bounded)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage errors (one line, status 2) and --help (status 0)
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    try:
        args.func(args)
    except BrokenPipeError:  # `convscale list | head`: the reader left; not an error of ours (an OSError too)
        sys.stderr.close()
    except (ValueError, TypeError, OSError, ImportError) as e:
        print(f"convscale: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convscale: interrupted", file=sys.stderr)
        return 130
    return 0


def entry() -> NoReturn:
    """The ``convscale`` command: :func:`main`, then Ctrl-C ignored while the interpreter exits (a KeyboardInterrupt
    there would end the process by the signal, with no message and status -2, after its work was done)."""
    import signal

    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    entry()
