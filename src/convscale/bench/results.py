"""What a benchmark run returns: typed rows, flat so that each is one line of CSV."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..utils.device import DEVICES

__all__ = ["BenchReport", "BenchResult", "BenchSettings", "LayerRow"]

MODES = ("infer", "train")
DTYPES = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class BenchSettings:
    """One run's settings. ``res`` None: each model at its own test resolution; ``batch`` None: 256 on CUDA, else
    16. ``mode`` "both" measures inference and training. Timing stops when a contender has ``min_iters`` calls and
    ``min_time`` seconds of them, after ``warmup`` untimed calls."""

    res: int | None = None
    batch: int | None = None
    mode: str = "infer"
    dtype: str = "fp32"
    channels_last: bool = True
    compile: bool = False
    fuse: bool = False
    device: str = "auto"
    per_layer: bool = False
    compare: str | None = None
    warmup: int = 3
    min_iters: int = 10
    min_time: float = 2.0

    def __post_init__(self) -> None:
        def bad(key: str, expected: str, value: object) -> ValueError:
            return ValueError(f"{key} must be {expected}, got {value!r}")

        for key in ("res", "batch"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise bad(key, "a positive integer", value)
        if self.res is not None and self.res < 32:
            raise bad("res", "at least 32 (every model takes 32 px or more)", self.res)
        if self.mode not in (*MODES, "both"):
            raise bad("mode", "one of infer, train, both", self.mode)
        if self.dtype not in DTYPES:
            raise bad("dtype", "one of " + ", ".join(DTYPES), self.dtype)
        if self.device not in DEVICES:
            raise bad("device", "one of " + ", ".join(DEVICES), self.device)
        if self.compare not in (None, "timm"):
            raise bad("compare", "'timm' or None", self.compare)
        if self.fuse and self.mode == "train":
            raise ValueError("fuse is an inference transform (deploy.fuse); use it with mode infer or both")
        self._check_timing(bad)

    def _check_timing(self, bad) -> None:
        for key, low in (("warmup", 0), ("min_iters", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise bad(key, f"an integer >= {low}", value)
        t = self.min_time
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
            raise bad("min_time", "a finite number of seconds >= 0", t)

    @property
    def modes(self) -> tuple[str, ...]:
        return MODES if self.mode == "both" else (self.mode,)


@dataclass(frozen=True)
class BenchResult:
    """One model in one mode. Static figures are per image at ``res``; times are per call at ``batch``.

    ``gmac_s`` counts forward multiply-adds for inference and three times them (forward + backward) for training;
    ``peak_fraction`` is ``gmac_s`` over the matmul peak measured at the start of the run, in the same dtype.
    ``vs_reference`` (on convscale rows, with ``compare``) is the reference's median time over ours: above 1, ours is
    faster.
    """

    model: str
    impl: str  # "convscale" or the reference library
    mode: str
    device: str
    dtype: str
    res: int
    batch: int
    channels_last: bool
    compiled: bool
    fused: bool
    params: int
    gmacs: float  # multiply-adds per image, billions (the papers' "FLOPs")
    activations_m: float  # conv output elements per image, millions
    mem_access_mb: float  # memory-access cost per image, MiB in the dtype
    intensity: float  # multiply-adds per byte of memory access
    median_ms: float
    p10_ms: float
    p90_ms: float
    iters: int
    img_s: float
    latency_ms: float | None  # batch 1, inference only
    peak_mem_mb: float
    gmac_s: float
    peak_fraction: float
    top1: float | None  # published ImageNet top-1
    vs_reference: float | None = None
    note: str = ""


@dataclass(frozen=True)
class LayerRow:
    """Per layer kind or per stage of one model (``group`` "kind" or "stage"): forward time at the run's batch beside
    its share of the multiply-adds and of the memory-access cost."""

    model: str
    group: str
    name: str
    ms: float
    time_share: float
    gmacs: float  # per image
    gmacs_share: float
    mem_access_mb: float  # per image
    mem_share: float
    gmac_s: float  # achieved by this kind / stage


@dataclass
class BenchReport:
    settings: BenchSettings
    device: str  # e.g. "cpu (2 threads)" or "cuda: NVIDIA H200"
    peak_gmac_s: float
    results: list[BenchResult] = field(default_factory=list)
    layers: list[LayerRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "settings": dataclasses.asdict(self.settings),
            "device": self.device,
            "peak_gmac_s": self.peak_gmac_s,
            "results": [dataclasses.asdict(r) for r in self.results],
            "layers": [dataclasses.asdict(r) for r in self.layers],
            "notes": self.notes,
        }
