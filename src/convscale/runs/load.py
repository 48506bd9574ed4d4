"""A trained run, loaded: its model with the weights asked, its classes and how it is evaluated. Used by ``fit``
(start and resume), :func:`convscale.resolve` (``convscale eval``, ``predict``, ``export``, ``--teacher``), and
``create_model(pretrained=RUN)``.

The evaluation policy follows from the run's config and the model's own sizes alone: the training size is the
config's, else the data's own (synthetic-shapes), else the model's; the test size is the config's, else the training
size times the model's train → test ratio (the FixRes effect its recipe was tuned with); photos are resized to
``size / 0.875`` and centre-cropped, synthetic scenes are used whole; bicubic resampling, ImageNet normalization.
A run that starts from published weights takes their sizes, crop, resampling and normalization instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import BUILTIN, EvalTransform
from ..data.transforms import EvalPolicy
from ..factory import create_model, model_info
from ..weights.files import choose_weights, load_mapped, match_state_dict
from .checkpoint import Checkpoint, TrainState, read_checkpoint
from .layout import RunFolder
from .settings import MAX_RES, TrainConfig
from .start import model_overrides, published_weights

__all__ = ["LoadedRun", "eval_policy", "load_run", "model_of", "resolutions"]


def resolutions(cfg: TrainConfig) -> tuple[int, int]:
    """(training size, test size) of a run. The model's own sizes are its published weights' when the run starts
    from them (``resnet50.a1_in1k``: 224 / 288), else the model's."""
    own = _own_sizes(cfg)
    native = cfg.shapes_res if cfg.data == BUILTIN else None
    train_res = cfg.train_res or native or own[0]
    if cfg.test_res:
        return train_res, cfg.test_res
    if train_res == own[0]:  # the model's own sizes (B3: 300 / 300, ConvNeXt-atto: 224 / 288)
        return train_res, own[1]
    test_res = 8 * round(train_res * own[1] / own[0] / 8)  # the model's ratio, on a multiple of 8
    return train_res, min(MAX_RES, max(32, test_res))


def _own_sizes(cfg: TrainConfig) -> tuple[int, int]:
    w = published_weights(cfg)
    if w is not None:
        return w.input_size, w.test_input_size
    info = model_info(cfg.model)
    return info.train_res, info.test_res


def eval_policy(cfg: TrainConfig) -> EvalPolicy:
    """A run's sizes, crop and normalization: a run from published weights uses theirs (mean, std, interpolation,
    crop fraction and mode: the weights learned their features so), others ImageNet's with bicubic resampling."""
    train_res, test_res = resolutions(cfg)
    crop = 1.0 if cfg.data == BUILTIN else 0.875
    w = published_weights(cfg)
    if w is None:
        return EvalPolicy(train_res, test_res, crop)
    whole = {"crop_pct": 1.0, "crop_mode": "center"} if cfg.data == BUILTIN else {}  # synthetic scenes: used whole
    return dataclasses.replace(w.policy, train_res=train_res, test_res=test_res, **whole)


@dataclass(frozen=True)
class LoadedRun:
    """A trained run, ready to use: ``model`` (eval mode, on the device asked) holds the ``weights`` chosen."""

    path: Path
    model: nn.Module
    weights: str  # "ema" or "model"
    classes: list[str]
    config: TrainConfig
    policy: EvalPolicy
    state: TrainState
    metrics: list[dict[str, Any]] = field(default_factory=list)  # a row per finished epoch

    @property
    def transform(self) -> EvalTransform:
        return self.policy.transform()


_PARTS = ("model.", "ema.", "optim.", "rng.")


def model_of(ckpt: Checkpoint, weights: str) -> nn.Module:
    """The run's model with its ``weights``. Every weight set in the file must fit the model the config names, with
    the config's classes, and no tensor may be of another kind; anything else is a ValueError before a real build
    (checked on the meta device)."""
    cfg = ckpt.config_obj
    strange = next((k for k in ckpt.tensors if not k.startswith(_PARTS)), None)
    if strange is not None:
        raise ValueError(f"the checkpoint holds a tensor convscale does not write: {strange[:100]!r}")
    form = model_overrides(cfg)
    with torch.device("meta"):
        target = create_model(cfg.model, num_classes=max(1, len(ckpt.classes)), **form).state_dict()
    for part in ("model", "ema"):
        if ckpt.has(part):
            try:
                match_state_dict(target, ckpt.weights(part))
            except ValueError as e:
                raise ValueError(
                    f"its {part} weights do not fit {cfg.model} with {len(ckpt.classes)} classes: {e}"
                ) from None
    model = create_model(cfg.model, num_classes=len(ckpt.classes), **form)
    load_mapped(model, ckpt.weights(weights))
    return model


def load_run(path: str | Path, *, weights: str = "auto", device: str | torch.device = "cpu") -> LoadedRun:
    """A run folder (or its checkpoint) with its ``weights``: ``"ema"``, ``"model"`` (raw) or ``"auto"`` (the EMA
    when kept). A crafted or foreign checkpoint is a ValueError before anything is built."""
    folder = RunFolder.of(path)
    ckpt = read_checkpoint(folder.checkpoint)
    if not ckpt.classes:
        raise ValueError(f"{folder.checkpoint}: the run has no classes")
    use = choose_weights({p for p in ("model", "ema") if ckpt.has(p)}, weights)
    model = model_of(ckpt, use).to(device).eval()
    policy = eval_policy(ckpt.config_obj)
    return LoadedRun(folder.path, model, use, ckpt.classes, ckpt.config_obj, policy, ckpt.state, ckpt.state.history)
