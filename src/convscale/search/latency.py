"""A latency model measured on this device: each distinct part of an MBConv-family network (stem, block, head) is
timed once, alone, and a network's latency is predicted as the sum of its parts.

A part is what decides its cost: the block kind, input width and size, output width, expansion, kernel, stride, SE,
activation and padding (``Part``); the measurement setting adds batch, train or eval, and dtype (``Setting``). Times
are cached per device in a JSON file keyed by the machine, its thread count and the torch version
(:func:`table_path`), so a search measures each part once per machine, ever. Parts are built by the network's own
constructors (``make_stem``, ``make_block``, ``make_head``), so a part timed is exactly the module the network runs.

A part is kept in **yardsticks**, not seconds: its time over that of one fixed block (``YARDSTICK``: EfficientNet-B0's
third-stage block at the 28 px it sees at 224 px) timed just before and just after it. This machine is shared, and a
neighbour's load moved every network's time by up to a third within minutes (``benchmarks/latency_model.py``,
``base_swing``); a table whose parts are measured over hours, as a search meets them, would otherwise add up seconds
from quiet and busy minutes alike. A prediction is yardsticks (:meth:`LatencyTable.predict_units`) times the
yardstick's seconds measured now: once per table object (:meth:`LatencyTable.yardstick`), or by a caller measuring
over minutes beside each measurement (:meth:`LatencyTable.pace`; with it the prediction of 30 networks was within 10%
for 30 of 30 at batch 1 and 28–30 at batch 16 in four runs on this machine: docs/results/latency-table.md).

Eval latency is one forward without autograd; a training step is forward + backward of the summed output (the
optimizer's update, linear in the parameters and small next to the convolutions, is left out of both the parts and
the whole-network measurement that checks them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..models.efficientnet import V1_B0, EfficientNetConfig, MBStage, make_block, make_head, make_stem
from ..utils.allocator import keep_freed_memory
from ..utils.atomic import atomic_write_text
from ..utils.machine import machine
from ..utils.paths import cache_root
from ..utils.timing import measure

__all__ = [
    "YARDSTICK",
    "LatencyTable",
    "Part",
    "Setting",
    "fit_calibration",
    "measure_network",
    "network_parts",
    "table_path",
]

MODES = ("eval", "train")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Setting:
    """How latency is measured: batch, eval (forward) or train (forward + backward), dtype, channels-last."""

    batch: int = 1
    mode: str = "eval"
    dtype: str = "float32"
    channels_last: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"latency mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"latency dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not isinstance(self.batch, int) or self.batch < 1:
            raise ValueError(f"latency batch must be a positive integer, got {self.batch!r}")


@dataclass(frozen=True)
class Part:
    """One timed piece of a network: ``kind`` is "stem", "block" or "head"; a block carries its (scaled) stage
    row and whether it is the row's first (the one with the stride)."""

    kind: str
    in_chs: int
    res: int  # input height = width
    stage: MBStage | None = None
    first: bool = False
    conventions: tuple = ()  # what else the config decides: activation, padding, SE, head width, classes

    def key(self, setting: Setting) -> str:
        return json.dumps([asdict(self), asdict(setting)], sort_keys=True, default=str)


def _conventions(cfg: EfficientNetConfig) -> tuple:
    return (cfg.act_layer, cfg.padding, repr(cfg.se))


_YARDSTICK_CONFIG = EfficientNetConfig(stages=V1_B0)
#: the block every part is measured against: B0's stage-3 block (40 channels, kernel 5, expansion 6, SE) at 28 px
YARDSTICK = Part("block", 40, 28, V1_B0[2], conventions=_conventions(_YARDSTICK_CONFIG))
FORMAT = 2  # the table's file: 2 = parts in yardsticks (1 held seconds, and is measured again)


def network_parts(cfg: EfficientNetConfig, res: int, num_classes: int = 1000) -> list[Part]:
    """The network's parts in order, with the input size each sees (sizes follow PyTorch's strided conv rule,
    ceil(size / stride), which 'same' padding shares)."""
    conv = _conventions(cfg)
    size = (res + 1) // 2
    chs = cfg.channels(cfg.stem_chs)
    parts = [Part("stem", 3, res, conventions=conv)]
    for s in cfg.scaled_stages():
        for j in range(s.repeats):
            parts.append(Part("block", chs, size, s, first=j == 0, conventions=conv))
            size = (size + s.stride - 1) // s.stride if j == 0 else size
            chs = s.out_chs
    head = (*conv, cfg.head_chs, cfg.width_mult, cfg.round_limit, cfg.head_hidden, num_classes)
    parts.append(Part("head", chs, size, conventions=head))
    return parts


