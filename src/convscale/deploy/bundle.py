"""``convscale deploy``: the fastest correct form of a model (:func:`~.optimize.optimize`) written into a folder with
its report: the chosen form's file (``model.onnx`` or ``model.pt2`` for the floating-point forms of PyTorch and ONNX
Runtime, ``model.int8.pt2`` for the compiler's int8 graph, ``model.int8.onnx``, or OpenVINO's ``model.xml`` and
``model.bin``), ``report.csv`` (every candidate) and ``deploy.json`` (the choice, its settings, this machine's CPU
and instruction sets, the libraries' versions, the roofline's peaks). The int8 candidates are calibrated on the
run's own training images, ``calibrate`` (a folder or a named dataset) or nothing (then they are not built).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..deployed.forms import FORMS
from .optimize import Optimized, optimize, top1_on
from .quantize import QuantSettings
from .runtimes import INT8, RUNTIMES, check_runtimes, max_rel_error, time_runners

if TYPE_CHECKING:
    from ..source import Source

__all__ = ["DEPLOY_FILES", "deploy_model"]


@dataclass(frozen=True)
class _Data:
    """How a model's images are read: its evaluation transform, and its label folders."""

    transform: Callable
    folders: list[str] | None
    options: dict  # a run's synthetic-shapes settings (seed, sizes)
    default: str | None  # the run's own data

    @classmethod
    def of(cls, src: Source, res: int) -> _Data:
        return cls(src.policy.transform(res), src.folders, src.data_options, src.data)


def _batches(data: str, d: _Data, batch: int, split: str, limit: int | None = None):
    """(images, labels) batches of exactly ``batch`` images (the last one padded with zeros, its padding labelled
    -1) from ``data``'s ``split``, through the model's evaluation transform."""
    from ..data import EpochOrder, build_loader, epoch_order, make_datasets, make_val_dataset

    if split == "val":
        ds, _ = make_val_dataset(data, classes=d.folders, **d.options)
    else:
        ds = make_datasets(data, **{k: v for k, v in d.options.items() if k != "shapes_val"})[0]
    n = len(ds) if limit is None else min(limit, len(ds))
    streamed = hasattr(ds, "order")  # shards: read in their order, the first n kept
    order = epoch_order(ds, batch, shuffle=False) if streamed else EpochOrder(n, batch, shuffle=False)
    seen = 0
    for b in build_loader(ds, d.transform, order, workers=0):
        x, y = b.images[: n - seen].float(), b.labels[: n - seen]
        seen += len(y)
        if not len(y):
            return
        if len(y) < batch:
            pad = batch - len(y)
            x = torch.cat([x, x.new_zeros(pad, *x.shape[1:])])
            y = torch.cat([y, y.new_full((pad,), -1)])
        yield x, y


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
    max_top1_drop: float | None = None,
    int8: bool = False,
    calibrate: str | None = None,
    calibration_images: int = 300,
    settings: QuantSettings | None = None,
    min_time: float = 2.0,
    force: bool = False,
) -> dict:
    """``convscale deploy``: choose the fastest correct runtime for ``source`` (a run folder, or a registered model
    with ``pretrained`` weights) at ``batch`` and write it into the folder ``out`` with ``report.csv`` and
    ``deploy.json``. The int8 runtimes are calibrated on ``calibration_images`` images of ``calibrate`` (default:
    the run's own training images) with ``settings``; ``val`` (default: the run's own data) scores every candidate's
    top-1 for the guard (``max_top1_drop``: default 1.0 point for int8, 0.5 otherwise). With ``int8``, also
    ``model.int8.onnx`` beside the chosen form. A folder that already holds a deployed model is refused unless
    ``force``, which replaces that model's files. ``report["written"]`` lists every file written, and the folder holds
    no other file of this command's. Two deploys into one folder at once: the second is refused while the first holds
    it; a full disk is said as such (:class:`~convscale.utils.atomic.DiskFull`)."""
    from pathlib import Path

    from ..utils.atomic import on_disk_full

    check_runtimes(runtimes)
    folder = Path(out)
    with _locked(folder), on_disk_full(folder):
        _claim(folder, force)
        return _deploy(
            source, folder, pretrained=pretrained, weights=weights, res=res, batch=batch, runtimes=runtimes,
            tolerance=tolerance, val=val, max_top1_drop=max_top1_drop, int8=int8, calibrate=calibrate,
            calibration_images=calibration_images, settings=settings, min_time=min_time,
        )  # fmt: skip


