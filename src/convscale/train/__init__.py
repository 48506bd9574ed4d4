"""Training: ``fit(TrainConfig(...))``, ``load_run(RUN)`` and the pieces they are made of, each usable alone."""

from .config import TrainConfig, load_config, resume_config
from .ema import ModelEMA, ema_decay_at
from .loop import FitResult, TrainingStopped, fit
from .optim import RMSpropTF, create_optimizer, lr_at, param_groups
from .run import EvalPolicy, LoadedRun, RunFolder, eval_policy, load_run
from .state import TrainState, read_checkpoint, write_checkpoint
from .steps import EvalTotals, StepResult, evaluate, train_step

__all__ = [
    "EvalPolicy",
    "EvalTotals",
    "FitResult",
    "LoadedRun",
    "ModelEMA",
    "RMSpropTF",
    "RunFolder",
    "StepResult",
    "TrainConfig",
    "TrainState",
    "TrainingStopped",
    "create_optimizer",
    "ema_decay_at",
    "eval_policy",
    "evaluate",
    "fit",
    "load_config",
    "load_run",
    "lr_at",
    "param_groups",
    "read_checkpoint",
    "resume_config",
    "train_step",
    "write_checkpoint",
]