def build_part(cfg: EfficientNetConfig, part: Part, num_classes: int = 1000) -> nn.Module:
    if part.kind == "stem":
        return make_stem(cfg)
    if part.kind == "block":
        return make_block(cfg, part.stage, part.in_chs, first=part.first)
    return nn.Sequential(*make_head(cfg, part.in_chs, num_classes))


def _runner(module: nn.Module, shape: tuple[int, ...], setting: Setting, grad_input: bool) -> Callable[[], object]:
    """A call of ``module`` in ``setting`` on a random input of ``shape``."""
    dtype = DTYPES[setting.dtype]
    fmt = torch.channels_last if setting.channels_last else torch.contiguous_format
    module = module.to(memory_format=fmt)
    x = torch.randn(*shape).to(memory_format=fmt)
    autocast = torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32)
    if setting.mode == "eval":
        module.eval()

        def forward() -> object:
            with torch.no_grad(), autocast:
                return module(x)

        return forward
    module.train()
    x.requires_grad_(grad_input)

    def step() -> object:
        with autocast:
            out = module(x)
        out.float().sum().backward()
        for p in module.parameters():
            p.grad = None
        return out

    return step


def _timed(module: nn.Module, shape: tuple[int, ...], setting: Setting, grad_input: bool, min_time: float) -> float:
    """Seconds per call of ``module`` on an input of ``shape`` in ``setting`` (the one timer of parts and networks)."""
    return _seconds(_runner(module, shape, setting, grad_input), min_time)


def _seconds(fn: Callable[[], object], min_time: float) -> float:
    """Seconds per call of ``fn`` (the median of its timed calls), with freed memory kept in the process, as
    ``convscale train`` runs (``utils/allocator.py``): under glibc's defaults a batch-16 network gives its
    activations back to the system after each call and takes them back page by page in the next, which here cost up
    to a third of its time and varied with a neighbour's load (6 networks, 6 rounds: spread 4-12% of the median
    with the defaults, 1-5% with memory kept; one network 200 ms against 129 ms)."""
    keep_freed_memory()  # every timing, whoever calls: the parts and the whole networks under the same allocator
    return measure({"part": fn}, torch.device("cpu"), warmup=2, min_iters=5, min_time=min_time)["part"].median


def table_path(root: str | Path | None = None) -> Path:
    """This machine's table: ``$CONVSCALE_CACHE`` (default ``~/.cache/convscale``)``/latency/<machine>.json``, the
    machine being the CPU model, the thread count, the torch version and whether freed memory is kept."""
    cpu = machine().cpu
    kept = "-keptmem" if keep_freed_memory() else ""  # the allocator the parts were timed under (see _seconds)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{cpu}-{torch.get_num_threads()}t-torch{torch.__version__}{kept}").strip("-")
    base = Path(root) if root else cache_root()
    return base / "latency" / f"{slug[:150]}.json"


