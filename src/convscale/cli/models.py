"""``convscale list``, ``info``, ``datasets``, ``cache``, ``roadmap`` and ``signal``: what the library has."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import bounded

__all__ = ["add"]


def _cmd_list(args: argparse.Namespace) -> None:
    from ..factory import count_model
    from ..registry import get_entry, list_models

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
    from ..weights.table import default_tag, get_weights, list_pretrained

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
    from ..weights.table import default_tag, weights_for

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
    from .. import model_info

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


def _cmd_datasets(args: argparse.Namespace) -> None:
    from ..data.catalog import DATASETS, cache_dir, cached, fetch

    for name in args.fetch:
        print(f"{name}: {fetch(name)}")
    print(f"named datasets (cache: {cache_dir()}; set CONVSCALE_DATASETS to move it)")
    for d in DATASETS.values():
        where = cached(d.name)
        state = f"cached at {where}" if where else f"{d.size / 1e6:,.0f} MB to download"
        print(f"  {d.name:16s} {d.train_images:>5d} train / {d.val_images:>4d} val  {state}")
        print(f"  {'':16s} {d.about}")


def _cmd_cache(args: argparse.Namespace) -> None:
    from ..data import ImageFolder, resolve_data
    from ..data.cache import build_cache, cache_folder

    root = resolve_data(args.data)
    if not root.is_dir():
        raise ValueError(f"{args.data}: no such folder (expected DATA/train/<class>/<images>, or DATA/<class>/...)")
    splits = [root / s for s in ("train", "val") if (root / s).is_dir()] or [root]
    for split in splits:
        ds = ImageFolder(split)
        folder = cache_folder(split, args.res, args.cache_dir)
        print(build_cache(ds, args.res, folder, workers=args.workers, progress=True).describe())


def _cmd_shards(args: argparse.Namespace) -> None:
    from ..data.shards.write import ShardSettings, parse_size, write_shards

    settings = ShardSettings(parse_size(args.shard_size), args.res, args.quality, args.seed)
    info = write_shards(args.data, args.out, settings, workers=args.workers)
    for name, split in info["splits"].items():
        skipped = info["convscale"]["skipped"][name]
        print(
            f"{name}: {split['num_samples']} samples in {len(split['filenames'])} shards"
            + (f"; {skipped} files did not decode and were left out" if skipped else "")
        )
    print(f"wrote {args.out}/_info.json; train with --data wds:{args.out}")


def _cmd_roadmap(args: argparse.Namespace) -> None:
    from ..factory import count_model
    from ..models.roadmap import ROADMAP

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
    from .. import create_model
    from ..bench.signal_propagation import plot_signal, signal_propagation, write_signal_csv
    from ..utils.extras import note_missing

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


def add(sub) -> None:
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
    p.add_argument("--res", type=bounded(int, 16, 4096), required=True, help="shorter side at most this many px")
    p.add_argument("--cache-dir", help="where caches live (default ~/.cache/convscale/images)")
    p.add_argument("--workers", type=bounded(int, 0, 256), default=2, help="decoding processes [2]")
    p.set_defaults(func=_cmd_cache)
    p = sub.add_parser(
        "shards", help="write an ImageFolder (or a dataset by name) as tar shards in timm's WebDataset layout"
    )
    p.add_argument("data", metavar="DATA", help="a folder with train/ (and val/), or a dataset by name")
    p.add_argument("--out", required=True, help="the folder for the shards and their _info.json")
    p.add_argument("--shard-size", default="256MB", help="bytes per shard, about (256MB, 1GiB, ...) [256MB]")
    p.add_argument("--res", type=bounded(int, 16, 16384), help="re-encode as JPEG, shorter side at most N px")
    p.add_argument("--quality", type=bounded(int, 1, 100), default=90, help="JPEG quality with --res [90]")
    p.add_argument("--seed", type=bounded(int, 0, 2**63 - 1), default=0, help="seed of the samples' order [0]")
    p.add_argument("--workers", type=bounded(int, 0, 256), default=2, help="encoding processes [2]")
    p.set_defaults(func=_cmd_shards)
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
