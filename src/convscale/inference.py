"""The library API for using a model: :func:`evaluate` (top-1, top-5, per class, the confusion matrix, the files that
did not decode) and :func:`predict` (the top labels of images). Both take anything :func:`convscale.resolve` takes and
feed the model as its :class:`~convscale.source.EvalPolicy` says; ``convscale eval`` and ``predict`` print them.

    import convscale
    r = convscale.evaluate("runs/resnet18-synthetic-shapes", res=64)    # the run's own data by default
    print(r.top1, r.top5, r.per_class)
    for p in convscale.predict("resnet50.a1_in1k", ["cat.jpg"]):
        print(p.path, p.top)                                             # [(label, probability), ...]
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .source import Source, resolve

__all__ = ["EvalResult", "Prediction", "evaluate", "predict"]


@dataclass(frozen=True)
class EvalResult:
    """One evaluation: accuracy in percent, the mean loss, and the (true, predicted) counts by class."""

    source: str  # the model and its weights, as messages name them
    data: str
    res: int
    crop_pct: float
    top1: float
    top5: float
    loss: float
    count: int  # images evaluated
    skipped: int  # files that did not decode
    labels: list[str]  # the readable label of each class (confusion's rows and columns)
    confusion: torch.Tensor = field(repr=False)  # (classes, classes): rows the true class, columns the top-1
    expected: int = 0  # images the val split holds (shards: as their _info.json says)
    bad_shards: list[str] = field(default_factory=list)  # "SHARD: why" of each shard that failed or broke off

    @property
    def missing(self) -> int:
        """Images of the split never read (a bad or missing shard): neither evaluated nor skipped."""
        return max(0, self.expected - self.count - self.skipped)

    def shortfall(self) -> str | None:
        """A warning line when fewer images were evaluated than the split holds, else None."""
        if self.count >= self.expected:
            return None
        bad = "".join(f"; bad shard {line}" for line in self.bad_shards)
        return (
            f"evaluated {self.count} of the {self.expected} images of {self.data}'s val split ({self.skipped} "
            f"skipped, {self.missing} never read{bad}): the figures are over the images evaluated"
        )

    @property
    def per_class(self) -> dict[str, float]:
        """Top-1 (%) of each class that occurs in the data, by label."""
        seen = self.confusion.sum(1)
        return {self.labels[i]: 100.0 * float(self.confusion[i, i]) / float(n) for i, n in enumerate(seen) if n > 0}

    def most_confused(self, k: int = 5) -> list[tuple[str, str, int]]:
        """The ``k`` most frequent mistakes: (true label, predicted label, count)."""
        off = self.confusion.clone()
        off.fill_diagonal_(0)
        side = off.shape[1]
        top = off.flatten().topk(min(k, off.numel()))
        return [
            (self.labels[i // side], self.labels[i % side], int(n))
            for n, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
            if n > 0
        ]

    def confusion_csv(self) -> str:
        """The confusion matrix as CSV (rows: true class, columns: predicted), only the classes that occur."""
        c = self.confusion
        used = sorted(set(c.sum(1).nonzero().flatten().tolist()) | set(c.sum(0).nonzero().flatten().tolist()))
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["true \\ predicted", *(self.labels[j] for j in used)])
        for i in used:
            writer.writerow([self.labels[i], *(int(c[i, j]) for j in used)])
        return buf.getvalue()


@dataclass(frozen=True)
class Prediction:
    """The top labels of one image, most likely first; ``error`` (and no labels) when it could not be read."""

    path: str
    top: list[tuple[str, float]]  # (label, probability in [0, 1])
    error: str | None = None


def evaluate(
    source: str | Path | Source,
    data: str | None = None,
    *,
    res: int | None = None,
    batch: int = 64,
    workers: int = 2,
    device: str | torch.device = "auto",
    weights: str = "auto",
    pretrained: bool | str | None = None,
) -> EvalResult:
    """Evaluate ``source`` on ``data``'s validation split (a folder with ``val/<class>/``, a named dataset,
    synthetic-shapes, or ``wds:`` shards; default: a run's own data) at ``res`` (default: the test size), with the
    model's own evaluation transform. The model's classes give the labels: a class folder it never saw is a
    ValueError."""
    from .data import build_loader, epoch_order, make_val_dataset
    from .train.steps import evaluate as evaluate_batches
    from .utils.device import device_named

    dev = device_named(device)
    src = resolve(source, pretrained=pretrained, weights=weights, device=dev)
    data = data or src.data
    if data is None:
        raise ValueError("--data DIR: a folder with val/<class>/ images, or a named dataset (convscale datasets)")
    if src.folders is None:
        raise ValueError(f"{src.label} has no class folder names to match {data}'s folders with")
    val, _ = make_val_dataset(data, classes=src.folders, **src.data_options)
    res = res or src.policy.test_res
    order = epoch_order(val, batch, shuffle=False)
    loader = build_loader(val, src.transform(res), order, workers=workers, pin_memory=dev.type == "cuda")
    confusion = torch.zeros(len(src.labels), len(src.labels), dtype=torch.long)
    r = evaluate_batches(src.model, loader, dev, confusion=confusion)
    if r.count == 0:
        raise ValueError(f"no image of {data}'s val split decoded ({r.skipped} skipped)")
    m = r.metrics
    bad = [f"{url}: {why}" for url, why in getattr(order, "bad", {}).items()]
    return EvalResult(
        src.label, data, res, src.policy.crop_pct, m["top1"], m["top5"], m["loss"], r.count, r.skipped, src.labels,
        confusion, len(val), bad,
    )  # fmt: skip


def predict(
    source: str | Path | Source,
    images: Sequence[str | Path],
    *,
    topk: int = 5,
    res: int | None = None,
    device: str | torch.device = "auto",
    weights: str = "auto",
    pretrained: bool | str | None = None,
) -> list[Prediction]:
    """The ``topk`` labels of each image (files; a folder gives every image in it), with the model's own evaluation
    transform. An image that cannot be read gets a :class:`Prediction` with ``error`` set (and no labels)."""
    from .data import DECODE_ERRORS, load_rgb
    from .utils.device import device_named

    dev = device_named(device)
    paths = image_paths([str(p) for p in images])
    src = resolve(source, pretrained=pretrained, weights=weights, device=dev)
    transform = src.transform(res)
    out = []
    for path in paths:
        try:
            x = transform(load_rgb(path))[None].to(dev)
        except DECODE_ERRORS as e:
            out.append(Prediction(path, [], f"cannot read as an image ({str(e)[:200]})"))
            continue
        with torch.no_grad():
            probs = src.model(x).float().softmax(1)[0].cpu()
        top = probs.topk(min(topk, len(src.labels)))
        pairs = zip(top.values.tolist(), top.indices.tolist(), strict=True)
        out.append(Prediction(path, [(src.labels[i], p) for p, i in pairs]))
    return out


def image_paths(args: Sequence[str]) -> list[str]:
    """The files to predict: each file as given; a folder gives every image file in it (by suffix, its sub-folders
    too), sorted. A path that does not exist, or a folder without images, is a ValueError."""
    from .data.folder import IMAGE_SUFFIXES

    paths: list[str] = []
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))  # fmt: skip
            if not found:
                raise ValueError(f"{arg}: a folder without image files ({', '.join(IMAGE_SUFFIXES)})")
            paths += found
        elif p.exists():
            paths.append(arg)
        else:
            raise ValueError(f"{arg}: no such file or folder")
    return paths
