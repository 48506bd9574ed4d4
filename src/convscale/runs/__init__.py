"""A training run as data, below everything that trains or uses one: its settings (:class:`TrainConfig`, from
defaults, a recipe and flags), its folder (:class:`RunFolder`), its checkpoint (one reader and one writer:
:func:`read_checkpoint`, :func:`write_checkpoint`), how its model is evaluated (:func:`eval_policy`, an
:class:`~convscale.EvalPolicy`), the weights it starts from, and :func:`load_run`. The trainer (``convscale.train``),
:func:`convscale.resolve` and deployment read runs through it; it imports none of them."""

from .checkpoint import FORMAT, Checkpoint, TrainState, read_checkpoint, read_run_config, write_checkpoint
from .layout import RunFolder
from .load import LoadedRun, eval_policy, load_run, model_of, resolutions
from .settings import RESUMABLE, TrainConfig, config_from_dict, field_help, load_config, resume_config

__all__ = [
    "FORMAT",
    "RESUMABLE",
    "Checkpoint",
    "LoadedRun",
    "RunFolder",
    "TrainConfig",
    "TrainState",
    "config_from_dict",
    "eval_policy",
    "field_help",
    "load_config",
    "load_run",
    "model_of",
    "read_checkpoint",
    "read_run_config",
    "resolutions",
    "resume_config",
    "write_checkpoint",
]
