"""Reading weights: local checkpoints in convscale or timm format, without unpickling arbitrary objects."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

__all__ = ["load_mapped", "load_pretrained", "read_state_dict"]

_log = logging.getLogger(__name__)
_WRAPPERS = ("state_dict_ema", "model_ema", "state_dict", "model")  # EMA weights first, as timm does
_CLASSIFIER = ("head.fc.weight", "head.fc.bias")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a ``.pth``/``.pt``/``.bin`` file read with ``weights_only=True``.

    A training checkpoint that wraps the weights (``state_dict``, ``model``, ``state_dict_ema``) is unwrapped, and a
    ``module.`` prefix (DistributedDataParallel) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd: object = load_file(str(path))
    elif path.suffix in (".pth", ".pt", ".bin", ".ckpt"):
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # weights_only refuses pickled objects: say so plainly
            raise ValueError(f"{path} is not a plain tensor checkpoint (weights_only=True refused it: {e})") from None
    else:
        raise ValueError(f"unsupported checkpoint type {path.suffix!r}; expected .safetensors, .pth, .pt or .bin")
    for key in _WRAPPERS:
        if isinstance(sd, Mapping) and isinstance(sd.get(key), Mapping):
            sd = sd[key]
            break
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_mapped(
    model: nn.Module,
    source: Mapping[str, torch.Tensor],
    key_map: Mapping[str, str] | None = None,
    *,
    skip: tuple[str, ...] = (),
) -> None:
    """Copy ``source`` into ``model``; ``key_map`` names the source key of each model key (identity when None).

    Every model key must be found with the same shape (``skip`` lists model keys left as they are, their source keys
    ignored), and every source key must be used: a mismatch raises ValueError naming the first bad key and both shapes.
    """
    target = model.state_dict()
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
    model.load_state_dict(out, strict=False)


def _same_but_1x1(a: torch.Size, b: torch.Size) -> bool:
    """True when one shape is the other plus trailing 1s: (O, I, 1, 1) and (O, I)."""
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return len(short) < len(long) and long[: len(short)] == short and all(d == 1 for d in long[len(short) :])


def load_pretrained(model: nn.Module, path: str | Path, *, name: str = "") -> None:
    """Load a local checkpoint in convscale or timm format into ``model``.

    A classifier whose width differs from the model's is left out (its fresh initialization stays), so a model
    created with another ``num_classes`` can start from ImageNet weights.
    """
    if path is True or not isinstance(path, str | Path):
        raise ValueError("pretrained must be the path of a local checkpoint (hub downloads are not available yet)")
    source = read_state_dict(path)
    if set(model.state_dict()) <= set(source) | {k for k in model.state_dict() if k.endswith("num_batches_tracked")}:
        key_map = None
    else:
        from .interop.timm import is_timm_form, timm_key_map

        key_map = timm_key_map(model)
        if not all(v in source for k, v in key_map.items() if not k.endswith("num_batches_tracked")):
            missing = next(k for k in model.state_dict() if k not in source)
            raise ValueError(
                f"{path} matches neither the convscale nor the timm layout of {name or type(model).__name__} "
                f"(no {missing!r})"
            )
        if name and not is_timm_form(model, name):
            raise ValueError(
                f"{path} holds timm weights, and timm's {name} computes another function than convscale's with the "
                f"same parameters: load it with convscale.interop.from_timm({name!r}, state_dict)"
            )
    skip = _mismatched_classifier(model, source, key_map)
    if skip:
        _log.info("%s: classifier of another width left out; the model keeps a fresh one", path)
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
