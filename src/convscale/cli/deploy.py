"""``convscale export`` and ``deploy``: a model in the runtimes users deploy on."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import SOURCE_HELP, add_weights, bounded, split_list

__all__ = ["add_deploy", "add_export"]


def _cmd_export(args: argparse.Namespace) -> None:
    from ..deploy.exporter import export, prepare_export
    from ..deploy.runtimes import check_onnx

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


def _cmd_deploy(args: argparse.Namespace) -> None:
    from ..deploy import deploy_model

    runtimes = split_list(args.runtimes)
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


def add_export(sub) -> None:
    from ..deploy.exporter import FORMATS, OPSETS

    p = sub.add_parser(
        "export",
        help="export a model or a run to ONNX or .pt2 (fused, with its preprocessing recorded in the file)",
    )
    p.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
    p.add_argument("--out", required=True, help="the file to write (.onnx or .pt2)")
    p.add_argument("--format", choices=FORMATS, help="default: from the file's suffix (.pt2), else onnx")
    add_weights(p)
    p.add_argument("--res", type=bounded(int, 32, 4096), help="image size (default: the test size)")
    p.add_argument("--batch", default="1", help="batch size, or 'dynamic' [1]")
    p.add_argument("--dynamic-size", action="store_true", help="height and width dynamic (--res: the example size)")
    p.add_argument("--fuse", action=argparse.BooleanOptionalAction, default=True, help="the deploy.fuse form [on]")
    p.add_argument("--normalize", action="store_true", help="bake the normalization in: input RGB in [0, 1]")
    p.add_argument("--opset", type=int, default=18, help=f"ONNX opset, {OPSETS[0]}-{OPSETS[-1]} [18]")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="run the ONNX file in ONNX Runtime and compare with PyTorch [on]")  # fmt: skip
    p.set_defaults(func=_cmd_export)


def add_deploy(sub) -> None:
    from ..deploy.runtimes import RUNTIMES

    p = sub.add_parser("deploy", help="measure every runtime on this machine and write the fastest correct form")
    p.add_argument("source", metavar="SOURCE", help=SOURCE_HELP)
    p.add_argument("--out", required=True, help="the folder to write the model and its report into")
    add_weights(p)
    p.add_argument("--res", type=bounded(int, 32, 4096), help="image size (default: the test size)")
    p.add_argument("--batch", type=bounded(int, 1, 4096), default=16, help="the batch to optimize for [16]")
    p.add_argument("--runtimes", default=",".join(RUNTIMES), help=f"which to try [{','.join(RUNTIMES)}]")
    p.add_argument("--tolerance", type=bounded(float, 0, 1), default=2e-2, help="max relative error vs fp32")
    p.add_argument("--val", help="score each runtime's top-1 here (default: a run's own data)")
    p.add_argument("--max-top1-drop", type=bounded(float, 0, 100), default=0.5, help="points of top-1 [0.5]")
    p.add_argument("--int8", action="store_true", help="also an int8 ONNX model (ONNX Runtime, QDQ)")
    p.add_argument("--calibrate", help="int8 calibration images: a folder (default: a run's own training data)")
    p.add_argument("--min-time", type=bounded(float, 0, 3600), default=2.0, help="seconds of timing each [2]")
    p.add_argument("--force", action="store_true", help="replace the deployed model --out already holds")
    p.set_defaults(func=_cmd_deploy)
