"""Reading weights: local checkpoints in convscale or timm format, and the runs of ``convscale train``, without
unpickling arbitrary objects."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..registry import counterpart

__all__ = [
    "RUN_CHECKPOINT",
    "TRAIN_FORMAT",
    "choose_weights",
    "load_mapped",
    "load_pretrained",
    "load_reference",
    "match_state_dict",
    "read_state_dict",
    "read_train_header",
    "run_checkpoint",
]

_log = logging.getLogger(__name__)
_WRAPPERS = ("state_dict_ema", "model_ema", "state_dict", "model")  # EMA weights first, as timm does
_CLASSIFIER = ("head.fc.weight", "head.fc.bias")
#: the format of ``convscale train``'s checkpoints (``convscale.runs.checkpoint`` writes and fully checks them): model
#: and EMA weights under ``model.`` / ``ema.``, the run's config and classes as JSON in the safetensors header
TRAIN_FORMAT = "convscale-train/1"
RUN_CHECKPOINT = Path("checkpoints") / "last.safetensors"  # inside a run folder
WEIGHTS = ("auto", "ema", "model")


def run_checkpoint(path: str | Path) -> Path:
    """A run folder's checkpoint file, or ``path`` itself when it is a file."""
    path = Path(path)
    if path.is_dir():
        if not (path / RUN_CHECKPOINT).is_file():
            raise ValueError(f"{path} is a folder but not a training run: it has no {RUN_CHECKPOINT}")
        return path / RUN_CHECKPOINT
    return path


MAX_HEADER = 100 << 20  # safetensors' own limit


def read_train_header(path: Path) -> dict:
    """The convscale JSON header of a safetensors file, read and parsed within bounds (no tensor is read); a
    ValueError when there is none. ``convscale.runs.checkpoint`` checks its fields."""
    with open(path, "rb") as f:
        head = f.read(8)
        size = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < size <= min(MAX_HEADER, path.stat().st_size - 8):
            raise ValueError("no safetensors header")
        try:
            meta = json.loads(json.loads(f.read(size))["__metadata__"]["convscale"])
        except (KeyError, TypeError, RecursionError, UnicodeDecodeError) as e:
            raise ValueError(f"no convscale header ({type(e).__name__})") from None
    if not isinstance(meta, dict):
        raise ValueError("its convscale header is not a mapping")
    return meta


def _train_meta(path: Path) -> dict | None:
    """The convscale header of a safetensors file when it is a training checkpoint, else None."""
    try:
        meta = read_train_header(path)
    except (OSError, ValueError):
        return None
    return meta if meta.get("format") == TRAIN_FORMAT else None


