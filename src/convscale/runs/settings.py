"""A training run's settings: one frozen dataclass, from defaults, a YAML recipe and flags (flags win), validated
before anything trains — an invalid value is reported in one line naming its key, its value shown shortened.

Each field carries its documentation (the flag's ``--help``) and its check, side by side; the progressive
regularizers' keys are checked by their row in :data:`~convscale.methods.progressive.REGULARIZERS`. Each training
method's settings are its own frozen dataclass (``convscale/methods/``), nested here as ``cfg.ema``, ``cfg.sam``...;
the config is written, read, given on the command line and in recipes as flat keys (``ema_decay``, ``sam``,
``sam_adaptive``...), each method's fields naming theirs, so recipes and stored runs read as they always did.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import OPTIMIZERS
from ..methods.agc import AGC
from ..methods.base import MethodConfig
from ..methods.bce import BCE
from ..methods.distill import Distill
from ..methods.ema import EMA
from ..methods.finetune import FineTune
from ..methods.progressive import REGULARIZERS
from ..methods.sam import SAM
from ..utils.checks import choice, flag, integer, number, optional, setting, short_repr, text
from ..utils.device import DEVICES
from .recipes import RECIPES, list_recipes

__all__ = [
    "RECIPES",
    "RESUMABLE",
    "TrainConfig",
    "config_from_dict",
    "field_help",
    "list_recipes",
    "load_config",
    "resume_config",
]

AMP = ("auto", "none", "bf16", "fp16")
MAX_RES = 1024  # larger inputs are a typo more often than a plan; they also run out of memory at any batch
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")


def run_name(v: Any) -> str | None:
    ok = v is None or (isinstance(v, str) and _NAME.fullmatch(v) and ".." not in v)
    return None if ok else "a folder name of letters, digits and . _ + - (no path separators, no '..') or null"


def pretrained_source(v: Any) -> str | None:
    ok = v is True or (isinstance(v, str) and v != "")
    return None if ok else "true, a tag, model.tag, hf-hub:org/repo, or the path of a checkpoint or run"


#: the metadata of a field that nests a training method's settings (its default: the method off or at its usual
#: values), e.g. ``sam: SAM = field(default_factory=SAM, metadata=METHOD)``
METHOD = {"method": True}


@dataclass(frozen=True, init=False)
class TrainConfig:
    """Everything a run needs. ``batch_size`` is the global batch (split across processes under torchrun); ``lr``
    is for that batch. ``data`` is ``synthetic-shapes`` or a folder with ``train/`` and ``val/``."""

    model: str = setting("resnet18", text, "a registered model name (convscale list)")
    data: str = setting(
        "synthetic-shapes",
        text,
        "synthetic-shapes (built in), a folder with train/ and val/, a dataset by name (convscale datasets), or "
        "wds:FOLDER_OR_URL (tar shards in timm's WebDataset layout, streamed; convscale shards writes them)",
    )
    epochs: int = setting(10, integer(1, 100_000), "training epochs")
    batch_size: int = setting(64, integer(1, 1 << 20), "global batch size (split across processes)")
    lr: float = setting(2e-3, number(1e-8, 100), "peak learning rate, for batch_size")
    optimizer: str = setting("adamw", choice(*OPTIMIZERS), "sgd (Nesterov), adamw, or rmsprop (TF-style epsilon)")
    momentum: float = setting(0.9, number(0, 0.9999), "momentum of SGD and RMSProp")
    weight_decay: float = setting(0.05, number(0, 1), "weight decay (none on norms, biases and gains)")
    warmup_epochs: float = setting(0.5, number(0, 1e6), "linear warm-up, in epochs, before the cosine decay")
    min_lr: float = setting(0.0, number(0, 100), "learning rate at the end of the cosine")
    label_smoothing: float = setting(0.1, number(0, 0.99), "label smoothing")
    drop_rate: float | None = setting(None, None, "classifier dropout (default: the model's own)")
    drop_path_rate: float | None = setting(None, None, "stochastic depth at the last block (default: the model's own)")
    ema: EMA = field(default_factory=EMA, metadata=METHOD)
    amp: str = setting(
        "auto",
        choice(*AMP),
        "precision: auto (measured: bf16 where this CPU or GPU runs it faster, else fp32), none (fp32), bf16 (CPU or "
        "CUDA) or fp16 (CUDA, with a grad scaler)",
    )
    channels_last: bool = setting(True, flag, "channels-last memory format")
    compile: bool = setting(False, flag, "torch.compile the model")
    accum_steps: int = setting(1, integer(1, 1024), "slices of each batch whose gradients accumulate into one step")
    agc: AGC = field(default_factory=AGC, metadata=METHOD)
    train_res: int | None = setting(
        None, optional(integer(32, MAX_RES)), "training image size (default: the data's own size or the model's)"
    )
    test_res: int | None = setting(
        None,
        optional(integer(32, MAX_RES)),
        "evaluation size (default: the model's own at its own training size, else the model's train-to-test ratio)",
    )
    crop_scale: float | None = setting(
        None,
        optional(number(0.01, 1)),
        "smallest area of the random-resized crop (default: 0.6 on synthetic-shapes, whose whole scene is the object; "
        "0.08 on photos, Inception's)",
    )
    workers: int = setting(2, integer(0, 256), "data loader worker processes")
    allow_empty_classes: bool = setting(
        False, flag, "keep a training class folder that holds no image as a class (default: the run stops, naming it)"
    )
    cache_res: int | None = setting(
        None,
        optional(integer(16, MAX_RES)),
        "decode an ImageFolder once into a memory-mapped uint8 cache, shorter side at most this many px (at least the "
        "training size; rebuilt for files that change)",
    )
    cache_dir: str | None = setting(
        None, optional(text), "where image caches live (default ~/.cache/convscale/images; use a node-local disk)"
    )
    shuffle_buffer: int = setting(
        4096, integer(1, 10_000_000), "wds: samples held in each process's shuffle buffer (raw bytes, not decoded)"
    )
    shard_timeout_s: float = setting(
        30.0, number(0.1, 3600),
        "wds: seconds without an answer (or below 4 KB/s over that long) before a shard read fails",
    )  # fmt: skip
    shard_max_member_mb: float = setting(
        256.0, number(0.001, 65536), "wds: the largest tar member read, in MiB (a shard with a larger one is bad)"
    )
    max_bad_shards: int = setting(
        3,
        integer(0, 1_000_000),
        "wds: shards that may fail or break off per epoch (each counted, its samples skipped) before the run stops",
    )
    seed: int = setting(0, integer(0, 2**63 - 1), "seed of the data order, augmentation and initialization")
    device: str = setting("auto", choice(*DEVICES), "auto (CUDA when available), cpu, cuda or mps")
    deterministic: bool = setting(False, flag, "deterministic algorithms (slower)")
    out: str = setting("runs", text, "folder that holds the run folders")
    name: str | None = setting(None, run_name, "the run folder's name inside --out (default: MODEL-DATA)")
    checkpoint_minutes: float = setting(10.0, number(0, 1e6), "also save a checkpoint this often within an epoch")
    checkpoint_steps: int = setting(0, integer(0), "also save every N steps when > 0")
    max_nonfinite: int = setting(5, integer(1), "consecutive non-finite steps that stop the run")
    shapes_train: int = setting(10_000, integer(1, 1_000_000), "synthetic-shapes: training images")
    shapes_val: int = setting(2_000, integer(1, 1_000_000), "synthetic-shapes: validation images")
    shapes_res: int = setting(32, integer(32, 256), "synthetic-shapes: image size")
    stages: int = setting(1, integer(1, 1000), "progressive learning: stages (1: a plain run at the final values)")
    progressive_variant: str = setting("paper", choice("paper", "official"), "paper (Algorithm 1) or official (AutoML)")
    size_start: int | None = setting(None, optional(integer(32, MAX_RES)), "progressive: the first stage's image size")
    size_multiple: int | None = setting(
        None, optional(integer(1, 128)), "progressive: stage sizes are multiples of it (default 8; 32 with --compile)"
    )
    constant_memory: bool = setting(
        False, flag, "progressive: a larger batch at the smaller stages, batch x (last size / size)^2, lr scaled"
    )
    drop_rate_start: float | None = setting(None, None, "progressive: the first stage's dropout (default: the last)")
    drop_path_rate_start: float | None = setting(None, None, "progressive: the first stage's drop path")
    randaug_n: int = setting(0, integer(0, 16), "RandAugment ops per image (0: off)")
    randaug_m: float = setting(9.0, None, "RandAugment magnitude (10: each op's usual maximum; above it extrapolates)")
    randaug_m_start: float | None = setting(None, None, "progressive: the first stage's RandAugment magnitude")
    randaug_ops: str = setting(
        "paper", choice("paper", "timm"), "RandAugment's ops: the paper's 14, or timm's rand-…-inc1 15 (with invert)"
    )
    mixup: float = setting(0.0, None, "mixup alpha (0: off)")
    mixup_start: float | None = setting(None, None, "progressive: the first stage's mixup alpha")
    cutmix: float = setting(0.0, None, "CutMix alpha (0: off); with mixup, one of the two per batch")
    cutmix_start: float | None = setting(None, None, "progressive: the first stage's CutMix alpha")
    mixup_switch_prob: float = setting(0.5, number(0, 1), "with mixup and CutMix both on: the chance of CutMix")
    random_erasing: float = setting(0.0, number(0, 1), "random erasing probability per image")
    pretrained: str | bool | None = setting(
        None,
        optional(pretrained_source),
        "start from published weights: the default tag, or TAG, model.tag, hf-hub:org/repo, a checkpoint or a run "
        "folder; the classifier is replaced for the data's classes, and the run trains and evaluates with the "
        "weights' normalization, interpolation, crop and sizes",
    )
    finetune: FineTune = field(default_factory=FineTune, metadata=METHOD)
    max_steps: int = setting(0, integer(0), "stop (and save) after this many steps, the schedule unchanged (0: off)")
    distill: Distill = field(default_factory=Distill, metadata=METHOD)
    sam: SAM = field(default_factory=SAM, metadata=METHOD)
    bce: BCE = field(default_factory=BCE, metadata=METHOD)

    def __init__(self, **values: Any) -> None:
        """Keyword arguments are the flat keys (``sam=0.05, sam_adaptive=True``), or a method's whole settings
        (``sam=SAM(0.05, True)``), or both (the flat keys then change the settings given)."""
        for f in dataclasses.fields(self):
            if f.metadata.get("method"):
                kind = f.default_factory
                given = values.pop(f.name) if isinstance(values.get(f.name), kind) else kind()
                flat = {k: values.pop(k) for k, _ in kind.flat_fields() if k in values}
                changes = {mf.name: flat[k] for k, mf in kind.flat_fields() if k in flat}
                object.__setattr__(self, f.name, dataclasses.replace(given, **changes) if changes else given)
            else:
                object.__setattr__(self, f.name, values.pop(f.name, f.default))
        if values:
            raise TypeError(f"TrainConfig got an unexpected keyword argument {next(iter(values))!r}")
        self.__post_init__()

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

    def _check_together(self) -> None:
        if self.stages > self.epochs:
            raise ValueError(f"config key 'stages': {self.stages} stages need at least as many epochs ({self.epochs})")
        check_accum_steps(self.accum_steps, self.batch_size)
        if self.cache_res is not None and self.data == "synthetic-shapes":
            raise ValueError("config key 'cache_res': synthetic-shapes is rendered in memory; the cache is for folders")
        for settings in self.methods():
            settings.check_with(self)

    def methods(self) -> Iterator[MethodConfig]:
        """The training methods' settings, in the order their hooks act."""
        for f in dataclasses.fields(self):
            if f.metadata.get("method"):
                yield getattr(self, f.name)

    @classmethod
    def flat_fields(cls) -> list[tuple[str, dataclasses.Field]]:
        """(key, field) of every setting as the CLI, the recipes and a stored run spell it, in order: a method's
        settings under their flat keys, where the method sits."""
        out: list[tuple[str, dataclasses.Field]] = []
        for f in dataclasses.fields(cls):
            out += f.default_factory.flat_fields() if f.metadata.get("method") else [(f.name, f)]
        return out

    def replace(self, **flat: Any) -> TrainConfig:
        """This config with some flat keys changed (validated again)."""
        return config_from_dict(self.to_dict() | flat)

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
        """The flat keys and their values (``config.yaml``, a checkpoint's header)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out |= value.to_flat() if f.metadata.get("method") else {f.name: value}
        return out


def check_accum_steps(accum_steps: int, per_process: int) -> None:
    """Each of the ``accum_steps`` slices of a process's ``per_process`` images must hold 2 (batch norm needs 2)."""
    if accum_steps > 1 and per_process // accum_steps < 2:
        raise ValueError(
            f"config key 'accum_steps': {accum_steps} slices of {per_process} images per process leave fewer than 2 "
            "images per slice (batch norm needs 2)"
        )


