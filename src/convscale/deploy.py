"""Deploying a trained model: its inference form (:func:`fuse`, in ``fuse.py``) and the fastest correct way to run
that form on this machine (:func:`optimize`): every runtime this device has (``runtimes.py``: eager, bf16,
``torch.compile`` with weight freezing, ONNX Runtime) is tried, checked against fp32, timed interleaved, and the
fastest that stays within the tolerance is kept — the user's hardware decides, measured, not assumed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .fuse import fuse
from .runtimes import RUNTIMES, Runner, build_runner, check_runtimes, max_rel_error, time_runners

__all__ = ["Candidate", "Optimized", "deploy_model", "fuse", "optimize", "top1_on"]


@dataclass(frozen=True)
class Candidate:
    """One runtime's result in :func:`optimize`: its speed at the example's batch, its error against fp32, and
    (with a validation callable) its top-1."""

    runtime: str
    median_ms: float
    img_s: float
    max_rel_error: float
    top1: float | None
    kept: bool  # within the tolerance (and the top-1 allowance)
    note: str = ""


@dataclass
class Optimized:
    """The fastest correct form: ``runner`` (a callable on float32 batches), its name, every candidate measured."""

    choice: str
    runner: Runner
    fused: nn.Module
    candidates: list[Candidate]


def optimize(
    model: nn.Module,
    example: torch.Tensor,
    *,
    device: str | torch.device = "cpu",
    runtimes: Sequence[str] = RUNTIMES,
    tolerance: float = 2e-2,
    top1: Callable[[Callable[[torch.Tensor], torch.Tensor]], float] | None = None,
    max_top1_drop: float = 0.5,
    min_time: float = 2.0,
) -> Optimized:
    """Try every runtime this device has on ``model`` (fused first), keep those whose logits on ``example`` stay
    within ``tolerance`` (max relative error) of the fused model in fp32 — and, when ``top1`` (a function scoring a
    runner on a validation set, in %) is given, whose top-1 is at most ``max_top1_drop`` points below fp32's — and
    return the fastest of them, timed interleaved at ``example``'s batch. Eager fp32 is always a candidate, so there
    is always an answer."""
    check_runtimes(runtimes)  # a typo is an error, not a runtime "unavailable here"
    device = torch.device(device)
    fused = fuse(model.eval()).to(device)
    x = example.to(device)
    runners: dict[str, Runner] = {}
    notes: dict[str, str] = {}
    for name in dict.fromkeys(("eager", *runtimes)):
        try:
            runner = build_runner(name, fused, x, device)
        except (ImportError, ValueError, RuntimeError) as e:  # not installed, or the export refused: say so
            notes[name], runner = str(e).splitlines()[0][:200], None
        if runner is not None:
            runners[name] = runner
        elif name not in notes:
            notes[name] = "not available on this device"
    with torch.inference_mode():
        want = fused(x.contiguous(memory_format=torch.channels_last)).float()
    errors = {}
    for name, runner in list(runners.items()):
        try:  # torch.compile compiles at the first call: a backend failure shows here
            errors[name] = max_rel_error(runner.fn(x), want)
        except Exception as e:
            notes[name] = f"failed: {str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__}"
            del runners[name]
    scores = {k: top1(r.fn) for k, r in runners.items()} if top1 is not None else {}
    timings = time_runners(runners, x, device, min_time=min_time)
    base = scores.get("eager")
    candidates = []
    for k in runners:
        ok = errors[k] <= tolerance and (base is None or scores[k] >= base - max_top1_drop)
        t = timings[k].median
        candidates.append(Candidate(k, round(t * 1e3, 3), round(len(x) / t, 2), errors[k], scores.get(k), ok))
    candidates += [Candidate(k, float("nan"), 0.0, float("nan"), None, False, note) for k, note in notes.items()]
    best = min((c for c in candidates if c.kept), key=lambda c: c.median_ms)
    return Optimized(best.runtime, runners[best.runtime], fused, candidates)


@dataclass(frozen=True)
class _Data:
    """How a model's images are read: its evaluation transform, and its label folders."""

    transform: Callable
    folders: list[str] | None
    options: dict  # a run's synthetic-shapes settings (seed, sizes)
    default: str | None  # the run's own data


