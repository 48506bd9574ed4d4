"""Data: the built-in ``synthetic-shapes`` dataset, ImageFolder datasets, per-image transforms, and batch order."""

from __future__ import annotations

from pathlib import Path

from .folder import DECODE_ERRORS, ImageFolder, load_rgb
from .loader import Batch, EpochOrder, build_loader
from .shapes import SHAPE_CLASSES, SyntheticShapes, render_all
from .transforms import EvalTransform, TrainTransform

__all__ = [
    "DECODE_ERRORS",
    "SHAPE_CLASSES",
    "Batch",
    "EpochOrder",
    "EvalTransform",
    "ImageFolder",
    "SyntheticShapes",
    "TrainTransform",
    "build_loader",
    "load_rgb",
    "make_datasets",
    "make_val_dataset",
]

BUILTIN = "synthetic-shapes"


def make_datasets(
    data: str,
    *,
    seed: int = 0,
    shapes_train: int = 10_000,
    shapes_val: int = 2_000,
    shapes_res: int = 32,
    draft: int | None = None,
    workers: int = 0,
):
    """(train, val, classes, native resolution or None) for ``synthetic-shapes`` or a folder with ``train/`` and
    ``val/`` (one sub-folder per class). Missing or empty splits are a ValueError, raised before any training."""
    if data == BUILTIN:
        train = render_all(SyntheticShapes("train", size=shapes_train, res=shapes_res, seed=seed), workers)
        val = render_all(SyntheticShapes("val", size=shapes_val, res=shapes_res, seed=seed), workers)
        return train, val, list(SHAPE_CLASSES), shapes_res
    root = Path(data)
    if not root.is_dir():
        raise ValueError(f"--data {data}: no such folder (and not the built-in {BUILTIN!r})")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise ValueError(f"{root} has no {split}/ folder: expected {root}/{split}/<class name>/<images>")
    train = ImageFolder(root / "train", draft=draft)
    val = ImageFolder(root / "val", classes=train.classes, draft=draft)
    return train, val, train.classes, None


def make_val_dataset(data: str, *, seed: int = 0, shapes_val: int = 2_000, shapes_res: int = 32, workers: int = 0):
    """(val split, classes) of ``data`` alone, as :func:`make_datasets` gives them (the classes from ``train/`` when
    it exists, so that label indices agree with training)."""
    if data == BUILTIN:
        val = render_all(SyntheticShapes("val", size=shapes_val, res=shapes_res, seed=seed), workers)
        return val, list(SHAPE_CLASSES)
    root = Path(data)
    if not (root / "val").is_dir():
        raise ValueError(f"--data {data}: no {root / 'val'} folder (and not the built-in {BUILTIN!r})")
    classes = ImageFolder(root / "train").classes if (root / "train").is_dir() else None
    val = ImageFolder(root / "val", classes=classes)
    return val, val.classes
