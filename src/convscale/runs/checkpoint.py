"""Training checkpoints: one ``.safetensors`` file, tensors in its body and everything else as JSON in its header.

Nothing is ever unpickled: safetensors parses a JSON header and raw tensor bytes, so a crafted file can fail to load
but cannot run code. The header is read and checked first — its size, its nesting, the shape of every field, the
config, the class names — so a crafted header is one ValueError before any tensor is read or any model built. The
file is written atomically (temporary file, fsync, rename): a kill mid-write leaves the previous checkpoint whole.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..utils.atomic import atomic_write
from ..weights.files import TRAIN_FORMAT, read_train_header
from .settings import TrainConfig, config_from_dict

__all__ = ["FORMAT", "Checkpoint", "TrainState", "read_checkpoint", "read_run_config", "write_checkpoint"]

FORMAT = TRAIN_FORMAT
MAX_CLASSES = 100_000  # ImageNet-21k has 21,841
MAX_CLASS_NAME = 1000


@dataclass
class TrainState:
    """Where a run stands, besides its tensors: the next batch to train is batch ``batch`` of epoch ``epoch``. The
    ``epoch_*`` totals cover the batches of the current epoch trained so far, in this process or before a resume, so
    that the epoch's metrics row covers all of it."""

    epoch: int = 0
    batch: int = 0
    step: int = 0  # optimizer steps taken
    nonfinite: int = 0  # skipped steps, in total
    ema_updates: int = 0
    elapsed_s: float = 0.0  # training wall time of the finished epochs
    epoch_loss_sum: float = 0.0  # loss x images of the current epoch's finite steps
    epoch_correct: float = 0.0
    epoch_images: int = 0
    epoch_seconds: float = 0.0  # training time of the current epoch so far
    epoch_wait_s: float = 0.0  # of which spent waiting for the loader
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics row per finished epoch

    def end_epoch(self) -> None:
        self.epoch, self.batch = self.epoch + 1, 0
        self.epoch_loss_sum = self.epoch_correct = self.epoch_seconds = self.epoch_wait_s = 0.0
        self.epoch_images = 0

    @classmethod
    def from_dict(cls, values: Any) -> TrainState:
        kinds = {f.name: f.type for f in dataclasses.fields(cls)}
        if not isinstance(values, dict) or not set(values) <= set(kinds):
            raise ValueError("its state is not a mapping of the known fields")
        for key, value in values.items():
            if key == "history":
                ok = isinstance(value, list) and all(isinstance(row, dict) for row in value)
            elif kinds[key] == "int":
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            else:
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok:
                raise ValueError(f"its state field {key!r} is not what convscale writes")
        return cls(**values)


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
    world: int = 1,
) -> Path:
    """Everything needed to continue the run exactly, or to use its weights: one atomic write. ``world``: the
    processes that train the run (a resume with another number is refused)."""
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
        "state": dataclasses.asdict(state),
        "config": config,
        "classes": classes,
        "optimizer": optim_meta,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "world": world,
    }
    data = save(tensors, metadata={"convscale": json.dumps(meta)})
    return atomic_write(path, lambda f: f.write(data))


@dataclass
class Checkpoint:
    """A training checkpoint whose header was checked: ``config``, ``classes`` and ``state`` are typed."""

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    config_obj: TrainConfig
    classes: list[str]
    state: TrainState

    def weights(self, prefix: str = "model") -> dict[str, torch.Tensor]:
        """The state dict stored under ``prefix`` ("model" or "ema")."""
        p = prefix + "."
        out = {k[len(p) :]: v for k, v in self.tensors.items() if k.startswith(p)}
        if not out:
            raise ValueError(f"the checkpoint has no {prefix} weights")
        return out

    def has(self, prefix: str) -> bool:
        return any(k.startswith(prefix + ".") for k in self.tensors)

    @property
    def config(self) -> dict[str, Any]:
        return self.config_obj.to_dict()

    def restore_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        meta = self.meta.get("optimizer")
        if not isinstance(meta, dict) or not isinstance(meta.get("scalars"), dict):
            raise ValueError("the checkpoint's optimizer state is not what convscale writes")
        state: dict[int, dict[str, Any]] = {}
        for key, value in self.tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        for index, values in meta["scalars"].items():
            state.setdefault(int(index), {}).update(values)
        try:
            optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"the checkpoint's optimizer state does not fit this optimizer ({e})") from None
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


def _classes(value: Any) -> list[str]:
    ok = isinstance(value, list) and len(value) <= MAX_CLASSES
    if not ok or not all(isinstance(c, str) and 0 < len(c) <= MAX_CLASS_NAME for c in value):
        raise ValueError(f"its classes are not a list of at most {MAX_CLASSES} names")
    return list(value)


def _checked_header(path: Path) -> tuple[dict[str, Any], TrainConfig, list[str], TrainState]:
    """The header of training checkpoint ``path``, every field checked; no tensor is read."""
    if not path.is_file():
        raise ValueError(f"no checkpoint file at {path}")
    what = f"{path} is not a convscale training checkpoint (a .safetensors file written by convscale train)"
    try:
        meta = read_train_header(path)
    except (ValueError, OverflowError) as e:
        raise ValueError(f"{what}: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown checkpoint format {str(meta.get('format'))[:40]!r}; expected {FORMAT}")
    try:
        if not isinstance(meta.get("config"), dict):
            raise ValueError("it has no config mapping")
        return (
            meta,
            config_from_dict(meta["config"]),
            _classes(meta.get("classes")),
            TrainState.from_dict(meta["state"]),
        )
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{path}: a damaged or foreign training checkpoint: {str(e).splitlines()[0][:300]}") from None


def read_run_config(path: str | Path) -> tuple[TrainConfig, TrainState]:
    """The config and state of training checkpoint ``path``, from its header alone."""
    _, config, _, state = _checked_header(Path(path))
    return config, state


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a training checkpoint written by :func:`write_checkpoint`; anything else is a ValueError, raised after
    reading the header alone when the header is wrong."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    meta, config, classes, state = _checked_header(path)
    try:
        tensors = load(path.read_bytes())
    except SafetensorError as e:
        raise ValueError(f"{path}: a damaged training checkpoint: {str(e).splitlines()[0][:300]}") from None
    if not any(k.startswith("model.") for k in tensors):
        raise ValueError(f"{path}: a damaged or foreign training checkpoint: it has no model weights")
    return Checkpoint(tensors, meta, config, classes, state)
