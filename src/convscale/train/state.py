"""Training checkpoints: one ``.safetensors`` file, tensors in its body and everything else as JSON in its header.

Nothing is ever unpickled: safetensors parses a JSON header and raw tensor bytes, so a crafted file can fail to load
but cannot run code. The file is written atomically (temporary file, fsync, rename): a kill mid-write leaves the
previous checkpoint whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write

__all__ = ["FORMAT", "TrainState", "read_checkpoint", "write_checkpoint"]

FORMAT = "convscale-train/1"


@dataclass
class TrainState:
    """Where a run stands, besides its tensors: the next batch to train is batch ``batch`` of epoch ``epoch``."""

    epoch: int = 0
    batch: int = 0
    step: int = 0  # optimizer steps taken
    nonfinite: int = 0  # skipped steps, in total
    ema_updates: int = 0
    elapsed_s: float = 0.0  # training wall time before this process
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics row per finished epoch


def _optimizer_split(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in sd["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def write_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    config: dict[str, Any],
    classes: list[str],
    ema: torch.nn.Module | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> Path:
    """Everything needed to continue the run exactly, or to use its weights: one atomic write."""
    from safetensors.torch import save

    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    optim_tensors, optim_meta = _optimizer_split(optimizer)
    tensors.update(optim_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    meta = {
        "format": FORMAT,
        "state": state.__dict__,
        "config": config,
        "classes": classes,
        "optimizer": optim_meta,
        "scaler": scaler.state_dict() if scaler is not None else None,
    }
    data = save(tensors, metadata={"convscale": json.dumps(meta)})
    return atomic_write(path, lambda f: f.write(data))


@dataclass
class Checkpoint:
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    def weights(self, prefix: str = "model") -> dict[str, torch.Tensor]:
        """The state dict stored under ``prefix`` ("model" or "ema")."""
        p = prefix + "."
        out = {k[len(p) :]: v for k, v in self.tensors.items() if k.startswith(p)}
        if not out:
            raise ValueError(f"the checkpoint has no {prefix} weights")
        return out

    @property
    def state(self) -> TrainState:
        return TrainState(**self.meta["state"])

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.meta["config"])

    def restore_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        meta = self.meta["optimizer"]
        state: dict[int, dict[str, Any]] = {}
        for key, value in self.tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        for index, values in meta["scalars"].items():
            state.setdefault(int(index), {}).update(values)
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        # Checkpoints store tensors contiguous; give each per-parameter state its parameter's memory layout back
        # (channels_last convs). Fused optimizers walk state and parameter with the parameter's strides, so a
        # state in another layout would be applied to the wrong elements, silently.
        for group in optimizer.param_groups:
            for p in group["params"]:
                for name, value in optimizer.state.get(p, {}).items():
                    if isinstance(value, torch.Tensor) and value.shape == p.shape and value.stride() != p.stride():
                        optimizer.state[p][name] = torch.empty_like(p, dtype=value.dtype).copy_(value)

    def restore_rng(self) -> None:
        torch.set_rng_state(self.tensors["rng.torch"])
        cuda = [self.tensors[k] for k in sorted(self.tensors) if k.startswith("rng.cuda.")]
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a training checkpoint written by :func:`write_checkpoint`; anything else is a ValueError."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint file at {path}")
    data = path.read_bytes()
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
        meta = json.loads(header["__metadata__"]["convscale"])
    except (SafetensorError, KeyError, ValueError, TypeError, OverflowError) as e:
        raise ValueError(
            f"{path} is not a convscale training checkpoint (a .safetensors file written by convscale train): "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown checkpoint format {meta.get('format')!r}; expected {FORMAT}")
    return Checkpoint(tensors, meta)
