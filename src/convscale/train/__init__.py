"""Training: ``fit(TrainConfig(...))`` and the pieces it is made of, each usable alone."""

from .config import TrainConfig, load_config
from .ema import ModelEMA, ema_decay_at
from .loop import FitResult, TrainingStopped, fit
from .optim import RMSpropTF, create_optimizer, lr_at, param_groups
from .state import TrainState, read_checkpoint, write_checkpoint
from .steps import EvalResult, StepResult, evaluate, train_step

__all__ = [
    "EvalResult",
    "FitResult",
    "ModelEMA",
    "RMSpropTF",
    "StepResult",
    "TrainConfig",
    "TrainState",
    "TrainingStopped",
    "create_optimizer",
    "ema_decay_at",
    "evaluate",
    "fit",
    "load_config",
    "lr_at",
    "param_groups",
    "read_checkpoint",
    "train_step",
    "write_checkpoint",
]