def field_help() -> dict[str, str]:
    """Each config key's documentation: the ``convscale train`` flags' help."""
    return {key: f.metadata["help"] for key, f in TrainConfig.flat_fields()}


#: what may differ from the stored config when a run resumes: how long it runs, where and how fast, never what it
#: learns at a step. ``out`` and ``name`` are ignored there (the run keeps its folder).
RESUMABLE = frozenset(
    {"epochs", "workers", "device", "compile", "deterministic", "checkpoint_minutes", "checkpoint_steps", "cache_dir"}
    | {"max_steps", "max_nonfinite", "data", "out", "name", "shard_timeout_s", "max_bad_shards", "shard_max_member_mb"}
)


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """A validated ``TrainConfig`` from a mapping of its keys (a recipe, a stored run's config)."""
    known = {key for key, _ in TrainConfig.flat_fields()}
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
    stored_values = stored.to_dict()
    changes = {k: v for k, v in overrides.items() if v is not None}
    if asked is None:
        changes.setdefault("max_steps", 0)  # a limit of the invocation that set it, not of the run
    else:
        changes.update({k: v for k, v in asked.to_dict().items() if v != stored_values[k]})
    # amp: auto asked again keeps the precision the run chose when it started
    changes = {k: v for k, v in changes.items() if v != stored_values[k] and (k, v) != ("amp", "auto")}
    refused = sorted(set(changes) - RESUMABLE)
    if refused:
        key = refused[0]
        raise ValueError(
            f"config key {key!r} cannot change on --resume (the run has {short_repr(stored_values[key])}, "
            f"asked {short_repr(changes[key])}); what may change: {', '.join(sorted(RESUMABLE - {'out', 'name'}))}"
        )
    changes.pop("out", None)
    changes.pop("name", None)
    return dataclasses.replace(stored, **changes)
