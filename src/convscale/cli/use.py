"""``convscale eval`` and ``predict``: :func:`convscale.evaluate` and :func:`convscale.predict`, printed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .args import SOURCE_HELP, add_device, add_weights, bounded

__all__ = ["add"]


def source_of(args: argparse.Namespace) -> tuple[str, object]:
    """(source, pretrained) from SOURCE, ``--run``/``--checkpoint`` or ``--model``: exactly one of them. ``--model
    NAME`` alone keeps its meaning, the model's published weights (its default tag)."""
    given = [s for s in (getattr(args, "source", None), args.checkpoint, args.model) if s is not None]
    if len(given) != 1:
        if given:
            raise ValueError(f"give one model, not both: {given[0]} and {given[1]}")
        raise ValueError(f"which model? give one SOURCE ({SOURCE_HELP})")
    pretrained = args.pretrained
    if args.model is not None and pretrained is None and "." not in args.model and ":" not in args.model:
        from ..source import looks_like_path

        pretrained = None if looks_like_path(args.model) else True
    return given[0], pretrained


def _cmd_eval(args: argparse.Namespace) -> None:
    from ..inference import evaluate
    from ..utils.atomic import atomic_write_text

    source, pretrained = source_of(args)
    r = evaluate(
        source, args.data, res=args.res, batch=args.batch, workers=args.workers, device=args.device,
        weights=args.weights, pretrained=pretrained,
    )  # fmt: skip
    skipped = f", {r.skipped} skipped" if r.skipped else ""
    print(
        f"{r.source} on {r.data} val at {r.res} px (crop {r.crop_pct:g}): "
        f"top-1 {r.top1:.2f}%  top-5 {r.top5:.2f}%  loss {r.loss:.4f}  ({r.count} of {r.expected} images{skipped})"
    )
    if r.shortfall():
        print(f"convscale: warning: {r.shortfall()}", file=sys.stderr)
    worst = r.most_confused(5)
    if worst:
        print("most confused: " + ", ".join(f"{t} as {p} ({n})" for t, p, n in worst))
    if args.confusion is not None:
        atomic_write_text(args.confusion, r.confusion_csv())
        print(f"confusion matrix: {args.confusion}")


def _leading_source(args: argparse.Namespace) -> None:
    """``predict SOURCE IMAGE...``: with no ``--model``/``--run``, a first argument that is a deployed folder, a run
    folder or checkpoint, or a model name (not an image or a folder of images) is the source."""
    from ..deployed import is_deployed
    from ..weights.files import RUN_CHECKPOINT

    if args.model is not None or args.checkpoint is not None or len(args.images) < 2:
        return
    first = Path(args.images[0]).expanduser()
    checkpoint = first.is_file() and first.parent.name == RUN_CHECKPOINT.parent.name
    if is_deployed(first) or (first / RUN_CHECKPOINT).is_file() or checkpoint:
        args.checkpoint, args.images = args.images[0], args.images[1:]  # a folder or file: it holds its own weights
        return
    if not first.exists():
        from ..source import check

        try:
            check(args.images[0])
        except ValueError:
            return  # not a model name either: left to the image check's message
        args.model, args.images = args.images[0], args.images[1:]


def _cmd_predict(args: argparse.Namespace) -> None:
    from ..inference import predict

    _leading_source(args)
    source, pretrained = source_of(args)
    found = predict(source, args.images, res=args.res, device=args.device, weights=args.weights, pretrained=pretrained)
    for p in found:
        if p.error:
            print(f"{p.path}: {p.error}", file=sys.stderr)
        else:
            print(f"{p.path}: " + ", ".join(f"{label} {100 * prob:.1f}%" for label, prob in p.top))
    if all(p.error for p in found):
        raise ValueError(f"none of the {len(found)} images could be read")


def add(sub) -> None:
    from ..runs.settings import MAX_RES

    for cmd, text in (
        ("eval", "top-1/top-5 of a model on a validation split, with its own transform"),
        ("predict", "the top-5 labels of images, from a deployed folder, a trained run or published weights"),
    ):
        p = sub.add_parser(cmd, help=text)
        if cmd == "eval":
            p.add_argument("source", nargs="?", metavar="SOURCE", help=SOURCE_HELP)
        else:
            p.add_argument(
                "images", nargs="+", metavar="IMAGE",
                help="image files, or folders (every image in them); a first SOURCE (a deployed folder, a run, a "
                "model) may come before them instead of --model/--run",
            )  # fmt: skip
        p.add_argument("--checkpoint", "--run", dest="checkpoint", help="the run folder or its checkpoint file")
        p.add_argument("--model", help="the source as a flag; a MODEL name alone means its published weights")
        add_weights(p)
        p.add_argument("--res", type=bounded(int, 32, MAX_RES), help="image size (default: the model's test size)")
        add_device(p)
        if cmd == "eval":
            p.add_argument(
                "--data", help="a folder with val/, a named dataset or synthetic-shapes (default: the run's data)"
            )
            p.add_argument("--batch", type=bounded(int, 1, 1 << 16), default=64, help="images per batch [64]")
            p.add_argument("--workers", type=bounded(int, 0, 256), default=2, help="loader processes [2]")
            p.add_argument("--confusion", metavar="CSV", help="also write the confusion matrix (class names) here")
        p.set_defaults(func=_cmd_eval if cmd == "eval" else _cmd_predict)