class LatencyTable:
    """Each part in yardsticks (see the module), measured on first use and kept in ``path`` (JSON, written
    atomically); seconds are yardsticks times :meth:`yardstick`."""

    def __init__(self, path: str | Path | None = None, *, min_time: float = 0.2) -> None:
        self.path = Path(path) if path is not None else table_path()
        self.min_time = min_time
        self.entries: dict[str, float] = {}  # part key -> yardsticks
        self.calibration: dict[str, tuple[float, float]] = {}  # per setting, in yardsticks: see calibrate
        self.measured = 0  # parts timed by this table object (the rest came from the file)
        self._now: dict[str, float] = {}  # per setting: the yardstick's seconds, timed once in this process
        if self.path.is_file():
            try:
                doc = json.loads(self.path.read_text())
                if doc.get("format") == FORMAT:  # an older table held seconds: measured again
                    self.entries = {k: float(v) for k, v in doc["yardsticks"].items()}
                    self.calibration = {k: (float(a), float(b)) for k, (a, b) in doc.get("calibration", {}).items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                self.entries, self.calibration = {}, {}  # a damaged table is measured again, not trusted

    @property
    def whole_min_time(self) -> float:
        """The least seconds each timing of a whole network runs (1.5 times a part's: a network is measured in
        rounds against its base, and fewer, longer calls keep its spread down)."""
        return 1.5 * self.min_time

    def save(self) -> None:
        doc = {"machine": self.path.stem, "torch": torch.__version__, "format": FORMAT, "yardsticks": self.entries}
        doc["calibration"] = self.calibration
        atomic_write_text(self.path, json.dumps(doc, indent=0, sort_keys=True))

    def _time(self, cfg: EfficientNetConfig, part: Part, setting: Setting, num_classes: int, min_time: float) -> float:
        module = build_part(cfg, part, num_classes)
        shape = (setting.batch, part.in_chs, part.res, part.res)
        return _timed(module, shape, setting, part.kind != "stem", min_time)

    def _in_yardsticks(self, setting: Setting, seconds: Callable[[], float]) -> float:
        """What ``seconds()`` times, over the mean of the yardstick timed just before and just after it."""
        before = self.pace(setting, self.min_time / 2)
        timed = seconds()
        after = self.pace(setting, self.min_time / 2)
        return 2 * timed / (before + after)

    def yardstick(self, setting: Setting) -> float:
        """The yardstick's seconds per call in ``setting``, timed on first use by this table object — the
        machine's pace now, by which every prediction it makes is scaled."""
        key = _setting_key(setting)
        if key not in self._now:
            self._now[key] = self.pace(setting)
        return self._now[key]

    def pace(self, setting: Setting, min_time: float | None = None) -> float:
        """The yardstick's seconds per call in ``setting``, timed now and not kept: a caller measuring networks
        over minutes probes the pace beside each measurement and turns :meth:`predict_units` into seconds at it."""
        return self._time(_YARDSTICK_CONFIG, YARDSTICK, setting, 1000, self.min_time if min_time is None else min_time)

    def units(self, cfg: EfficientNetConfig, part: Part, setting: Setting, num_classes: int = 1000) -> float:
        """The part's time in yardsticks (timed once, then kept)."""
        key = part.key(setting)
        if key not in self.entries:
            self.entries[key] = self._in_yardsticks(
                setting, lambda: self._time(cfg, part, setting, num_classes, self.min_time)
            )
            self.measured += 1
        return self.entries[key]

    def seconds(self, cfg: EfficientNetConfig, part: Part, setting: Setting, num_classes: int = 1000) -> float:
        return self.units(cfg, part, setting, num_classes) * self.yardstick(setting)

    def parts_units(self, cfg: EfficientNetConfig, res: int, setting: Setting, num_classes: int = 1000) -> float:
        """The sum of the network's parts in yardsticks (new parts are timed, then the table saved)."""
        before = self.measured
        total = sum(self.units(cfg, p, setting, num_classes) for p in network_parts(cfg, res, num_classes))
        if self.measured != before:
            self.save()
        return total

    def predict_units(
        self,
        cfg: EfficientNetConfig,
        res: int,
        setting: Setting,
        num_classes: int = 1000,
        calibration: tuple[float, float] | None = None,
    ) -> float:
        """Predicted yardsticks per call of the whole network: the sum of its parts, through the setting's
        calibration (``scale · Σ parts + per_part · number of parts``) when :meth:`calibrate` has fitted one, or
        through ``calibration`` when given."""
        scale, per_part = calibration or self.calibration.get(_setting_key(setting), (1.0, 0.0))
        parts = len(network_parts(cfg, res, num_classes))
        return scale * self.parts_units(cfg, res, setting, num_classes) + per_part * parts

    def predict(self, cfg: EfficientNetConfig, res: int, setting: Setting, num_classes: int = 1000) -> float:
        """Predicted seconds per call of the whole network: :meth:`predict_units` times the yardstick's seconds
        now."""
        return self.predict_units(cfg, res, setting, num_classes) * self.yardstick(setting)

    def calibrate(
        self, networks: Sequence[tuple[EfficientNetConfig, int]], setting: Setting, repeats: int = 3
    ) -> tuple[float, float]:
        """Fit measured ≈ scale · Σ parts + per_part · parts, in yardsticks, on whole-network measurements of
        ``networks`` (:func:`fit_calibration`), keep it for ``setting`` and return it. A part timed alone runs a
        little faster than inside the network (its weights stay in cache; measured here: 3–8% for a small block,
        12–17% for one with 19 MB of weights), so the fit may carry a cost per part as well as a scale. Each network
        is measured between two timings of the yardstick, and counted in yardsticks too."""
        scale, per_part = fit_calibration(*self.calibration_inputs(networks, setting, repeats))
        self.calibration[_setting_key(setting)] = (scale, per_part)
        self.save()
        return scale, per_part

    def calibration_inputs(
        self, networks: Sequence[tuple[EfficientNetConfig, int]], setting: Setting, repeats: int = 3
    ) -> tuple[list[float], list[float], list[float]]:
        """What :meth:`calibrate` fits, per network: the sum of its parts, its number of parts, and its measured
        time (the median of ``repeats`` fresh copies), all in yardsticks."""
        sums = [self.parts_units(cfg, res, setting) for cfg, res in networks]
        counts = [float(len(network_parts(cfg, res))) for cfg, res in networks]
        measured = [
            self._in_yardsticks(setting, lambda c=cfg, r=res: measure_network(c, r, setting, repeats=repeats))
            for cfg, res in networks
        ]
        return sums, counts, measured


def fit_calibration(
    sums: Sequence[float], counts: Sequence[float], measured: Sequence[float], per_part: bool | None = None
) -> tuple[float, float]:
    """``(scale, per_part)`` with measured ≈ scale · sum + per_part · count, by least squares of the relative error.
    By default (``per_part=None``) the cost per part is fitted only where it earns its place: with four networks or
    more, and when it lowers the mean leave-one-out error against a scale alone (``True``: always fitted, with two
    networks or more; ``False``: a scale alone). Nearly in step with the sum, a per-part term fitted on ten
    networks can fit their noise: in one run on this machine it put 18 of 30 training steps at batch 16 within 10%,
    where a scale alone put 22; at batch 1 it earned its place (27 against 21). Measured twice, the rule did as
    well as the better of the two in every setting (``benchmarks/latency_calibration.py``)."""
    n = len(measured)
    if n == 0 or len(sums) != n or len(counts) != n:
        raise ValueError(f"calibration needs one sum, count and measurement per network, got {len(sums)}, "
                         f"{len(counts)}, {n}")  # fmt: skip
    rows = [(x / y, c / y) for x, c, y in zip(sums, counts, measured, strict=True)]  # each row over its measurement

    def scale_only(use: list[int]) -> tuple[float, float]:
        return sum(rows[i][0] for i in use) / sum(rows[i][0] ** 2 for i in use), 0.0

    def two_terms(use: list[int]) -> tuple[float, float]:
        sxx, snn = sum(rows[i][0] ** 2 for i in use), sum(rows[i][1] ** 2 for i in use)
        sxn = sum(rows[i][0] * rows[i][1] for i in use)
        sx, sn = sum(rows[i][0] for i in use), sum(rows[i][1] for i in use)
        det = sxx * snn - sxn * sxn
        return (sx * snn - sn * sxn) / det, (sn * sxx - sx * sxn) / det

    def left_out_error(fit: Callable[[list[int]], tuple[float, float]]) -> float:
        errors = []
        for i in range(n):
            a, b = fit([j for j in range(n) if j != i])
            errors.append(abs(a * rows[i][0] + b * rows[i][1] - 1))
        return sum(errors) / n

    everyone = list(range(n))
    if per_part is False or n < 2 or (per_part is None and n < 4):
        return scale_only(everyone)
    if per_part:
        return two_terms(everyone)
    return min((two_terms, scale_only), key=left_out_error)(everyone)


def _setting_key(setting: Setting) -> str:
    return json.dumps(asdict(setting), sort_keys=True)


def measure_network(
    cfg: EfficientNetConfig,
    res: int,
    setting: Setting,
    *,
    num_classes: int = 1000,
    min_time: float = 0.5,
    repeats: int = 1,
) -> float:
    """Measured seconds per call of the whole network built from ``cfg`` (the check of the prediction): the median
    over ``repeats`` freshly built copies (on this machine one copy's speed differs from the next by up to ~15% at
    batch 16, with where its memory lands)."""
    import dataclasses
    import statistics

    from ..models.efficientnet import EfficientNet

    # the parts are timed without dropout and stochastic depth; so is the whole
    quiet = dataclasses.replace(cfg, drop_rate=0.0, drop_path_rate=0.0)
    runs = []
    for _ in range(repeats):
        model = EfficientNet(quiet, num_classes=num_classes)
        runs.append(_timed(model, (setting.batch, 3, res, res), setting, False, min_time))
    return statistics.median(runs)
