"""A training run's settings: one frozen dataclass, from defaults, a YAML recipe and flags (flags win), validated
before anything trains — an invalid value is reported with its key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RECIPES", "TrainConfig", "list_recipes", "load_config"]

OPTIMIZERS = ("sgd", "adamw", "rmsprop")
AMP = ("none", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs. ``batch_size`` is the global batch (split across processes under torchrun); ``lr``
    is for that batch. ``data`` is ``synthetic-shapes`` or a folder with ``train/`` and ``val/``."""

    model: str = "resnet18"
    data: str = "synthetic-shapes"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    optimizer: str = "adamw"  # sgd (Nesterov), adamw, rmsprop (TF-style epsilon)
    momentum: float = 0.9  # SGD and RMSProp
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    min_lr: float = 0.0
    label_smoothing: float = 0.1
    drop_rate: float | None = None  # None: the model's own
    drop_path_rate: float | None = None
    ema: bool = True
    ema_decay: float = 0.998
    amp: str = "none"  # bf16 autocast on CPU or CUDA; fp16 with a grad scaler on CUDA
    channels_last: bool = True
    compile: bool = False
    accum_steps: int = 1
    agc: float | None = None  # adaptive gradient clipping factor, e.g. 0.01 (NFNets)
    train_res: int | None = None  # None: the data's native size (synthetic-shapes) or the model's train size
    test_res: int | None = None
    crop_scale: float | None = None  # smallest crop area of the random-resized crop; None: 0.6 on synthetic-shapes
    # (the whole scene is the object, which a small crop would cut away), 0.08 on photos (Inception's)
    workers: int = 2
    seed: int = 0
    device: str = "auto"
    deterministic: bool = False
    out: str = "runs"
    name: str | None = None  # the run folder's name (default: model and data)
    checkpoint_minutes: float = 10.0
    checkpoint_steps: int = 0  # also every N steps when > 0 (tests, very long epochs)
    max_nonfinite: int = 5  # consecutive non-finite losses that stop the run
    shapes_train: int = 10_000
    shapes_val: int = 2_000
    shapes_res: int = 32
    # regularization and progressive learning (EfficientNetV2 §4.2): each *_start is the first stage's value (None:
    # the same as the last); values grow linearly over `stages` stages; stages 1 is a plain run at the final values
    stages: int = 1
    progressive_variant: str = "paper"  # or "official" (the AutoML code: see convscale.train.progressive)
    size_start: int | None = None  # first stage's image size (the last is train_res)
    size_multiple: int | None = None  # stage sizes are rounded to it (None: 8, or 32 with compile)
    constant_memory: bool = False  # a larger batch at the smaller stages, batch * (last size / size)^2, lr scaled
    drop_rate_start: float | None = None
    drop_path_rate_start: float | None = None
    randaug_n: int = 0  # RandAugment ops per image (0: off), on the training device
    randaug_m: float = 9.0
    randaug_m_start: float | None = None
    mixup: float = 0.0  # mixup alpha (0: off)
    mixup_start: float | None = None
    cutmix: float = 0.0  # CutMix alpha (0: off); with mixup, one of the two per batch
    cutmix_start: float | None = None
    mixup_switch_prob: float = 0.5  # with both mixup and CutMix on: the chance that a batch uses CutMix
    random_erasing: float = 0.0  # probability per image
    max_steps: int = 0  # stop (and save) after this many batches, the schedule unchanged (0: run every epoch)

    def __post_init__(self) -> None:
        def check(key: str, ok: bool, expected: str) -> None:
            if not ok:
                raise ValueError(f"config key {key!r}: expected {expected}, got {getattr(self, key)!r}")

        def pos_int(key: str, minimum: int = 1) -> None:
            v = getattr(self, key)
            check(key, isinstance(v, int) and not isinstance(v, bool) and v >= minimum, f"an integer >= {minimum}")

        def number(key: str, lo: float, hi: float, optional: bool = False) -> None:
            v = getattr(self, key)
            if optional and v is None:
                return
            ok = isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi
            check(key, ok, f"a number in [{lo}, {hi}]" + (" or null" if optional else ""))

        for key in ("epochs", "batch_size", "accum_steps", "max_nonfinite", "shapes_train", "shapes_val"):
            pos_int(key)
        for key in ("workers", "checkpoint_steps", "max_steps", "seed"):
            pos_int(key, 0)
        pos_int("shapes_res", 16)
        for key in ("train_res", "test_res"):
            if getattr(self, key) is not None:
                pos_int(key, 32)
        number("lr", 1e-8, 100)
        number("min_lr", 0, 100)
        number("momentum", 0, 0.9999)
        number("weight_decay", 0, 1)
        number("warmup_epochs", 0, 1e6)
        number("label_smoothing", 0, 0.99)
        number("ema_decay", 0, 0.999999)
        number("crop_scale", 0.01, 1, optional=True)
        number("checkpoint_minutes", 0, 1e6)
        number("drop_rate", 0, 0.99, optional=True)
        number("drop_path_rate", 0, 0.99, optional=True)
        number("agc", 1e-6, 10, optional=True)
        pos_int("stages")
        pos_int("randaug_n", 0)
        if self.size_start is not None:
            pos_int("size_start", 32)
        if self.size_multiple is not None:
            pos_int("size_multiple")
        for key in ("drop_rate_start", "drop_path_rate_start"):
            number(key, 0, 0.99, optional=True)
        for key in ("randaug_m", "mixup", "cutmix"):
            number(key, 0, 100)
        for key in ("randaug_m_start", "mixup_start", "cutmix_start"):
            number(key, 0, 100, optional=True)
        number("random_erasing", 0, 1)
        number("mixup_switch_prob", 0, 1)
        check("progressive_variant", self.progressive_variant in ("paper", "official"), "paper or official")
        if self.stages > self.epochs:
            raise ValueError(f"config key 'stages': {self.stages} stages need at least as many epochs ({self.epochs})")
        check("optimizer", self.optimizer in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS))
        check("amp", self.amp in AMP, "one of " + ", ".join(AMP))
        check("device", self.device in ("auto", "cpu", "cuda", "mps"), "one of auto, cpu, cuda, mps")
        for key in ("model", "data", "out"):
            check(key, isinstance(getattr(self, key), str) and getattr(self, key) != "", "a non-empty string")
        for key in ("ema", "channels_last", "compile", "deterministic", "constant_memory"):
            check(key, isinstance(getattr(self, key), bool), "true or false")
        from ..registry import get_entry

        get_entry(self.model)  # unknown model: ValueError naming the closest

    @property
    def run_name(self) -> str:
        return self.name or f"{self.model}-{Path(self.data).name}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def list_recipes() -> list[str]:
    """Names of the recipes shipped with convscale (``--recipe NAME``)."""
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def _read_recipe(recipe: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(recipe)
    if not path.is_file():
        shipped = RECIPES / f"{recipe}.yaml"
        if not shipped.is_file():
            raise ValueError(f"no recipe {str(recipe)!r}: a YAML file, or one of {', '.join(list_recipes())}")
        path = shipped
    loaded = yaml.safe_load(path.read_text())
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a recipe is a mapping of config keys to values")
    return loaded


def _adapt(values: dict[str, Any], adapt: Any, overrides: dict[str, Any]) -> None:
    """Fit a recipe to this run: the learning rate scales linearly with the global batch (from ``adapt.batch_size``)
    and the warm-up with the epoch budget (from ``adapt.epochs``), unless they are set explicitly."""
    if not isinstance(adapt, dict) or not set(adapt) <= {"batch_size", "epochs"}:
        raise ValueError(f"recipe key 'adapt': expected {{batch_size: N, epochs: N}}, got {adapt!r}")
    batch = values.get("batch_size", TrainConfig.batch_size)
    if "lr" in values and "lr" not in overrides and adapt.get("batch_size"):
        values["lr"] = values["lr"] * batch / adapt["batch_size"]
    epochs = values.get("epochs", TrainConfig.epochs)
    if "warmup_epochs" in values and "warmup_epochs" not in overrides and adapt.get("epochs"):
        values["warmup_epochs"] = values["warmup_epochs"] * epochs / adapt["epochs"]
    if values.get("stages", 1) > epochs and "stages" not in overrides:
        values["stages"] = epochs


def load_config(recipe: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then ``recipe`` (a shipped name such as ``efficientnetv2_s``, or a YAML file of config keys), then
    ``overrides`` (None values ignored). A recipe's ``adapt`` section fits it to the run's batch and epochs."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    values: dict[str, Any] = _read_recipe(recipe) if recipe is not None else {}
    adapt = values.pop("adapt", None)
    values.update(overrides)
    if adapt is not None:
        _adapt(values, adapt, overrides)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config key {unknown[0]!r}; the keys are {', '.join(sorted(known))}")
    return TrainConfig(**values)