def choose_weights(prefixes: set[str], weights: str) -> str:
    """Which of a training checkpoint's weight sets ``weights`` names: ``"ema"``, ``"model"`` (raw) or ``"auto"``
    (the EMA when the run kept one). ``prefixes``: the sets the file holds."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if weights == "auto":
        weights = "ema" if "ema" in prefixes else "model"
    if weights not in prefixes:
        raise ValueError(f"the run has no {weights} weights (a run trained without EMA keeps only 'model')")
    return weights


def read_state_dict(path: str | Path, *, weights: str = "auto") -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a ``.pth``/``.pt``/``.bin`` file read with ``weights_only=True``.

    A training checkpoint that wraps the weights (``state_dict``, ``model``, ``state_dict_ema``) is unwrapped, and a
    ``module.`` prefix (DistributedDataParallel) is removed. A run of ``convscale train`` (its folder or its
    checkpoint) gives its ``weights``: ``"ema"``, ``"model"`` (the raw weights) or ``"auto"`` (the EMA when kept).
    """
    path = run_checkpoint(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd: object = load_file(str(path))
        if _train_meta(path) is not None:
            use = choose_weights({k.split(".", 1)[0] for k in sd}, weights)
            return {k[len(use) + 1 :]: v for k, v in sd.items() if k.startswith(use + ".")}
    elif path.suffix in (".pth", ".pt", ".bin", ".ckpt"):
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # weights_only refused a pickled object: nothing in the file was run
            raise ValueError(
                f"{path} holds pickled Python objects, which convscale does not load; it loads .safetensors files and "
                ".pth/.pt/.bin files of tensors only (a saved state_dict)"
            ) from None
        except Exception as e:  # not a torch file at all, or a damaged one
            reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ValueError(f"{path} is not a readable PyTorch checkpoint ({reason})") from None
    else:
        raise ValueError(f"unsupported checkpoint type {path.suffix!r}; expected .safetensors, .pth, .pt or .bin")
    for key in _WRAPPERS:
        if isinstance(sd, Mapping) and isinstance(sd.get(key), Mapping):
            sd = sd[key]
            break
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def match_state_dict(
    target: Mapping[str, torch.Tensor],
    source: Mapping[str, torch.Tensor],
    key_map: Mapping[str, str] | None = None,
    *,
    skip: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """``source``'s tensors under ``target``'s keys (``key_map`` names the source key of each target key; identity
    when None), checked without copying anything: every target key must be found with the same shape (``skip`` lists
    target keys left out, their source keys ignored), and every source key must be used; a mismatch raises
    ValueError naming the first bad key and both shapes. ``target`` may be a meta-device model's state dict."""
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for key, tensor in target.items():
        src_key = key_map[key] if key_map is not None else key
        used.add(src_key)
        if key in skip:
            continue
        if src_key not in source:
            if key.endswith("num_batches_tracked"):
                continue
            raise ValueError(f"checkpoint has no {src_key!r} (needed for {key!r}, shape {tuple(tensor.shape)})")
        value = source[src_key]
        if value.shape != tensor.shape:
            if not _same_but_1x1(value.shape, tensor.shape):
                got, want = tuple(value.shape), tuple(tensor.shape)
                raise ValueError(f"shape mismatch at {src_key!r}: checkpoint {got}, model {key!r} {want}")
            value = value.reshape(tensor.shape)  # a 1×1 conv weight is a linear weight
        out[key] = value
    unused = [k for k in source if k not in used]
    if unused:
        raise ValueError(f"checkpoint key {unused[0]!r} has no place in the model ({len(unused)} unused keys)")
    return out


def load_mapped(
    model: nn.Module,
    source: Mapping[str, torch.Tensor],
    key_map: Mapping[str, str] | None = None,
    *,
    skip: tuple[str, ...] = (),
) -> None:
    """Copy ``source`` into ``model`` after :func:`match_state_dict` checked every key and shape."""
    model.load_state_dict(match_state_dict(model.state_dict(), source, key_map, skip=skip), strict=False)


def _same_but_1x1(a: torch.Size, b: torch.Size) -> bool:
    """True when one shape is the other plus trailing 1s: (O, I, 1, 1) and (O, I)."""
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return len(short) < len(long) and long[: len(short)] == short and all(d == 1 for d in long[len(short) :])


def _trained_model(path: str | Path) -> str | None:
    """The model a training run was trained as, when ``path`` is one."""
    try:
        file = run_checkpoint(path)
        meta = _train_meta(file) if file.suffix == ".safetensors" and file.is_file() else None
    except ValueError:
        return None
    config = meta.get("config") if meta else None
    return config.get("model") if isinstance(config, dict) and isinstance(config.get("model"), str) else None


def _timm_key_map(model: nn.Module, name: str, path: str | Path, source: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """timm's key for each of ``model``'s (built as ``name``; without one, found by its class); a model without a
    timm counterpart: a ValueError naming a missing key."""
    from ..registry import counterpart_of
    from ..utils.keymap import expand_keys

    timm = counterpart(name, "timm") if name else None
    try:
        return expand_keys(model, (timm or counterpart_of(model, "timm")).keys, "timm")
    except ValueError:
        missing = next(k for k in model.state_dict() if k not in source)
        label = name or type(model).__name__
        raise ValueError(f"{path} does not match the convscale layout of {label} (no {missing!r})") from None


def load_pretrained(model: nn.Module, path: str | Path, *, name: str = "", weights: str = "auto") -> None:
    """Load a local checkpoint in convscale or timm format, or a training run's ``weights``, into ``model``.

    A classifier whose width differs from the model's is left out (its fresh initialization stays), so a model
    created with another ``num_classes`` can start from ImageNet weights, or from another run.
    """
    if not isinstance(path, str | Path):
        raise ValueError(f"pretrained must be the path of a local checkpoint or run, got {path!r}")
    trained = _trained_model(path)
    if trained is not None and name and trained != name:
        raise ValueError(f"{path} is a run of {trained}, not of {name}: create_model({trained!r}, pretrained=...)")
    source = read_state_dict(path, weights=weights)
    if set(model.state_dict()) <= set(source) | {k for k in model.state_dict() if k.endswith("num_batches_tracked")}:
        key_map = None
    else:
        key_map = _timm_key_map(model, name, path, source)
        if not all(v in source for k, v in key_map.items() if not k.endswith("num_batches_tracked")):
            missing = next(k for k in model.state_dict() if k not in source)
            raise ValueError(
                f"{path} matches neither the convscale nor the timm layout of {name or type(model).__name__} "
                f"(no {missing!r})"
            )
        timm = counterpart(name, "timm") if name else None
        if timm is not None and not timm.fits(model):
            raise ValueError(
                f"{path} holds timm weights, and timm's {name} computes another function than convscale's with the "
                f"same parameters: load it with convscale.interop.from_timm({name!r}, state_dict)"
            )
    skip = _mismatched_classifier(model, source, key_map)
    if skip:
        _log.info("%s: classifier of another width left out; the model keeps a fresh one", path)
    load_mapped(model, source, key_map, skip=skip)


def load_reference(model: nn.Module, path: str | Path, name: str, library: str) -> None:
    """Load a checkpoint in ``library``'s layout (``"timm"``, ``"torchvision"``) into ``model``, built as registered
    ``name`` in that library's form. A classifier the checkpoint lacks (feature weights) or has at another width is
    left out: the model keeps a fresh one."""
    from ..utils.keymap import expand_keys

    rule = counterpart(name, library)
    if rule is None:
        raise ValueError(f"{name} has no {library} counterpart: its {library} weights cannot be mapped")
    source = read_state_dict(path)
    key_map = expand_keys(model, rule.keys, library)
    skip = _mismatched_classifier(model, source, key_map)
    if not skip and any(k in model.state_dict() and key_map[k] not in source for k in _CLASSIFIER):
        skip = tuple(k for k in _CLASSIFIER if k in model.state_dict())
    load_mapped(model, source, key_map, skip=skip)


def _mismatched_classifier(
    model: nn.Module, source: Mapping[str, torch.Tensor], key_map: Mapping[str, str] | None
) -> tuple[str, ...]:
    target = model.state_dict()
    for key in _CLASSIFIER:
        src = key_map.get(key, key) if key_map else key
        if key in target and src in source and source[src].shape != target[key].shape:
            return tuple(k for k in _CLASSIFIER if k in target)
    return ()
