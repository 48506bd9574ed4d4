"""``convscale.bench.run``: static figures, measured speed and memory, per-layer time, and timm side by side."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..counting import count_params
from ..deploy.roofline import matmul_peak
from ..registry import get_entry
from ..source import check, resolve
from ..utils.device import device_named
from ..utils.timing import measure
from .memory import peak_memory_mb
from .results import BenchReport, BenchResult, BenchSettings, LayerRow
from .trace import KINDS, OpRecord, trace_forward

__all__ = ["TIMM_HINT", "run", "static_figures"]

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
TIMM_HINT = "--compare timm: timm is not installed here; `pip install timm` and run again to see it side by side"
_PER_LAYER_PASSES = 3


def _dtype_probe(device: torch.device, dtype: torch.dtype, mode: str) -> None:
    """A conv, a norm, an activation and a linear in ``dtype``: cast (inference) or under autocast (training)."""
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    x = torch.randn(2, 3, 8, 8, device=device)
    if mode == "infer":
        with torch.inference_mode():
            net.to(device, dtype).eval()(x.to(dtype))
    else:
        autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
        with autocast:
            net.to(device)(x).float().sum().backward()


def _check_dtype(device: torch.device, dtype_name: str, modes: Sequence[str]) -> None:
    dtype = TORCH_DTYPES[dtype_name]
    for mode in modes:
        try:
            _dtype_probe(device, dtype, mode)
        except (RuntimeError, TypeError, NotImplementedError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"--dtype {dtype_name} does not run on {device.type} ({mode}): {reason}") from None


@dataclass(frozen=True)
class StaticFigures:
    params: int
    macs: int  # per image
    activations: int
    mem_access_bytes: int
    records: tuple[OpRecord, ...]


def static_figures(model: nn.Module, res: int, bytes_per_element: int, in_chans: int = 3) -> StaticFigures:
    """Params, multiply-adds, conv activations and memory-access cost of one image, from a traced forward pass.
    ``model`` may live on the ``meta`` device (free) or on a real one (one batch-1 forward)."""
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        x = torch.empty(1, in_chans, res, res, device=device, dtype=p.dtype if p is not None else None)
        records = tuple(trace_forward(model, x))
    finally:
        model.train(was_training)
    return StaticFigures(
        params=count_params(model),
        macs=sum(r.macs for r in records),
        activations=sum(r.conv_outputs for r in records),
        mem_access_bytes=sum(r.elements for r in records) * bytes_per_element,
        records=records,
    )


def _layer_rows(name: str, timed: list[list[OpRecord]], static: StaticFigures, batch: int) -> list[LayerRow]:
    """Aggregate timed passes (at ``batch``) by kind and by stage; work and memory shares come from the static
    (batch-1) trace, which has the same ops."""
    rows = []
    for group, key in (("kind", lambda r: r.kind), ("stage", lambda r: r.stage)):
        seconds: dict[str, float] = defaultdict(float)
        for records in timed:
            for r in records:
                seconds[key(r)] += r.seconds / len(timed)
        macs: dict[str, int] = defaultdict(int)
        elements: dict[str, int] = defaultdict(int)
        for r in static.records:
            macs[key(r)] += r.macs
            elements[key(r)] += r.elements
        names = list(seconds) if group == "stage" else [k for k in KINDS if k in seconds]
        total_s, total_macs, total_el = sum(seconds.values()), static.macs or 1, sum(elements.values()) or 1
        bpe = static.mem_access_bytes / total_el
        for n in names:
            rows.append(
                LayerRow(
                    model=name,
                    group=group,
                    name=n,
                    ms=round(seconds[n] * 1e3, 4),
                    time_share=round(seconds[n] / total_s, 4) if total_s else 0.0,
                    gmacs=round(macs[n] / 1e9, 5),
                    gmacs_share=round(macs[n] / total_macs, 4),
                    mem_access_mb=round(elements[n] * bpe / 2**20, 4),
                    mem_share=round(elements[n] / total_el, 4),
                    gmac_s=round(macs[n] * batch / seconds[n] / 1e9, 3) if seconds[n] else 0.0,
                )
            )
    return rows


@dataclass
class _Contender:
    """One implementation of one model, ready to time: its steps and the model that the steps run."""

    impl: str
    model: nn.Module  # eager (before torch.compile)
    infer: Callable[[torch.Tensor], object]
    train: Callable[[torch.Tensor, torch.Tensor], object]


def _prepare(
    impl: str, build: Callable[[], nn.Module], mode: str, s: BenchSettings, device: torch.device
) -> _Contender:
    dtype = TORCH_DTYPES[s.dtype]
    model = build().to(device)
    if s.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if mode == "infer":
        model.eval()
        if s.fuse:
            model = _fuse(impl, model)
        model = model.to(dtype)
    else:
        model.train()
    run = torch.compile(model) if s.compile else model
    autocast = (
        torch.autocast(device.type, dtype=dtype) if mode == "train" and s.dtype != "fp32" else contextlib.nullcontext()
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9) if mode == "train" else None

    def infer(x: torch.Tensor) -> object:
        with torch.inference_mode():
            return run(x)

    def train(x: torch.Tensor, y: torch.Tensor) -> object:
        with autocast:
            loss = F.cross_entropy(run(x).float(), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return _Contender(impl, model, infer, train)


def _fuse(impl: str, model: nn.Module) -> nn.Module:
    if impl == "convscale":
        from ..deploy.fuse import fuse

        return fuse(model)
    from timm.utils.model import reparameterize_model  # timm's own inference form: RepVGG re-parameterized

    return reparameterize_model(model)


def _timm_builder(timm, name: str) -> Callable[[], nn.Module] | None:
    from ..interop.timm import timm_names

    if name not in timm_names() or not timm.is_model(name):
        return None
    cfg = get_entry(name).config
    # the same regularization as ours (it matters in training); only what is set, as not every timm family takes both
    drops = {k: v for k, v in (("drop_rate", cfg.drop_rate), ("drop_path_rate", cfg.drop_path_rate)) if v}
    return lambda: timm.create_model(name, **drops)


def _bench_model(
    name: str,
    s: BenchSettings,
    device: torch.device,
    timm,
    log: Callable[[str], None],
) -> tuple[list[BenchResult], list[LayerRow]]:
    src = resolve(name)  # any source: a registered model, a tag, a run, a weights or architecture file
    name = src.name
    res = s.res or src.policy.test_res
    batch = s.batch or (256 if device.type == "cuda" else 16)
    dtype = TORCH_DTYPES[s.dtype]
    bpe = torch.empty((), dtype=dtype).element_size()
    builders: dict[str, Callable[[], nn.Module]] = {"convscale": lambda: copy.deepcopy(src.model)}
    if timm is not None:
        theirs = _timm_builder(timm, name)
        if theirs is None:
            log(f"{name}: timm has no model of this name; measured alone")
        else:
            builders["timm"] = theirs
    results, layers = [], []
    for mode in s.modes:
        first, note = batch, ""
        while True:
            try:
                out, layer_rows = _bench_at(name, mode, res, batch, s, device, bpe, builders)
                break
            except torch.OutOfMemoryError:
                if batch == 1:
                    raise ValueError(f"{name} runs out of {device.type} memory even at batch 1 ({mode})") from None
                log(f"{name} ({mode}): batch {batch} ran out of memory on {device.type}; trying {batch // 2}")
                batch //= 2
                note = f"batch {first} ran out of memory; measured at batch {batch}"
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        results += [dataclasses.replace(r, note=note) for r in out]
        layers += layer_rows
    return results, layers


def _bench_at(
    name: str,
    mode: str,
    res: int,
    batch: int,
    s: BenchSettings,
    device: torch.device,
    bpe: int,
    builders: dict[str, Callable[[], nn.Module]],
) -> tuple[list[BenchResult], list[LayerRow]]:
    contenders = {impl: _prepare(impl, build, mode, s, device) for impl, build in builders.items()}
    x, timings, latency, memory = _time_contenders(name, contenders, mode, res, batch, s, device)

    published = get_entry(name).config.published
    statics = {impl: static_figures(c.model, res, bpe) for impl, c in contenders.items()}
    ref = next((k for k in timings if k != "convscale"), None)  # the reference timed beside ours, if any
    results = []
    for impl in contenders:
        static = statics[impl]
        t = timings[impl]
        img_s = batch / t.median
        gmac_s = static.macs * img_s * (1 if mode == "infer" else 3) / 1e9
        results.append(
            BenchResult(
                model=name,
                impl=impl,
                mode=mode,
                device=device.type,
                dtype=s.dtype,
                res=res,
                batch=batch,
                channels_last=s.channels_last,
                compiled=s.compile,
                fused=s.fuse and mode == "infer",
                params=static.params,
                gmacs=static.macs / 1e9,
                activations_m=round(static.activations / 1e6, 3),
                mem_access_mb=round(static.mem_access_bytes / 2**20, 3),
                intensity=round(static.macs / static.mem_access_bytes, 3) if static.mem_access_bytes else 0.0,
                median_ms=round(t.median * 1e3, 3),
                p10_ms=round(t.p10 * 1e3, 3),
                p90_ms=round(t.p90 * 1e3, 3),
                iters=t.iters,
                img_s=round(img_s, 2),
                latency_ms=round(latency[impl].median * 1e3, 3) if latency else None,
                peak_mem_mb=round(memory[impl], 1),
                gmac_s=round(gmac_s, 4),
                peak_fraction=0.0,  # set by run() against the machine's peak
                top1=published.top1 if published else None,
                vs_reference=round(timings[ref].median / t.median, 3) if impl == "convscale" and ref else None,
            )
        )
    layers: list[LayerRow] = []
    if s.per_layer and mode == "infer":
        ours = contenders["convscale"].model
        trace_forward(ours, x)  # warm-up, untimed
        timed = [trace_forward(ours, x, timed=True) for _ in range(_PER_LAYER_PASSES)]
        layers = _layer_rows(name, timed, statics["convscale"], batch)
    return results, layers


def _time_contenders(name: str, contenders: dict, mode: str, res: int, batch: int, s: BenchSettings, device):
    """(the batch, the timings per contender, their latency at batch 1 (inference), their peak memory), measured
    interleaved; a torch.compile failure at the first call is one ValueError naming the model."""
    dtype = TORCH_DTYPES[s.dtype] if mode == "infer" else torch.float32
    memory_format = torch.channels_last if s.channels_last else torch.contiguous_format

    def inputs(n: int) -> torch.Tensor:
        return torch.randn(n, 3, res, res, device=device).to(dtype).contiguous(memory_format=memory_format)

    x, y = inputs(batch), torch.randint(0, 1000, (batch,), device=device)
    if mode == "infer":
        steps = {k: (lambda c=c: c.infer(x)) for k, c in contenders.items()}
    else:
        steps = {k: (lambda c=c: c.train(x, y)) for k, c in contenders.items()}
    try:
        timings = measure(steps, device, warmup=s.warmup, min_iters=s.min_iters, min_time=s.min_time)
    except torch.OutOfMemoryError:
        raise
    except Exception as e:  # torch.compile's backends raise many types, at the first call
        if not s.compile:
            raise
        raise ValueError(f"torch.compile failed for {name}: {str(e).strip().splitlines()[0]}") from None
    latency = {}
    if mode == "infer":
        x1 = inputs(1)
        one = {k: (lambda c=c: c.infer(x1)) for k, c in contenders.items()}
        latency = measure(one, device, warmup=s.warmup, min_iters=s.min_iters, min_time=s.min_time / 2)
    return x, timings, latency, {k: peak_memory_mb(fn, device) for k, fn in steps.items()}


def _device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        return f"cpu: {torch.get_num_threads()} threads of {os.cpu_count()} cores"
    return device.type


def run(
    models: Sequence[str],
    settings: BenchSettings | None = None,
    *,
    log: Callable[[str], None] = lambda _: None,
    **kwargs: object,
) -> BenchReport:
    """Benchmark registered models; settings as a :class:`BenchSettings` or as its fields by keyword.

    >>> report = run(["test_efficientnet"], res=32, batch=2, min_iters=2, min_time=0)  # doctest: +SKIP
    >>> report.results[0].img_s
    """
    s = settings if settings is not None else BenchSettings(**kwargs)  # type: ignore[arg-type]
    if settings is not None and kwargs:
        raise ValueError("pass settings either as a BenchSettings or as keywords, not both")
    if isinstance(models, str) or not models:
        raise ValueError("models must be a non-empty list of models (names, tags, runs, weights or architecture files)")
    for name in models:
        check(name)  # unknown names fail here, before any work
    device = device_named(s.device)
    _check_dtype(device, s.dtype, s.modes)
    timm = None
    if s.compare == "timm":
        try:
            import timm
        except ImportError:
            log(TIMM_HINT)
    peak = matmul_peak(device, TORCH_DTYPES[s.dtype])
    report = BenchReport(settings=s, device=_device_label(device), peak_gmac_s=round(peak / 1e9, 2))
    log(f"{report.device}; {s.dtype} matmul peak {report.peak_gmac_s:.1f} GMAC/s (measured again at the end)")
    for name in models:
        results, layers = _bench_model(name, s, device, timm, log)
        report.results += results
        report.layers += layers
        for r in results:
            log(
                f"{r.model} {r.impl} {r.mode}: {r.img_s:.1f} img/s, {r.median_ms:.1f} ms per batch of {r.batch}"
                + (f", {r.vs_reference:.2f}x timm" if r.vs_reference else "")
            )
    if timm is None and s.compare == "timm":
        report.notes.append(TIMM_HINT)
    # the machine may have been busier during the first probe: the peak is the better of two, before and after
    peak = max(peak, matmul_peak(device, TORCH_DTYPES[s.dtype]))
    report.peak_gmac_s = round(peak / 1e9, 2)
    report.results = [dataclasses.replace(r, peak_fraction=round(r.gmac_s * 1e9 / peak, 6)) for r in report.results]
    return report
