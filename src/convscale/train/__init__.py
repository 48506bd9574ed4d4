"""Training: ``fit(TrainConfig(...))`` and the pieces it is made of, each usable alone — the step and the evaluation
pass (``steps.py``), the optimizer and its schedule (``optimizer.py``, ``plan.py``), the loop (``loop.py``), the
processes (``distributed.py``). A run's settings, folder and checkpoint are :mod:`convscale.runs`; the training
methods that act during a run are :mod:`convscale.methods`. The names a user needs are here too."""

from ..runs import LoadedRun, TrainConfig, TrainState, load_config, load_run, read_checkpoint, write_checkpoint
from .loop import FitResult, TrainingStopped, fit
from .optimizer import RMSpropTF, create_optimizer, lr_at, param_groups
from .steps import EvalTotals, StepResult, StepSettings, evaluate, train_step

__all__ = [
    "EvalTotals",
    "FitResult",
    "LoadedRun",
    "RMSpropTF",
    "StepResult",
    "StepSettings",
    "TrainConfig",
    "TrainState",
    "TrainingStopped",
    "create_optimizer",
    "evaluate",
    "fit",
    "load_config",
    "load_run",
    "lr_at",
    "param_groups",
    "read_checkpoint",
    "train_step",
    "write_checkpoint",
]
