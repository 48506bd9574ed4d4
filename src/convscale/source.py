"""One resolver for "a model and how to feed it": :func:`resolve` turns whatever names a model into a :class:`Source`
(the model, the label of each logit, its preprocessing as one :class:`EvalPolicy`, and a run's own data). Every
command and API that takes a model goes through it (``eval``, ``predict``, ``export``, ``deploy``, ``bench``,
``train --teacher`` and ``--pretrained``), so they all accept the same names:

- ``MODEL``: a registered model (``convscale list``), freshly initialized; with ``pretrained=`` its published
  weights (``True``: the default tag; a tag; ``hf-hub:ORG/REPO``; a weights file; a run);
- ``MODEL.TAG``: the model with those published weights (``convscale list --pretrained``);
- ``hf-hub:ORG/REPO``: a timm-layout repository; its ``config.json`` names the architecture;
- a weights file (``.safetensors``, or ``.pth``/``.pt``/``.bin`` read with ``weights_only=True``) in convscale's or
  timm's layout, whose architecture a ``config.json`` beside it names (timm's hub layout); else give it as
  ``MODEL`` with ``pretrained=FILE``;
- a run folder of ``convscale train``, or its checkpoint file: the run's model (its EMA when kept), classes,
  evaluation policy and data;
- an architecture YAML (``convscale search`` writes them): that architecture, freshly initialized;
- a deployed folder (``convscale deploy --out DIR``): the form deploy chose, in its runtime, at its batch and size,
  with the preprocessing and classes recorded there (:mod:`convscale.deployed`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .data.transforms import EvalPolicy
from .weights.hub import ARCH_SUFFIXES, HF_PREFIX, WEIGHT_SUFFIXES, check, looks_like_path

if TYPE_CHECKING:
    from .data.transforms import EvalTransform

__all__ = ["KINDS", "Source", "check", "looks_like_path", "resolve"]

#: the kinds of source, as :attr:`Source.kind` names them
KINDS = ("model", "tag", "hub", "file", "run", "arch", "deployed")


@dataclass(frozen=True)
class Source:
    """A model ready to use (eval mode, on the device asked) and how to feed it."""

    model: nn.Module
    name: str  # the registered model (or the architecture file) it is built as
    kind: str  # one of KINDS
    weights: str  # "random", a published name (model.tag), a file, or a run's "ema"/"model"
    policy: EvalPolicy
    labels: list[str]  # the readable label of each logit
    folders: list[str] | None  # the class folder of each logit (a run's classes; ImageNet's WordNet ids), if known
    data: str | None = None  # a run's data: the default data of eval and deploy
    data_options: dict[str, Any] = field(default_factory=dict)  # how a run's synthetic-shapes split was made
    path: Path | None = None  # the run folder or weights file

    @property
    def label(self) -> str:
        """How messages name it: published weights by their name (``resnet50.a1_in1k``), others as
        ``resnet18 (ema weights)``."""
        published = self.kind in ("model", "tag", "hub") and self.weights != "random"
        if self.kind == "deployed":
            return f"{self.name} (deployed: {self.weights}, {self.path})"
        return self.weights if published else f"{self.name} ({self.weights} weights)"

    def transform(self, res: int | None = None) -> EvalTransform:
        return self.policy.transform(res)


def resolve(
    source: str | Path | Source,
    *,
    pretrained: bool | str | Path | None = None,
    weights: str = "auto",
    device: str | torch.device = "cpu",
    **model_args: Any,
) -> Source:
    """The :class:`Source` that ``source`` names (see the module's list of kinds). ``pretrained`` goes with a
    ``MODEL`` (or an architecture file) and is refused with a source that holds its own weights; ``weights`` picks a
    run's ``"ema"``, ``"model"`` or ``"auto"`` (the EMA when kept); ``model_args`` go to ``create_model`` (e.g.
    ``num_classes``, ``drop_rate``). A name or path that is none of these is a ValueError saying what is accepted."""
    if isinstance(source, Source):
        return source
    text = str(source)
    path = Path(text).expanduser()
    own = pretrained not in (None, False)
    if path.suffix.lower() in ARCH_SUFFIXES:
        return _model_source(text, pretrained, device, model_args, kind="arch")
    if path.exists() or looks_like_path(text):
        if not path.exists():
            raise ValueError(f"{text}: no such run folder or file")
        if own:
            raise ValueError(f"{text} holds its own weights: --pretrained goes with a model name")
        if _is_deployed(path):
            return _deployed_source(path)
        if _is_run(path):
            return _run_source(path, weights, device)
        return _file_source(path, device, model_args)
    if text.startswith(HF_PREFIX):
        if own:
            raise ValueError(f"{text} holds its own weights: --pretrained goes with a model name")
        return _model_source(_hub_architecture(text), text, device, model_args, kind="hub")
    if "." in text:
        if own and pretrained is not True:
            raise ValueError(f"{text} names its weights already: --pretrained goes with a model name")
        return _model_source(text, True, device, model_args, kind="tag")
    return _model_source(text, pretrained, device, model_args, kind="model")


def _is_deployed(path: Path) -> bool:
    from .deployed import is_deployed

    return is_deployed(path)


def _deployed_source(path: Path) -> Source:
    """A deployed folder: its form in its runtime (on the CPU), fed as deploy recorded; its data is the one deploy
    scored it on."""
    from .deployed import load

    p = load(path)
    spec = p.folder.spec
    policy = EvalPolicy(spec.res, spec.res, spec.crop_pct, spec.interpolation, tuple(spec.mean), tuple(spec.std),
                        spec.crop_mode)  # fmt: skip
    data = p.folder.report.get("val")
    label = f"{p.runtime} {p.precision}"
    return Source(p.model, spec.model, "deployed", label, policy, p.labels, p.folders,
                  data if isinstance(data, str) else None, {}, path)  # fmt: skip


def _is_run(path: Path) -> bool:
    from .weights.files import RUN_CHECKPOINT

    if path.is_dir():
        return True  # a folder is a run or nothing (RunFolder.of says which)
    return path.parent.name == RUN_CHECKPOINT.parent.name and (path.parent.parent / "config.yaml").is_file()


def _run_source(path: Path, weights: str, device) -> Source:
    from .runs import load_run
    from .weights.table import readable_class_names

    run = load_run(path, weights=weights, device=device)
    c = run.config
    return Source(
        run.model, c.model, "run", run.weights, run.policy, readable_class_names(run.classes), list(run.classes),
        c.data, dict(c.val_options), run.path,
    )  # fmt: skip


def _model_source(name: str, pretrained, device, model_args: dict, *, kind: str) -> Source:
    from .factory import create_model

    if isinstance(pretrained, str | Path) and _is_run_path(pretrained):  # MODEL --pretrained RUN: that run
        run = _run_source(Path(pretrained).expanduser(), "auto", device)
        if run.name != name:
            raise ValueError(f"{pretrained} is a run of {run.name}, not of {name}")
        return run
    model = create_model(name, pretrained=pretrained, **model_args).to(device).eval()
    w = model.pretrained_cfg
    arch = name.split(".", 1)[0] if kind == "tag" else name
    if w is not None:
        labels = w.classes or [str(i) for i in range(w.num_classes)]
        return Source(model, arch, kind, w.name, w.policy, labels, w.folders)
    what = "random" if pretrained in (None, False) else str(pretrained)
    if kind == "model" and what != "random":
        kind = "file"
    policy = _imagenet_policy(arch)
    labels = [str(i) for i in range(getattr(model, "num_classes", 0))]
    return Source(model, arch, kind, what, policy, labels, None, path=Path(what) if kind == "file" else None)


def _imagenet_policy(model: str) -> EvalPolicy:
    """A model without published settings: its own sizes, a 0.875 centre crop, bicubic, ImageNet statistics."""
    from .factory import model_info

    info = model_info(model)
    return EvalPolicy(info.train_res, info.test_res, 0.875)


def _is_run_path(p: str | Path) -> bool:
    path = Path(p).expanduser()
    return path.exists() and _is_run(path)


def _file_source(path: Path, device, model_args: dict) -> Source:
    """A weights file whose ``config.json`` beside it (timm's hub layout) names the architecture; its classes and
    preprocessing come from there too (``num_classes``, ``label_names``, ``pretrained_cfg``)."""
    from .weights.hub import config_weights

    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ValueError(
            f"{path}: not a run folder, a weights file ({', '.join(WEIGHT_SUFFIXES)}) or an architecture file (.yaml)"
        )
    config = path.parent / "config.json"
    arch = _config_architecture(config)
    if arch is None:
        raise ValueError(
            f"{path} does not say which model it holds (no config.json beside it naming its 'architecture'): give "
            f"the model and the file, MODEL --pretrained {path}"
        )
    cfg = json.loads(config.read_text())
    w = config_weights(arch, cfg, tag=path.name)
    src = _model_source(arch, path, device, {"num_classes": w.num_classes, **model_args}, kind="file")
    policy = w.policy if isinstance(cfg.get("pretrained_cfg"), dict) else src.policy
    return replace(src, policy=policy, labels=w.classes or src.labels, folders=w.folders if w.label_names else None)


def _hub_architecture(text: str) -> str:
    from .weights.hub import hub_file

    repo = text[len(HF_PREFIX) :]
    try:
        arch = _config_architecture(hub_file(repo, ("config.json",)))
    except FileNotFoundError:
        arch = None
    if arch is None:
        raise ValueError(f"{text}: its config.json names no 'architecture'; give MODEL --pretrained {text}")
    return arch


def _config_architecture(config: Path) -> str | None:
    from .registry import list_models

    try:
        arch = json.loads(config.read_text()).get("architecture")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(arch, str) and arch not in list_models("*", include_tiny=True):
        raise ValueError(f"{config} names the architecture {arch!r}, which convscale does not have (convscale list)")
    return arch if isinstance(arch, str) else None
