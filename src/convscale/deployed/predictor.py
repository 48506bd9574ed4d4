"""A deployed folder in use: :class:`DeployedModel` (the form as a module: any batch, run at the deployed batch
size) and :class:`Predictor` (images in, top-k labels out, with the preprocessing recorded at deploy time)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data import EvalTransform, load_rgb
from .folder import DeployedFolder

__all__ = ["DeployedModel", "Predictor", "load"]


class DeployedModel(nn.Module):
    """The deployed form on normalized NCHW float batches of any size: cut into the deployed batch (the last piece
    padded), run, and put back together. Its input size is the deployed one."""

    def __init__(self, folder: DeployedFolder) -> None:
        from .forms import open_form

        super().__init__()
        self.folder = folder
        self.run = open_form(folder)
        spec = folder.spec
        self.batch = None if spec.batch == "dynamic" else int(spec.batch)
        self.res = int(spec.res)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.res, self.res):
            raise ValueError(f"{self.folder.path} was deployed at {self.res} px; got images of {tuple(x.shape[-2:])}")
        x = x.float().cpu().contiguous()
        step = self.batch or len(x)
        outs = []
        for i in range(0, len(x), step):
            piece = x[i : i + step]
            n = len(piece)
            if n < step:
                piece = torch.cat([piece, piece.new_zeros(step - n, *piece.shape[1:])])
            outs.append(self.run(piece)[:n].float())
        return torch.cat(outs) if outs else x.new_zeros(0, self.folder.spec.num_classes)


class Predictor:
    """``predictor(images, topk=5)``: the top labels with their probabilities for each image (a path, a PIL image, or
    the rows of a uint8 batch, NHWC or NCHW), preprocessed as recorded at deploy time. ``runtime``, ``precision``,
    ``machine`` (this one) and ``measured_on`` (where deploy chose the form) say what runs."""

    def __init__(self, folder: DeployedFolder) -> None:
        from ..utils.machine import machine
        from ..weights.table import readable_class_names

        self.folder = folder
        self.model = DeployedModel(folder)
        spec = folder.spec
        self.folders = list(spec.classes) if spec.classes else [str(i) for i in range(spec.num_classes)]
        self.labels = readable_class_names(self.folders)
        self.transform = EvalTransform(
            spec.res, spec.crop_pct, spec.interpolation, tuple(spec.mean), tuple(spec.std), spec.crop_mode
        )
        here = machine()
        self.machine, self.measured_on = here.to_dict(), folder.machine
        self.elsewhere = _elsewhere(folder.machine, self.machine)

    @property
    def runtime(self) -> str:
        return self.folder.runtime

    @property
    def precision(self) -> str:
        return self.folder.precision

    @property
    def batch(self) -> int | None:
        return self.model.batch

    def preprocess(self, images: Sequence[Any] | torch.Tensor | np.ndarray) -> torch.Tensor:
        """The model's input batch for ``images``."""
        return torch.stack([self.transform(_image(img)) for img in _items(images)])

    def logits(self, images) -> torch.Tensor:
        return self.model(self.preprocess(images))

    def __call__(self, images, topk: int = 5) -> list[list[tuple[str, float]]]:
        """For each image, its ``topk`` (label, probability) pairs, most likely first."""
        return self.top(self.logits(images).softmax(1), topk)

    def top(self, probs: torch.Tensor, topk: int = 5) -> list[list[tuple[str, float]]]:
        """Each row of ``probs`` (N, classes) as its ``topk`` (label, probability) pairs, most likely first."""
        top = probs.topk(min(topk, probs.shape[1]))
        return [
            [(self.labels[i], float(p)) for p, i in zip(values, indices, strict=True)]
            for values, indices in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        ]

    def metadata(self) -> dict[str, Any]:
        """What serves: the model, runtime, precision, both machines, the input and the classes."""
        spec = self.folder.spec
        return {
            "model": spec.model, "weights": spec.weights, "runtime": self.runtime, "precision": self.precision,
            "batch": spec.batch, "res": spec.res, "machine": self.machine, "measured_on": self.measured_on,
            "classes": self.labels,
        }  # fmt: skip


def load(path: str | Path, *, quiet: bool = False) -> Predictor:
    """A deployed folder (``convscale deploy --out DIR``) as a :class:`Predictor`. A folder deployed on another CPU
    kind loads where its runtime runs, and says so in one line on stderr (unless ``quiet``)."""
    predictor = Predictor(DeployedFolder.read(path))
    if predictor.elsewhere and not quiet:
        print(f"convscale: {path}: {predictor.elsewhere}", file=sys.stderr)
    return predictor


def _elsewhere(then: dict, now: dict) -> str | None:
    if not then or (then.get("cpu"), sorted(then.get("isa", []))) == (now["cpu"], sorted(now["isa"])):
        return None
    return (
        f"its form was chosen by measurement on {then.get('cpu')} ({' '.join(then.get('isa', []))})"
        f"; this is {now['cpu']} ({' '.join(now['isa'])}): deploy again here for this machine's fastest form"
    )


def _items(images) -> list:
    if isinstance(images, torch.Tensor | np.ndarray):
        batch = torch.as_tensor(images)
        if batch.dtype != torch.uint8 or batch.ndim != 4:
            raise ValueError(f"a batch of images must be uint8 of 4 dimensions (NHWC or NCHW), got {batch.dtype} "
                             f"{tuple(batch.shape)}")  # fmt: skip
        if batch.shape[1] == 3 and batch.shape[-1] != 3:
            batch = batch.permute(0, 2, 3, 1)
        return [Image.fromarray(row.contiguous().numpy()) for row in batch]
    if isinstance(images, str | Path | Image.Image):
        return [images]
    return list(images)


def _image(img) -> Image.Image:
    if isinstance(img, Image.Image):
        return img.convert("RGB")
    if isinstance(img, str | Path):
        return load_rgb(img)
    raise ValueError(f"expected an image path, a PIL image or a uint8 batch, got {type(img).__name__}")