def _data_of(source: str, spec, weights: str) -> _Data:
    from pathlib import Path

    from .data.transforms import EvalTransform

    t = EvalTransform(spec.res, spec.crop_pct, spec.interpolation, spec.mean, spec.std, spec.crop_mode)
    if Path(source).exists():
        from .train import read_checkpoint
        from .train.run import RunFolder

        ckpt = read_checkpoint(RunFolder.of(source).checkpoint)
        return _Data(t, list(ckpt.classes), ckpt.config_obj.val_options, ckpt.config_obj.data)
    from .weights import imagenet_folders

    imagenet = spec.classes is not None and spec.num_classes == 1000
    return _Data(t, imagenet_folders() if imagenet else None, {}, None)


def _batches(data: str, d: _Data, batch: int, split: str, limit: int | None = None):
    """(images, labels) batches of exactly ``batch`` images (the last one padded with zeros, its padding labelled
    -1) from ``data``'s ``split``, through the model's evaluation transform."""
    from .data import EpochOrder, build_loader, make_datasets, make_val_dataset

    if split == "val":
        ds, _ = make_val_dataset(data, classes=d.folders, **d.options)
    else:
        ds = make_datasets(data, **{k: v for k, v in d.options.items() if k != "shapes_val"})[0]
    n = len(ds) if limit is None else min(limit, len(ds))
    loader = build_loader(ds, d.transform, EpochOrder(n, batch, shuffle=False), workers=0)
    for b in loader:
        x, y = b.images.float(), b.labels
        if len(y) < batch:
            pad = batch - len(y)
            x = torch.cat([x, x.new_zeros(pad, *x.shape[1:])])
            y = torch.cat([y, y.new_full((pad,), -1)])
        yield x, y


