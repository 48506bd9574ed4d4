"""``create_model`` and ``model_info``: the registry's front door."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ModelConfig, Published
from .counting import count_macs, count_params
from .registry import get_entry

__all__ = ["ModelInfo", "count_model", "create_model", "live_counts", "model_info"]


def _check_rates(rates: dict[str, float | None]) -> None:
    for label, value in rates.items():
        if value is not None and (not isinstance(value, int | float) or not 0.0 <= value < 1.0):
            raise ValueError(f"{label} must be a number in [0, 1), got {value!r}")


def _config_with(config: ModelConfig, name: str, overrides: dict[str, Any]) -> ModelConfig:
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"{name} has no setting {', '.join(unknown)}; its settings are {', '.join(sorted(fields))}")
    return dataclasses.replace(config, **overrides)


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int = 3,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    pretrained: bool | str | Path | None = None,
    pretrained_weights: str = "auto",
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: a registered name (``convscale.list_models()``); an unknown name raises ValueError with the closest.
            A full weights name (``"convnext_tiny.fb_in1k"``) builds the model and, with ``pretrained=True``, loads
            those weights.
        num_classes: classifier width; 0 leaves the pooled features (no classifier). Default: the pretrained
            weights' own, else 1000. With another width than the weights', their classifier is left out and the
            model keeps a fresh one (fine-tuning).
        in_chans: input channels (> 0).
        drop_rate: the dropout rate before the classifier (default: the variant's).
        drop_path_rate: the stochastic-depth rate reached at the last block (default: the variant's).
        pretrained: ``True`` (the model's default published weights, ``convscale list --pretrained``), a tag
            (``"in1k"``), a full name (``"convnext_tiny.fb_in22k_ft_in1k"``), ``"hf-hub:org/repo"`` (a timm-layout
            repository), a local checkpoint (``.safetensors``, or ``.pth``/``.pt``/``.bin`` read with
            ``weights_only=True``) in convscale or timm layout, or a run of ``convscale train`` (its folder or its
            checkpoint file). Published weights download on first use (timm's through ``huggingface_hub``, the
            ``convscale[hub]`` extra, honouring its cache and ``HF_HUB_OFFLINE``), and the model carries their
            :class:`~convscale.weights.Weights` as ``model.pretrained_cfg`` (``.transforms()``: their evaluation
            transform).
        pretrained_weights: for a training run, ``"ema"``, ``"model"`` (the raw weights) or ``"auto"`` (the EMA
            when the run kept one).
        features_only: return a backbone whose forward gives the feature maps at each stride (see ``feature_info``).
        out_indices: which of those maps, by index into the model's ``feature_info``.
        **overrides: any field of the variant's config (e.g. ``width_mult=1.1``, ``act_layer="relu"``).
    """
    name, pretrained = _split_tag(name, pretrained)
    published, local = _published(name, pretrained)
    if published is not None:
        overrides = _with_form(published, overrides)
        num_classes = published.num_classes if num_classes is None else num_classes
    num_classes = 1000 if num_classes is None else num_classes
    entry = get_entry(name)
    _check_sizes(num_classes, in_chans)
    rates = {"drop_rate": drop_rate, "drop_path_rate": drop_path_rate}
    _check_rates(rates)
    overrides |= {k: v for k, v in rates.items() if v is not None}
    model = entry.build(_config_with(entry.config, name, overrides), num_classes=num_classes, in_chans=in_chans)
    model.pretrained_cfg = published
    _load_weights(model, name, published, local, pretrained_weights)
    if features_only:
        from .models.features import FeatureExtractor

        return FeatureExtractor(model, out_indices)
    if out_indices is not None:
        raise ValueError("out_indices applies only with features_only=True")
    return model