def _deploy(
    source, folder, *, pretrained, weights, res, batch, runtimes, tolerance, val, max_top1_drop, int8, calibrate,
    calibration_images, settings, min_time,
) -> dict:  # fmt: skip
    """:func:`deploy_model`'s work, in the folder it locked and claimed."""
    import dataclasses

    from ..source import resolve
    from .exporter import export_spec
    from .roofline import peaks

    src = resolve(source, pretrained=pretrained, weights=weights)
    model, spec = src.model, export_spec(src, res=res, batch=batch)
    d = _Data.of(src, spec.res)
    val = val or d.default
    scored = list(_batches(val, d, batch, "val")) if val and d.folders else None
    calibration = _calibration(calibrate or d.default, d, batch, calibration_images, runtimes, int8)
    settings, sensitive = _auto_keep(settings, model, calibration, scored, max_top1_drop, folder)
    found = peaks()
    result = optimize(
        model, torch.randn(batch, 3, spec.res, spec.res), runtimes=runtimes, tolerance=tolerance, val=scored,
        max_top1_drop=max_top1_drop, calibration=calibration, settings=settings, peaks=found, min_time=min_time,
    )  # fmt: skip
    fused_spec = dataclasses.replace(spec, fused=True)
    files = _write_choice(result, folder, fused_spec)
    report = _report(source, result, files, spec, tolerance, val, calibrate or d.default, calibration, found)
    report["spec"] = dataclasses.asdict(fused_spec)  # what convscale.load feeds the form: size, crop, mean/std, classes
    if sensitive is not None:
        report["sensitivity"] = sensitive
    if int8:
        report["int8"] = _int8(result, fused_spec, folder, calibration, scored, settings, min_time)
    report["written"] = [*files, *(["model.fp32.onnx", report["int8"]["file"]] if int8 else [])]
    report["written"] += ["report.csv", "deploy.json", *(["sensitivity.csv"] if sensitive is not None else [])]
    _write_report(folder, report)
    return report


def _report(source, result: Optimized, files, spec, tolerance, val, calibrated_on, calibration, found) -> dict:
    """``deploy.json``'s content: the choice and its settings, this machine, the versions, every candidate."""
    import dataclasses

    from ..utils.machine import machine, versions

    chosen = next(c for c in result.candidates if c.runtime == result.choice)
    return {
        "source": source, "choice": result.choice, "file": files[0], "files": files, "batch": spec.batch,
        "res": spec.res, "precision": chosen.precision, "settings": chosen.settings, "tolerance": tolerance,
        "val": val, "calibration": {"source": calibrated_on, "images": sum(map(len, calibration or []))},
        "machine": machine().to_dict(), "versions": versions("torchao", "openvino", "nncf", "onnxruntime"),
        "peaks_gmac_s": {k: round(v / 1e9, 1) for k, v in found.items()},
        "candidates": [dataclasses.asdict(c) for c in result.candidates],
    }  # fmt: skip


def _auto_keep(settings: QuantSettings | None, model, calibration, scored, max_drop, folder):
    """``--int8-keep auto``: the per-block sensitivity table (``sensitivity.csv``) and the settings with the fewest
    blocks kept in higher precision that bring int8 within the guard; other settings pass through."""
    import dataclasses

    from ..utils.atomic import atomic_write_csv
    from .fuse import fuse
    from .sensitivity import keep_for_guard, sensitivity

    if settings is None or settings.keep != ("auto",):
        return settings, None
    if not scored or not calibration:
        raise ValueError("--int8-keep auto needs validation images (--val) and calibration images (--calibrate)")
    fused = fuse(model.eval())
    rows = sensitivity(fused, calibration, scored)
    limit = 1.0 if max_drop is None else max_drop
    kept, drop = keep_for_guard(fused, calibration, scored, rows, limit, dataclasses.replace(settings, keep=()))
    atomic_write_csv(folder / "sensitivity.csv", [dataclasses.asdict(r) for r in rows])
    found = {"kept": list(kept), "top1_drop_with_kept": round(drop, 3), "within_guard": drop <= limit}
    return dataclasses.replace(settings, keep=kept), found


def _calibration(source: str | None, d: _Data, batch: int, images: int, runtimes, int8: bool):
    """Batches of ``batch`` images for the int8 runtimes (None when none is asked for, or there is no source)."""
    if source is None or not (int8 or any(r in INT8 for r in runtimes)):
        return None
    split = "train" if source == d.default else "val"
    return [x for x, _ in _batches(source, d, batch, split, limit=images)]


