"""A training run's settings: one frozen dataclass, from defaults, a YAML recipe and flags (flags win), validated
before anything trains — an invalid value is reported in one line naming its key, its value shown shortened.

Each field carries its documentation (the flag's ``--help``) and its check, side by side; the progressive
regularizers' keys are checked by their row in :data:`~convscale.train.progressive.REGULARIZERS`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import OPTIMIZERS
from ..utils.device import DEVICES
from .progressive import REGULARIZERS
from .recipes import RECIPES, is_number, list_recipes, short_repr

__all__ = [
    "RECIPES",
    "RESUMABLE",
    "TrainConfig",
    "config_from_dict",
    "field_help",
    "list_recipes",
    "load_config",
    "resume_config",
    "short_repr",
]

AMP = ("none", "bf16", "fp16")
DISTILL_MODES = ("kd", "hard", "function-matching")
MAX_RES = 1024  # larger inputs are a typo more often than a plan; they also run out of memory at any batch
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
Check = Callable[[Any], str | None]  # value -> None when valid, else what was expected


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def integer(lo: int, hi: int | None = None) -> Check:
    top = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
    return lambda v: None if _is_int(v) and v >= lo and (hi is None or v <= hi) else f"an integer {top}"


def number(lo: float, hi: float) -> Check:
    return lambda v: None if is_number(v) and lo <= v <= hi else f"a number in [{lo}, {hi}]"


def choice(*options: str) -> Check:
    return lambda v: None if v in options else "one of " + ", ".join(options)


def text(v: Any) -> str | None:
    return None if isinstance(v, str) and v != "" else "a non-empty string"


def flag(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def optional(check: Check) -> Check:
    return lambda v: None if v is None else (None if check(v) is None else f"{check(v)} or null")


def run_name(v: Any) -> str | None:
    ok = v is None or (isinstance(v, str) and _NAME.fullmatch(v) and ".." not in v)
    return None if ok else "a folder name of letters, digits and . _ + - (no path separators, no '..') or null"


def pretrained_source(v: Any) -> str | None:
    ok = v is True or (isinstance(v, str) and v != "")
    return None if ok else "true, a tag, model.tag, hf-hub:org/repo, or the path of a checkpoint or run"


def _f(default: Any, check: Check | None, help: str) -> Any:
    return field(default=default, metadata={"check": check, "help": help})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs. ``batch_size`` is the global batch (split across processes under torchrun); ``lr``
    is for that batch. ``data`` is ``synthetic-shapes`` or a folder with ``train/`` and ``val/``."""

    model: str = _f("resnet18", text, "a registered model name (convscale list)")
    data: str = _f(
        "synthetic-shapes",
        text,
        "synthetic-shapes (built in), a folder with train/ and val/, a dataset by name (convscale datasets), or "
        "wds:FOLDER_OR_URL (tar shards in timm's WebDataset layout, streamed; convscale shards writes them)",
    )
    epochs: int = _f(10, integer(1, 100_000), "training epochs")
    batch_size: int = _f(64, integer(1, 1 << 20), "global batch size (split across processes)")
    lr: float = _f(2e-3, number(1e-8, 100), "peak learning rate, for batch_size")
    optimizer: str = _f("adamw", choice(*OPTIMIZERS), "sgd (Nesterov), adamw, or rmsprop (TF-style epsilon)")
    momentum: float = _f(0.9, number(0, 0.9999), "momentum of SGD and RMSProp")
    weight_decay: float = _f(0.05, number(0, 1), "weight decay (none on norms, biases and gains)")
    warmup_epochs: float = _f(0.5, number(0, 1e6), "linear warm-up, in epochs, before the cosine decay")
    min_lr: float = _f(0.0, number(0, 100), "learning rate at the end of the cosine")
    label_smoothing: float = _f(0.1, number(0, 0.99), "label smoothing")
    drop_rate: float | None = _f(None, None, "classifier dropout (default: the model's own)")
    drop_path_rate: float | None = _f(None, None, "stochastic depth at the last block (default: the model's own)")
    ema: bool = _f(True, flag, "keep an exponential moving average of the weights and evaluate it too")
    ema_decay: float = _f(0.998, number(0, 0.999999), "EMA decay per step")
    amp: str = _f("none", choice(*AMP), "mixed precision: bf16 (CPU or CUDA) or fp16 (CUDA, with a grad scaler)")
    channels_last: bool = _f(True, flag, "channels-last memory format")
    compile: bool = _f(False, flag, "torch.compile the model")
    accum_steps: int = _f(1, integer(1, 1024), "slices of each batch whose gradients accumulate into one step")
    agc: float | None = _f(None, optional(number(1e-6, 10)), "adaptive gradient clipping factor, e.g. 0.01 (NFNets)")
    train_res: int | None = _f(
        None, optional(integer(32, MAX_RES)), "training image size (default: the data's own size or the model's)"
    )
    test_res: int | None = _f(
        None,
        optional(integer(32, MAX_RES)),
        "evaluation size (default: the model's own at its own training size, else the model's train-to-test ratio)",
    )
    crop_scale: float | None = _f(
        None,
        optional(number(0.01, 1)),
        "smallest area of the random-resized crop (default: 0.6 on synthetic-shapes, whose whole scene is the object; "
        "0.08 on photos, Inception's)",
    )
    workers: int = _f(2, integer(0, 256), "data loader worker processes")
    allow_empty_classes: bool = _f(
        False, flag, "keep a training class folder that holds no image as a class (default: the run stops, naming it)"
    )
    cache_res: int | None = _f(
        None,
        optional(integer(16, MAX_RES)),
        "decode an ImageFolder once into a memory-mapped uint8 cache, shorter side at most this many px (at least the "
        "training size; rebuilt for files that change)",
    )
    cache_dir: str | None = _f(
        None, optional(text), "where image caches live (default ~/.cache/convscale/images; use a node-local disk)"
    )
    shuffle_buffer: int = _f(
        4096, integer(1, 10_000_000), "wds: samples held in each process's shuffle buffer (raw bytes, not decoded)"
    )
    shard_timeout_s: float = _f(
        30.0, number(0.1, 3600),
        "wds: seconds without an answer (or below 4 KB/s over that long) before a shard read fails",
    )  # fmt: skip
    shard_max_member_mb: float = _f(
        256.0, number(0.001, 65536), "wds: the largest tar member read, in MiB (a shard with a larger one is bad)"
    )
    max_bad_shards: int = _f(
        3,
        integer(0, 1_000_000),
        "wds: shards that may fail or break off per epoch (each counted, its samples skipped) before the run stops",
    )
    seed: int = _f(0, integer(0, 2**63 - 1), "seed of the data order, augmentation and initialization")
    device: str = _f("auto", choice(*DEVICES), "auto (CUDA when available), cpu, cuda or mps")
    deterministic: bool = _f(False, flag, "deterministic algorithms (slower)")
    out: str = _f("runs", text, "folder that holds the run folders")
    name: str | None = _f(None, run_name, "the run folder's name inside --out (default: MODEL-DATA)")
    checkpoint_minutes: float = _f(10.0, number(0, 1e6), "also save a checkpoint this often within an epoch")
    checkpoint_steps: int = _f(0, integer(0), "also save every N steps when > 0")
    max_nonfinite: int = _f(5, integer(1), "consecutive non-finite steps that stop the run")
    shapes_train: int = _f(10_000, integer(1, 1_000_000), "synthetic-shapes: training images")
    shapes_val: int = _f(2_000, integer(1, 1_000_000), "synthetic-shapes: validation images")
    shapes_res: int = _f(32, integer(32, 256), "synthetic-shapes: image size")
    stages: int = _f(1, integer(1, 1000), "progressive learning: stages (1: a plain run at the final values)")
    progressive_variant: str = _f("paper", choice("paper", "official"), "paper (Algorithm 1) or official (AutoML)")
    size_start: int | None = _f(None, optional(integer(32, MAX_RES)), "progressive: the first stage's image size")
    size_multiple: int | None = _f(
        None, optional(integer(1, 128)), "progressive: stage sizes are multiples of it (default 8; 32 with --compile)"
    )
    constant_memory: bool = _f(
        False, flag, "progressive: a larger batch at the smaller stages, batch x (last size / size)^2, lr scaled"
    )
    drop_rate_start: float | None = _f(None, None, "progressive: the first stage's dropout (default: the last)")
    drop_path_rate_start: float | None = _f(None, None, "progressive: the first stage's drop path")
    randaug_n: int = _f(0, integer(0, 16), "RandAugment ops per image (0: off)")
    randaug_m: float = _f(9.0, None, "RandAugment magnitude (10: each op's usual maximum; above it extrapolates)")
    randaug_m_start: float | None = _f(None, None, "progressive: the first stage's RandAugment magnitude")
    randaug_ops: str = _f(
        "paper", choice("paper", "timm"), "RandAugment's ops: the paper's 14, or timm's rand-…-inc1 15 (with invert)"
    )
    mixup: float = _f(0.0, None, "mixup alpha (0: off)")
    mixup_start: float | None = _f(None, None, "progressive: the first stage's mixup alpha")
    cutmix: float = _f(0.0, None, "CutMix alpha (0: off); with mixup, one of the two per batch")
    cutmix_start: float | None = _f(None, None, "progressive: the first stage's CutMix alpha")
    mixup_switch_prob: float = _f(0.5, number(0, 1), "with mixup and CutMix both on: the chance of CutMix")
    random_erasing: float = _f(0.0, number(0, 1), "random erasing probability per image")
    pretrained: str | bool | None = _f(
        None,
        optional(pretrained_source),
        "start from published weights: the default tag, or TAG, model.tag, hf-hub:org/repo, a checkpoint or a run "
        "folder; the classifier is replaced for the data's classes, and the run trains and evaluates with the "
        "weights' normalization, interpolation, crop and sizes",
    )
    layer_decay: float | None = _f(
        None, optional(number(0.01, 1)), "layer-wise lr decay: each earlier block's lr times this once more (0.8)"
    )
    freeze_epochs: int = _f(0, integer(0, 100_000), "head-only warm-up: epochs in which only the classifier learns")
    freeze_bn: bool = _f(False, flag, "keep the pretrained batch-norm statistics frozen (small batches)")
    max_steps: int = _f(0, integer(0), "stop (and save) after this many steps, the schedule unchanged (0: off)")
    teacher: str | None = _f(
        None,
        optional(text),
        "distill from this teacher: a run folder or checkpoint, or MODEL[.TAG] with published weights (frozen, in "
        "eval mode, shown the very batch the student sees)",
    )
    distill: str | None = _f(
        None,
        optional(choice(*DISTILL_MODES)),
        "distillation loss: kd (alpha CE + (1-alpha) T^2 KL), hard (the teacher's top-1, DeiT), function-matching "
        "(KL only) [kd]",
    )
    distill_alpha: float = _f(0.5, number(0, 1), "kd and hard: the weight of the labels' cross-entropy")
    distill_temperature: float | None = _f(
        None, optional(number(0.05, 100)), "kd and function-matching: softmax temperature [kd 4, function-matching 1]"
    )
    sam: float | None = _f(None, optional(number(0, 10)), "sharpness-aware minimization with this radius rho (0.05)")
    sam_adaptive: bool = _f(False, flag, "ASAM: the perturbation scaled by |w| (use a larger rho, e.g. 0.5-2)")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            expected = check(getattr(self, f.name)) if check is not None else None
            if expected is not None:
                raise ValueError(f"config key {f.name!r}: expected {expected}, got {short_repr(getattr(self, f.name))}")
        for r in REGULARIZERS:
            for key in (r.key, r.key + "_start"):
                value = getattr(self, key)
                if value is not None or (key == r.key and not r.model_default):
                    r.check(f"config key {key!r}", value)
        self._check_together()
        from ..registry import get_entry

        get_entry(self.model)  # unknown model: ValueError naming the closest
        if self.pretrained not in (None, False):
            from ..weights.hub import resolve_pretrained

            resolve_pretrained(self.model, self.pretrained)  # an unknown tag: its message lists the model's tags
        if self.teacher is not None:  # MODEL[.TAG]: a model with published weights; or a run, a file, a repository
            from ..weights.hub import check

            check(self.teacher, published=True)

    def _check_together(self) -> None:
        if self.stages > self.epochs:
            raise ValueError(f"config key 'stages': {self.stages} stages need at least as many epochs ({self.epochs})")
        check_accum_steps(self.accum_steps, self.batch_size)
        if self.pretrained in (None, False):
            for key, off in (("layer_decay", None), ("freeze_epochs", 0)):
                if getattr(self, key) != off:
                    raise ValueError(f"config key {key!r} is for fine-tuning: it needs --pretrained")
        if self.freeze_epochs > self.epochs:
            raise ValueError(f"config key 'freeze_epochs': {self.freeze_epochs} is more than the run's {self.epochs}")
        if self.teacher is None and (self.distill is not None or self.distill_temperature is not None):
            raise ValueError("config key 'distill': distillation needs a teacher (--teacher MODEL[:TAG]|RUN)")
        if self.cache_res is not None and self.data == "synthetic-shapes":
            raise ValueError("config key 'cache_res': synthetic-shapes is rendered in memory; the cache is for folders")
        if self.sam is None and self.sam_adaptive:
            raise ValueError("config key 'sam_adaptive': ASAM needs a radius (--sam RHO)")
        if self.sam is not None and self.amp == "fp16":
            raise ValueError(
                "config key 'sam': SAM with --amp fp16 is not supported (the grad scaler may skip either of SAM's two "
                "passes); use --amp bf16 or none"
            )

    @property
    def distill_mode(self) -> str:
        return self.distill or "kd"

    @property
    def temperature(self) -> float:
        """The distillation temperature: the set one, else 4 for kd (Hinton) and 1 for function matching (Beyer)."""
        if self.distill_temperature is not None:
            return self.distill_temperature
        return 1.0 if self.distill_mode == "function-matching" else 4.0

    @property
    def run_name(self) -> str:
        if self.name:
            return self.name

        def safe(text: str, empty: str) -> str:
            return re.sub(r"[^A-Za-z0-9._+-]", "_", text).lstrip(".") or empty

        model = safe(Path(self.model).stem, "arch") if self.model.endswith((".yaml", ".yml")) else self.model
        return f"{model}-{safe(Path(self.data).name, 'data')}"[:100]

    @property
    def shard_options(self) -> dict[str, Any]:
        """How ``wds:`` shards are read (:class:`~convscale.data.shards.ShardDataset`'s options)."""
        return {"buffer": self.shuffle_buffer, "timeout_s": self.shard_timeout_s, "max_bad": self.max_bad_shards,
                "max_member_mb": self.shard_max_member_mb}  # fmt: skip

    @property
    def val_options(self) -> dict[str, Any]:
        """``make_val_dataset``'s settings that rebuild this run's synthetic-shapes val split."""
        return {"seed": self.seed, "shapes_val": self.shapes_val, "shapes_res": self.shapes_res}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_accum_steps(accum_steps: int, per_process: int) -> None:
    """Each of the ``accum_steps`` slices of a process's ``per_process`` images must hold 2 (batch norm needs 2)."""
    if accum_steps > 1 and per_process // accum_steps < 2:
        raise ValueError(
            f"config key 'accum_steps': {accum_steps} slices of {per_process} images per process leave fewer than 2 "
            "images per slice (batch norm needs 2)"
        )


