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
    from ..deploy.quantize import QuantSettings

    settings = QuantSettings(
        per_channel=not args.per_tensor, symmetric_activations=args.symmetric_activations,
        keep=tuple(split_list(args.int8_keep)) if args.int8_keep else (), keep_ends=args.int8_keep_ends,
    )  # fmt: skip
    r = deploy_model(
        args.source, args.out, pretrained=args.pretrained, weights=args.weights, res=args.res, batch=args.batch,
        runtimes=split_list(args.runtimes), tolerance=args.tolerance, val=args.val, max_top1_drop=args.max_top1_drop,
        int8=args.int8, calibrate=args.calibrate, calibration_images=args.calibration_images, settings=settings,
        min_time=args.min_time, force=args.force,
    )  # fmt: skip
    m = r["machine"]
    print(f"{m['cpu']}, {m['threads']} threads, {' '.join(m['isa']) or 'no AVX2'}; peaks (GMAC/s) {r['peaks_gmac_s']}")
    print(f"{'runtime':19s} {'precision':9s} {'ms/batch':>9s} {'img/s':>8s} {'%peak':>6s} {'max rel err':>11s} "
          f"{'top-1':>6s} {'agree':>6s}  kept")  # fmt: skip
    for c in r["candidates"]:
        print(_candidate_line(c))
    where = Path(args.out) / r["file"]
    print(f"chosen: {r['choice']} ({r['precision']}) -> {where} (batch {r['batch']}, {r['res']} px)")
    if r["settings"]:
        print(f"  {r['settings']}")
    if "sensitivity" in r:
        s = r["sensitivity"]
        print(f"int8 sensitivity: kept {', '.join(s['kept']) or 'none'}; top-1 drop {s['top1_drop_with_kept']:.2f}")
    if "int8" in r:
        q = r["int8"]
        top = f"; top-1 {q['top1_fp32']:.2f} -> {q['top1_int8']:.2f}" if q["top1_int8"] is not None else ""
        print(f"int8: {q['file']}, {q['speedup_vs_fp32_onnx']:.2f}x the fp32 ONNX model{top}")
    print(f"wrote {', '.join(r['written'])} in {args.out}")


def _candidate_line(c: dict) -> str:
    def num(v, fmt: str) -> str:
        return "-" if v is None or v != v else format(v, fmt)

    peak = num(None if c["peak_fraction"] is None else 100 * c["peak_fraction"], ".1f")
    line = f"{c['runtime']:19s} {c['precision']:9s} {num(c['median_ms'], '9.2f'):>9s} {num(c['img_s'], '.1f'):>8s} "
    line += f"{peak:>6s} {num(c['max_rel_error'], '.1e'):>11s} {num(c['top1'], '.2f'):>6s} "
    line += f"{num(c['agreement'], '.1f'):>6s}"
    why = c["note"] or c["rejected"]
    return line + ("  yes" if c["kept"] else "  no") + (f" ({why})" if why else "")


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
    p.add_argument("--max-top1-drop", type=bounded(float, 0, 100),
                   help="points of top-1 a form may lose against fp32 [1.0 for int8, 0.5 otherwise]")  # fmt: skip
    p.add_argument("--int8", action="store_true", help="also an int8 ONNX model beside the chosen form")
    p.add_argument("--calibrate", help="int8 calibration images: a folder or a dataset name (default: a run's own)")
    p.add_argument("--calibration-images", type=bounded(int, 1, 100_000), default=300, help="how many [300]")
    p.add_argument("--per-tensor", action="store_true", help="int8 weights per tensor, not per channel")
    p.add_argument("--symmetric-activations", action="store_true", help="int8 activations symmetric")
    keep = "modules left in higher precision, by name (comma-separated), or 'auto': the fewest of the most sensitive"
    p.add_argument("--int8-keep", help=keep + " blocks that keep int8 within the guard (writes sensitivity.csv)")
    p.add_argument("--int8-keep-ends", action="store_true", help="the first conv and the classifier too")
    p.add_argument("--min-time", type=bounded(float, 0, 3600), default=2.0, help="seconds of timing each [2]")
    p.add_argument("--force", action="store_true", help="replace the deployed model --out already holds")
    p.set_defaults(func=_cmd_deploy)