def _write_choice(result: Optimized, folder, spec) -> list[str]:
    """The chosen form's file(s) in ``folder``, each written under a private name and renamed into place."""
    from .exporter import export

    if result.runner.save is None:  # the file the deployed folder opens this runtime from (``deployed.forms``)
        file = FORMS[result.choice].file
        return [export(result.fused, folder / file, spec, fmt=file.rsplit(".", 1)[1]).name]  # fusing: a no-op
    return _save(result.runner, folder, spec)


def _save(runner, folder, spec) -> list[str]:
    """What ``runner.save`` writes, written under a private name in ``folder`` and renamed into place; an ONNX file
    gets the deployment's ``spec`` as its metadata first (the runtime built it with a neutral one)."""
    import tempfile
    from pathlib import Path

    from ..utils.atomic import on_disk_full
    from .exporter import stamp

    with tempfile.TemporaryDirectory(dir=folder, prefix=".deploy-") as tmp, on_disk_full(folder):
        names = runner.save(Path(tmp))  # checked for a full disk before its partial files go
        for name in names:
            if name.endswith(".onnx"):
                stamp(Path(tmp) / name, spec)
            os.replace(Path(tmp) / name, folder / name)
    return names


#: every file a deploy may write into its folder
DEPLOY_FILES = (
    "model.onnx", "model.pt2", "model.fp32.onnx", "model.int8.onnx", "model.int8.pt2", "model.xml", "model.bin",
    "report.csv", "deploy.json", "sensitivity.csv",
)  # fmt: skip


@contextlib.contextmanager
def _locked(folder):
    """``folder`` (made if missing) held by this process for the deploy: an exclusive ``flock`` on the folder itself
    (no lock file left behind; released when the process ends, however it ends). A second deploy into it meanwhile
    is refused in one line."""
    from ..utils.atomic import folder_lock, writable_folder

    writable_folder(folder, "--out")
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(folder_lock(folder, wait=False))
        except BlockingIOError:
            raise ValueError(
                f"--out {folder} is being written by another convscale deploy right now: wait for it, or choose "
                "another folder"
            ) from None
        yield


def _claim(folder, force: bool) -> None:
    """Refuse a folder that holds a deployed model (a silent overwrite would lose it) unless ``force``, which removes
    that model's files first, so that the folder ends with only the new deploy's."""
    from ..utils.atomic import writable_folder

    previous = [name for name in DEPLOY_FILES if (folder / name).exists()]
    if previous and not force:
        raise ValueError(
            f"--out {folder} already holds a deployed model ({', '.join(previous)}): choose another folder, or add "
            "--force to replace it"
        )
    writable_folder(folder, "--out")
    for name in previous:
        (folder / name).unlink()


def _int8(result: Optimized, spec, folder, batches, scored, settings, min_time: float) -> dict:
    """The int8 model beside the fp32 ONNX one — the runtime table's ``onnxruntime-int8`` and ``onnxruntime``,
    calibrated on ``batches`` (the candidates' calibration set) with the candidates' ``settings`` — and its speed
    and top-1 against fp32 in ONNX Runtime."""
    from .exporter import export
    from .runtimes import build_runner

    if not batches:
        raise ValueError("int8 needs calibration images: --calibrate DIR (a folder with train/ or val/)")
    x, cpu = batches[0], torch.device("cpu")
    runners = {
        name: build_runner(name, result.fused, x, cpu, calibration=batches, settings=settings)
        for name in ("onnxruntime", "onnxruntime-int8")
    }
    export(result.fused, folder / "model.fp32.onnx", spec)
    (int8,) = _save(runners["onnxruntime-int8"], folder, spec)
    timings = time_runners(runners, x, cpu, min_time=min_time)
    scores = {k: top1_on(scored)(r.fn) for k, r in runners.items()} if scored else {}
    speed = timings["onnxruntime"].median / timings["onnxruntime-int8"].median
    error = max_rel_error(runners["onnxruntime-int8"].fn(x), runners["onnxruntime"].fn(x))
    return {
        "file": int8, "calibration_images": sum(len(b) for b in batches), "speedup_vs_fp32_onnx": speed,
        "ms_fp32": timings["onnxruntime"].median * 1e3, "ms_int8": timings["onnxruntime-int8"].median * 1e3,
        "top1_fp32": scores.get("onnxruntime"), "top1_int8": scores.get("onnxruntime-int8"), "max_rel_error": error,
    }  # fmt: skip


def _write_report(folder, report: dict) -> None:
    import json

    from ..utils.atomic import atomic_write_csv, atomic_write_text

    atomic_write_csv(folder / "report.csv", report["candidates"])
    atomic_write_text(folder / "deploy.json", json.dumps(report, indent=1, default=str) + "\n")