def _check_sizes(num_classes: object, in_chans: object) -> None:
    for label, value, low in (("num_classes", num_classes, 0), ("in_chans", in_chans, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            kind = "an integer >= 0 (0: no classifier)" if low == 0 else "a positive integer"
            raise ValueError(f"{label} must be {kind}, got {value!r}")


def _load_weights(model: nn.Module, name: str, published, local, weights: str) -> None:
    """Published weights (downloaded on first use, in their source's layout), or a local file or run."""
    if published is not None:
        from .weights.files import load_reference
        from .weights.hub import fetch_weights

        load_reference(model, fetch_weights(published), name, published.source)
    elif local is not None:
        from .weights.files import load_pretrained

        load_pretrained(model, local, name=name, weights=weights)


def _split_tag(name: str, pretrained: object) -> tuple[str, object]:
    """``"convnext_tiny.fb_in1k"`` → the model and, with ``pretrained=True``, its weights named in full."""
    if isinstance(name, str) and "." in name and not name.lower().endswith((".yaml", ".yml")):  # not an arch file
        model, _ = name.split(".", 1)
        get_entry(model)
        return model, (name if pretrained is True else pretrained)
    return name, pretrained


def _published(name: str, pretrained: object):
    """(published weights, local path): what ``pretrained`` names; both None without pretrained weights."""
    if pretrained is None or pretrained is False:
        return None, None
    from .weights.hub import hf_repo_weights, resolve_pretrained

    r = resolve_pretrained(name, pretrained)
    if r.hf_repo is not None:
        return hf_repo_weights(name, r.hf_repo), None
    return r.weights, r.path


def _with_form(published, overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` plus the settings under which the model computes what the weights were trained as."""
    form = published.form
    clash = sorted(k for k in form if k in overrides and overrides[k] != form[k])
    if clash:
        key = clash[0]
        raise ValueError(
            f"{published.name} needs {key}={form[key]!r} (the {published.source} model it was trained as), "
            f"got {key}={overrides[key]!r}"
        )
    return {**overrides, **form}


@dataclass(frozen=True)
class ModelInfo:
    """What ``convscale info`` shows: measured counts beside the paper's numbers."""

    name: str
    family: str
    params: int
    gmacs_train: float  # multiply-adds per image at train_res, in billions
    gmacs_test: float
    train_res: int
    test_res: int
    published: Published | None
    config: ModelConfig


#: params and MACs of every registered model at its train/test sizes (scripts/update_model_counts.py writes it;
#: tests/test_model_counts.py checks it against the models)
COUNTS_PATH = Path(__file__).with_name("model_counts.json")


@cache
def _count_table() -> dict[str, dict]:
    return json.loads(COUNTS_PATH.read_text()) if COUNTS_PATH.is_file() else {}


def live_counts(name: str, resolutions: tuple[int, ...]) -> tuple[int, dict[int, int]]:
    """Params and multiply-adds at each resolution, counted now on the meta device."""
    with torch.device("meta"):
        model = create_model(name)
    return count_params(model), {r: count_macs(model, r) for r in sorted(set(resolutions))}


@cache
def count_model(name: str, resolutions: tuple[int, ...]) -> tuple[int, dict[int, int]]:
    """Params and multiply-adds of a registered model at each resolution: from the shipped table where it has them
    (so `convscale list` is instant), else counted on the meta device."""
    row = _count_table().get(name)
    if row is not None and all(str(r) in row["macs"] for r in resolutions):
        return row["params"], {r: row["macs"][str(r)] for r in sorted(set(resolutions))}
    return live_counts(name, resolutions)


def model_info(name: str) -> ModelInfo:
    """Params and GMACs (counted on the meta device), resolutions, and the published numbers of ``name``."""
    entry = get_entry(name)
    cfg = entry.config
    params, macs = count_model(name, (cfg.train_res, cfg.test_res))
    return ModelInfo(
        name=name,
        family=entry.family,
        params=params,
        gmacs_train=macs[cfg.train_res] / 1e9,
        gmacs_test=macs[cfg.test_res] / 1e9,
        train_res=cfg.train_res,
        test_res=cfg.test_res,
        published=cfg.published,
        config=cfg,
    )
