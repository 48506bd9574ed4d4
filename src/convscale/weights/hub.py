"""Published weights onto the disk: timm's from the Hugging Face hub (through ``huggingface_hub``, the optional
``convscale[hub]`` extra, so its cache, ``HF_HOME``, ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` hold), torchvision's
from their own address (into torch's hub cache, ``$TORCH_HOME/hub/checkpoints``, checked against the sha256 digits
in their names). What ``create_model(pretrained=...)`` is given is resolved here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from .table import Weights, get_weights

__all__ = ["HF_PREFIX", "Resolved", "check", "fetch_weights", "looks_like_path", "resolve_pretrained"]

HF_PREFIX = "hf-hub:"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
ARCH_SUFFIXES = (".yaml", ".yml")
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # timm's order: safetensors first


@dataclass(frozen=True)
class Resolved:
    """What ``pretrained=`` named: published ``weights`` (to download), or a local ``path`` (a file or a run)."""

    weights: Weights | None = None
    path: Path | None = None
    hf_repo: str | None = None  # an ``hf-hub:`` repository; ``weights`` is then read from its config.json


def resolve_pretrained(name: str, pretrained: object) -> Resolved:
    """``True`` (the default tag), a tag (``"in1k"``), a full name (``"convnext_tiny.fb_in1k"``), ``"hf-hub:org/repo"``,
    or a local file or run folder; anything else is a ValueError saying what is accepted."""
    if pretrained is True:
        return Resolved(weights=get_weights(name))
    if isinstance(pretrained, Path):
        return Resolved(path=pretrained)
    if not isinstance(pretrained, str) or not pretrained:
        raise ValueError(
            "pretrained must be True, a tag, a full name (model.tag), 'hf-hub:org/repo', or the path of a local "
            f"checkpoint or run, got {pretrained!r}"
        )
    if pretrained.startswith(HF_PREFIX):
        return Resolved(hf_repo=pretrained[len(HF_PREFIX) :])
    if pretrained.lower().endswith((".yaml", ".yml")):
        raise ValueError(f"{pretrained} is an architecture file, which holds no weights: give it as the model instead")
    if Path(pretrained).expanduser().exists() or "/" in pretrained or os.sep in pretrained:
        return Resolved(path=Path(pretrained).expanduser())
    if "." in pretrained and not pretrained.endswith((".safetensors", ".pth", ".pt", ".bin", ".ckpt")):
        model, tag = pretrained.split(".", 1)
        if model != name:
            raise ValueError(f"pretrained={pretrained!r} are weights of {model}, not of {name}")
        return Resolved(weights=get_weights(name, tag))
    if "." in pretrained:
        raise FileNotFoundError(f"no checkpoint file at {pretrained}")
    return Resolved(weights=get_weights(name, pretrained))


def fetch_weights(w: Weights, *, progress: bool = True) -> Path:
    """The local file of published weights ``w``, downloaded on first use."""
    if w.source == "torchvision":
        from ..utils.download import download

        folder = Path(os.environ.get("TORCH_HOME") or _torch_home()) / "hub" / "checkpoints"
        return download(w.url, folder / w.filename, sha256=w.sha256, progress=progress)
    return hub_file(w.hub_id)


def _torch_home() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()).parent


def _hf():
    from ..utils.extras import require

    return require("huggingface_hub", "downloading from the Hugging Face hub")


def hub_file(repo: str, files: tuple[str, ...] = HUB_FILES) -> Path:
    """The first of ``files`` the hub repository ``repo`` has, from the huggingface_hub cache or downloaded into it."""
    hf = _hf()
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    offline_miss = False
    for filename in files:
        try:
            return Path(hf.hf_hub_download(repo, filename))
        except LocalEntryNotFoundError:
            offline_miss = True  # not cached, and the hub not reachable (HF_HUB_OFFLINE, or no network)
        except EntryNotFoundError:
            continue  # the repository has no such file: try the next form
        except OSError as e:  # repository not found, HTTP errors: huggingface_hub's errors are OSErrors
            raise OSError(f"hf-hub {repo}: {str(e).splitlines()[0]}") from None
    if offline_miss:
        raise FileNotFoundError(
            f"{repo} is not in the Hugging Face cache ({_hf_cache()}) and the hub cannot be reached"
            f"{' (HF_HUB_OFFLINE is set)' if _offline() else ''}: download it once where there is a network, "
            f"e.g. `hf download {repo} {files[0]}`, or unset HF_HUB_OFFLINE"
        )
    raise FileNotFoundError(f"hf-hub {repo} has none of {', '.join(files)}")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "on", "yes", "true")


def _hf_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


@cache
def hf_repo_weights(name: str, repo: str) -> Weights:
    """A :class:`Weights` for hub repository ``repo`` (timm layout), from its ``config.json`` when it has one. Read
    once per process: a run asks for it several times (sizes, normalization, form), and online each read of the hub
    is a request."""
    try:
        cfg = json.loads(hub_file(repo, ("config.json",)).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        cfg = {}
    return config_weights(name, cfg, tag=repo.replace("/", "--"), hub_id=repo)


def config_weights(name: str, cfg: object, *, tag: str, hub_id: str | None = None) -> Weights:
    """A :class:`Weights` from a timm ``config.json`` (its ``pretrained_cfg``, ``num_classes``, ``label_names``); what
    it leaves out comes from the model's default published weights, else timm's defaults."""
    cfg = cfg if isinstance(cfg, dict) else {}
    pre = cfg.get("pretrained_cfg", {}) if isinstance(cfg.get("pretrained_cfg", {}), dict) else {}
    base = get_weights(name) if _has_default(name) else None
    size = pre.get("input_size") or [3, base.input_size if base else 224]
    labels = cfg.get("label_names")
    num_classes = int(cfg.get("num_classes", pre.get("num_classes", 1000)))
    fields = {
        "model": name,
        "tag": tag,
        "source": "timm",
        "hub_id": hub_id,
        "url": None,
        "sha256": None,
        "input_size": int(size[-1]),
        "test_input_size": int((pre.get("test_input_size") or size)[-1]),
        "crop_pct": float(pre.get("crop_pct", 0.875)),
        "test_crop_pct": pre.get("test_crop_pct"),
        "crop_mode": pre.get("crop_mode") or "center",
        "interpolation": pre.get("interpolation", "bicubic"),
        "mean": tuple(pre.get("mean", (0.485, 0.456, 0.406))),
        "std": tuple(pre.get("std", (0.229, 0.224, 0.225))),
        "num_classes": num_classes,
        "label_set": "imagenet-1k" if num_classes == 1000 and not labels else "custom",
        "top1": None,
        "top1_res": None,
        "license": pre.get("license"),
        "keys": "",
        "label_names": tuple(str(x) for x in labels)
        if isinstance(labels, list) and len(labels) == num_classes
        else None,
    }
    return replace(base, **fields) if base else Weights(**fields)


def _has_default(name: str) -> bool:
    from .table import default_tag

    return default_tag(name) is not None


def looks_like_path(source: str) -> bool:
    """Whether ``source`` was meant as a file or folder rather than a model name: it has a folder part or a file
    suffix (``hf-hub:ORG/REPO`` is a name)."""
    if source.startswith(HF_PREFIX):
        return False
    return "/" in source or os.sep in source or Path(source).suffix in (*WEIGHT_SUFFIXES, *ARCH_SUFFIXES)


def check(source: str, *, published: bool = False) -> None:
    """Refuse a source that cannot resolve, without building anything: a path that does not exist, an unknown model
    or tag. ``published``: a bare ``MODEL`` stands for its default published weights, which must exist."""
    from ..registry import get_entry

    if source.startswith(HF_PREFIX) or Path(source).expanduser().exists():
        return
    if looks_like_path(source):
        raise ValueError(f"{source}: no such run folder or file")
    name, _, tag = source.replace(":", ".", 1).partition(".")
    get_entry(name)  # unknown model: ValueError naming the closest
    if tag or published:
        resolve_pretrained(name, f"{name}.{tag}" if tag else True)  # an unknown tag: the message lists the model's
