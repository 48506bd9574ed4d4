"""Using what ``convscale deploy`` wrote: :func:`load` a deployed folder as a :class:`Predictor` (the chosen form in
its runtime, with the preprocessing and class names recorded at deploy time), and the folder as a source of every
command (``predict``, ``eval``, ``bench``, ``serve``). A deployed folder may come from someone else: it is read as
untrusted (``folder.py``: every name inside it, regular files; ``forms.py``: a ``.pt2`` opened only when none of its
pickles could import anything but tensors, an ONNX model only when its external data stays in the folder)."""

from __future__ import annotations

from .folder import DEPLOY_JSON, DeployedFolder, is_deployed
from .predictor import DeployedModel, Predictor, load

__all__ = ["DEPLOY_JSON", "DeployedFolder", "DeployedModel", "Predictor", "is_deployed", "load"]
