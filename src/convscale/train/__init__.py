"""Training: ``fit(TrainConfig(...))``, ``load_run(RUN)`` and the pieces they are made of, each usable alone.

The names below are importable from here and load their module on first use, so that reading a run
(``train.run``, which :func:`convscale.resolve` needs) does not load the trainer, whose distillation resolves its
teacher through :func:`convscale.resolve` in turn."""

from importlib import import_module
from typing import Any

#: each public name -> the module that defines it
_WHERE = {
    "TrainConfig": "config", "load_config": "config", "resume_config": "config",
    "ModelEMA": "ema", "ema_decay_at": "ema",
    "FitResult": "loop", "TrainingStopped": "loop", "fit": "loop",
    "RMSpropTF": "optimizer", "create_optimizer": "optimizer", "lr_at": "optimizer", "param_groups": "optimizer",
    "EvalPolicy": "run", "LoadedRun": "run", "RunFolder": "run", "eval_policy": "run", "load_run": "run",
    "TrainState": "state", "read_checkpoint": "state", "write_checkpoint": "state",
    "EvalTotals": "steps", "StepResult": "steps", "StepSettings": "steps", "evaluate": "steps",
    "train_step": "steps",
}  # fmt: skip

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