def top1_on(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> Callable[[Callable], float]:
    """A scorer for :func:`optimize`: a runner's top-1 (%) over fixed ``batches`` (labels -1 are padding)."""

    def score(fn: Callable[[torch.Tensor], torch.Tensor]) -> float:
        hits = seen = 0
        for x, y in batches:
            keep = y >= 0
            hits += int((fn(x).argmax(1)[keep] == y[keep]).sum())
            seen += int(keep.sum())
        return 100.0 * hits / max(1, seen)

    return score


def deploy_model(
    source: str,
    out: str,
    *,
    pretrained: bool | str | None = None,
    weights: str = "auto",
    res: int | None = None,
    batch: int = 16,
    runtimes: Sequence[str] = RUNTIMES,
    tolerance: float = 2e-2,
    val: str | None = None,
    max_top1_drop: float = 0.5,
    int8: bool = False,
    calibrate: str | None = None,
    min_time: float = 2.0,
    force: bool = False,
) -> dict:
    """``convscale deploy``: choose the fastest correct runtime for ``source`` (a run folder, or a registered model
    with ``pretrained`` weights) at ``batch``, write it into the folder ``out`` (``model.onnx`` for ONNX Runtime,
    else ``model.pt2``, the fused graph) with ``report.csv`` and ``deploy.json``; with ``int8``, also
    ``model.int8.onnx`` calibrated on ``calibrate`` (default: the run's own training images). ``val`` (default: the
    run's own data) scores every candidate's top-1. A folder that already holds a deployed model is refused unless
    ``force``, which replaces that model's files. ``report["written"]`` lists every file written, and the folder holds
    no other file of this command's."""
    import dataclasses
    from pathlib import Path

    from .exporter import export, prepare_export

    check_runtimes(runtimes)
    folder = Path(out)
    _claim(folder, force)
    model, spec = prepare_export(source, pretrained=pretrained, res=res, batch=batch, weights=weights)
    d = _data_of(source, spec, weights)
    val = val or d.default
    scored = list(_batches(val, d, batch, "val")) if val and d.folders else None
    result = optimize(
        model, torch.randn(batch, 3, spec.res, spec.res), runtimes=runtimes, tolerance=tolerance,
        top1=top1_on(scored) if scored else None, max_top1_drop=max_top1_drop, min_time=min_time,
    )  # fmt: skip
    fmt = "onnx" if result.choice == "onnxruntime" else "pt2"
    fused_spec = dataclasses.replace(spec, fused=True)
    path = export(result.fused, folder / f"model.{fmt}", fused_spec, fmt=fmt)  # fusing a fused model: a no-op
    report = {
        "source": source, "choice": result.choice, "file": path.name, "batch": batch, "res": spec.res,
        "tolerance": tolerance, "val": val, "candidates": [dataclasses.asdict(c) for c in result.candidates],
    }  # fmt: skip
    if int8:
        report["int8"] = _int8(result, fused_spec, folder, d, calibrate or d.default, scored, min_time)
    report["written"] = [path.name, *(["model.fp32.onnx", report["int8"]["file"]] if int8 else [])]
    report["written"] += ["report.csv", "deploy.json"]
    _write_report(folder, report)
    return report


#: every file a deploy may write into its folder
DEPLOY_FILES = ("model.onnx", "model.pt2", "model.fp32.onnx", "model.int8.onnx", "report.csv", "deploy.json")


def _claim(folder, force: bool) -> None:
    """Refuse a folder that holds a deployed model (a silent overwrite would lose it) unless ``force``, which removes
    that model's files first, so that the folder ends with only the new deploy's."""
    from .atomic import writable_folder

    previous = [name for name in DEPLOY_FILES if (folder / name).exists()]
    if previous and not force:
        raise ValueError(
            f"--out {folder} already holds a deployed model ({', '.join(previous)}): choose another folder, or add "
            "--force to replace it"
        )
    writable_folder(folder, "--out")
    for name in previous:
        (folder / name).unlink()


def _int8(result: Optimized, spec, folder, d: _Data, calibrate: str | None, scored, min_time: float) -> dict:
    """The int8 model beside the fp32 ONNX one: its speed and top-1 against fp32 in ONNX Runtime."""
    from .exporter import export
    from .quantize import quantize_onnx
    from .runtimes import onnx_runner

    if calibrate is None:
        raise ValueError("int8 needs calibration images: --calibrate DIR (a folder with train/ or val/)")
    fp32 = export(result.fused, folder / "model.fp32.onnx", spec)
    split = "train" if calibrate == d.default else "val"
    batches = [x for x, _ in _batches(calibrate, d, spec.batch, split, limit=32 * spec.batch)]
    int8 = quantize_onnx(fp32, folder / "model.int8.onnx", batches)
    runners = {name: onnx_runner(path, name) for name, path in (("onnxruntime", fp32), ("onnxruntime-int8", int8))}
    x = batches[0]
    timings = time_runners(runners, x, torch.device("cpu"), min_time=min_time)
    scores = {k: top1_on(scored)(r.fn) for k, r in runners.items()} if scored else {}
    speed = timings["onnxruntime"].median / timings["onnxruntime-int8"].median
    error = max_rel_error(runners["onnxruntime-int8"].fn(x), runners["onnxruntime"].fn(x))
    return {
        "file": int8.name, "calibration_images": sum(len(b) for b in batches), "speedup_vs_fp32_onnx": speed,
        "ms_fp32": timings["onnxruntime"].median * 1e3, "ms_int8": timings["onnxruntime-int8"].median * 1e3,
        "top1_fp32": scores.get("onnxruntime"), "top1_int8": scores.get("onnxruntime-int8"), "max_rel_error": error,
    }  # fmt: skip


def _write_report(folder, report: dict) -> None:
    import csv
    import io
    import json

    from .atomic import atomic_write_text

    buf = io.StringIO()
    rows = report["candidates"]
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(folder / "report.csv", buf.getvalue())
    atomic_write_text(folder / "deploy.json", json.dumps(report, indent=1, default=str) + "\n")
