"""Training recipes: YAML files of config keys, shipped (``convscale train --recipe NAME``) or the user's own.

The papers' numbers live once, on the model's registry entry (``ModelConfig.recipe``, in the trainer's vocabulary,
and NFNet's RandAugment fields); a shipped YAML is that recipe written for the trainer, and
:func:`recipe_differences` lists where it departs from it (the tests keep the list empty). A recipe's ``adapt``
section says at which global batch its learning rate, and for how many epochs its warm-up, were written, so that
both follow the user's ``--batch-size`` and ``--epochs``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..utils.checks import is_number, short_repr

__all__ = ["RECIPES", "adapt_recipe", "list_recipes", "published_values", "read_recipe", "recipe_differences"]

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
_MAX_RECIPE_BYTES = 1 << 20


def list_recipes() -> list[str]:
    """Names of the recipes shipped with convscale (``--recipe NAME``)."""
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file of ``key: value`` pairs, read with the safe loader; anything else is a one-line ValueError."""
    import yaml

    if path.stat().st_size > _MAX_RECIPE_BYTES:
        raise ValueError(f"{path}: a {what} is at most {_MAX_RECIPE_BYTES} bytes")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path}: not a valid YAML {what} ({reason[:120]})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise ValueError(f"{path}: a {what} is a mapping of config keys to values, got {short_repr(loaded)}")
    return loaded


def recipe_path(recipe: str | Path) -> Path:
    path = Path(recipe)
    if path.is_file():
        return path
    shipped = RECIPES / f"{recipe}.yaml"
    if not shipped.is_file():
        raise ValueError(f"no recipe {str(recipe)!r}: a YAML file, or one of {', '.join(list_recipes())}")
    return shipped


def read_recipe(recipe: str | Path) -> dict[str, Any]:
    return read_yaml_mapping(recipe_path(recipe), "recipe")


def adapt_recipe(values: dict[str, Any], adapt: Any, overrides: dict[str, Any], defaults: dict[str, int]) -> None:
    """Fit a recipe to this run: the learning rate scales linearly with the global batch (from ``adapt.batch_size``)
    and the warm-up with the epoch budget (from ``adapt.epochs``), unless they are set explicitly. ``defaults``: the
    config's own batch size and epochs."""
    ok = isinstance(adapt, dict) and set(adapt) <= {"batch_size", "epochs"}
    if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in adapt.values()):
        raise ValueError(f"recipe key 'adapt': expected {{batch_size: N, epochs: N}}, got {short_repr(adapt)}")
    batch = values.get("batch_size", defaults["batch_size"])
    epochs = values.get("epochs", defaults["epochs"])
    for key, (value, ref) in {"lr": (batch, "batch_size"), "warmup_epochs": (epochs, "epochs")}.items():
        if key in values and key not in overrides and adapt.get(ref) and is_number(values[key]) and is_number(value):
            values[key] = values[key] * value / adapt[ref]
    stages = values.get("stages", 1)
    if isinstance(epochs, int) and isinstance(stages, int) and stages > epochs and "stages" not in overrides:
        values["stages"] = epochs


def published_values(model: str) -> dict[str, Any]:
    """The model's published recipe in the trainer's keys, its learning rate at the recipe's own batch size (empty
    where the model carries none)."""
    from ..registry import get_entry

    cfg = get_entry(model).config
    recipe = cfg.recipe
    if recipe is None:
        return {}
    keys = ("optimizer", "lr", "batch_size", "weight_decay", "epochs", "warmup_epochs", "min_lr", "label_smoothing")
    values: dict[str, Any] = {k: getattr(recipe, k) for k in (*keys, "mixup", "cutmix", "random_erasing")}
    if recipe.ema_decay is not None:
        values["ema_decay"] = recipe.ema_decay
    if recipe.randaug() is not None:
        values["randaug_n"], values["randaug_m"], values["randaug_ops"] = recipe.randaug()
    if hasattr(cfg, "randaugment_magnitude"):  # NFNets: per variant, in the model's table (DeepMind's RA_level)
        values["randaug_n"], values["randaug_m"] = cfg.randaugment_layers, cfg.randaugment_magnitude
    return values


def recipe_differences(recipe: str | Path) -> list[str]:
    """Where a recipe departs from its model's published one: ``key: recipe value vs published value`` (the learning
    rate compared at the published batch size)."""
    values = read_recipe(recipe)
    published = published_values(values.get("model", "resnet18"))
    batch = (values.get("adapt") or {}).get("batch_size", values.get("batch_size"))
    out = []
    for key, want in published.items():
        got = values.get(key, 0.0 if key in ("mixup", "cutmix", "random_erasing", "min_lr") else None)
        if key == "batch_size":
            continue
        if key == "lr" and is_number(got) and batch:
            got = got * published["batch_size"] / batch
        same = got == want if not (is_number(got) and is_number(want)) else math.isclose(got, want, rel_tol=1e-9)
        if not same:
            out.append(f"{key}: {got!r} vs {want!r}")
    return out