def field_help() -> dict[str, str]:
    """Each config key's documentation: the ``convscale train`` flags' help."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}


#: what may differ from the stored config when a run resumes: how long it runs, where and how fast, never what it
#: learns at a step. ``out`` and ``name`` are ignored there (the run keeps its folder).
RESUMABLE = frozenset(
    {"epochs", "workers", "device", "compile", "deterministic", "checkpoint_minutes", "checkpoint_steps", "cache_dir"}
    | {"max_steps", "max_nonfinite", "data", "out", "name", "shard_timeout_s", "max_bad_shards", "shard_max_member_mb"}
)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """A validated ``TrainConfig`` from a mapping of its keys (a recipe, a stored run's config)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted((k for k in values if k not in known), key=str)
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), known, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(f"unknown config key {short_repr(unknown[0])}; {hint}(convscale train --help lists the keys)")
    return TrainConfig(**values)


def load_config(recipe: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then ``recipe`` (a shipped name such as ``efficientnetv2_s``, or a YAML file of config keys), then
    ``overrides`` (None values ignored). A recipe's ``adapt`` section fits it to the run's batch and epochs."""
    from .recipes import adapt_recipe, read_recipe

    defaults = {"batch_size": TrainConfig.batch_size, "epochs": TrainConfig.epochs}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    values: dict[str, Any] = read_recipe(recipe) if recipe is not None else {}
    adapt = values.pop("adapt", None)
    values.update(overrides)
    if adapt is not None:
        adapt_recipe(values, adapt, overrides, defaults)
    return config_from_dict(values)


def resume_config(stored: TrainConfig, asked: TrainConfig | None = None, **overrides: Any) -> TrainConfig:
    """The config a resumed run continues with: the run's own, with the changes that are safe (:data:`RESUMABLE`)
    taken from ``asked`` (a whole config, as ``fit`` is given) or ``overrides`` (the flags given; ``max_steps`` is
    then 0 unless given: it limits the invocation that set it); any other difference is a ValueError naming the key,
    raised before anything is touched."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    if asked is None:
        changes.setdefault("max_steps", 0)  # a limit of the invocation that set it, not of the run
    else:
        changes.update({k: v for k, v in asked.to_dict().items() if v != getattr(stored, k)})
    changes = {k: v for k, v in changes.items() if v != getattr(stored, k)}
    refused = sorted(set(changes) - RESUMABLE)
    if refused:
        key = refused[0]
        raise ValueError(
            f"config key {key!r} cannot change on --resume (the run has {short_repr(getattr(stored, key))}, "
            f"asked {short_repr(changes[key])}); what may change: {', '.join(sorted(RESUMABLE - {'out', 'name'}))}"
        )
    changes.pop("out", None)
    changes.pop("name", None)
    return dataclasses.replace(stored, **changes)
