"""Data: the built-in ``synthetic-shapes`` dataset, ImageFolder datasets, per-image transforms, and batch order."""

from __future__ import annotations

from pathlib import Path

from .folder import DECODE_ERRORS, ImageFolder, class_folders, load_rgb
from .loader import Batch, EpochOrder, build_loader, epoch_order
from .shapes import SHAPE_CLASSES, SyntheticShapes, render_all
from .transforms import EvalTransform, TrainTransform

__all__ = [
    "DECODE_ERRORS",
    "SHAPE_CLASSES",
    "SHARDS",
    "Batch",
    "EpochOrder",
    "EvalTransform",
    "ImageFolder",
    "SyntheticShapes",
    "TrainTransform",
    "build_loader",
    "epoch_order",
    "load_rgb",
    "make_datasets",
    "make_val_dataset",
    "resolve_data",
]

BUILTIN = "synthetic-shapes"
SHARDS = "wds:"  # --data wds:FOLDER_OR_URL: tar shards in timm's WebDataset layout


def resolve_data(data: str) -> Path:
    """The folder ``--data`` names: a folder, or a named dataset (``imagenette2-160``, ...) from the cache, downloaded
    on first use (``convscale datasets``)."""
    from .catalog import fetch, is_named

    return fetch(data) if is_named(data) else Path(data).expanduser()


def make_datasets(
    data: str,
    *,
    seed: int = 0,
    shapes_train: int = 10_000,
    shapes_val: int = 2_000,
    shapes_res: int = 32,
    draft: int | None = None,
    workers: int = 0,
    shards: dict | None = None,
):
    """(train, val, classes, native resolution or None) for ``synthetic-shapes``, a folder with ``train/`` and
    ``val/`` (one sub-folder per class), or shards (``wds:SOURCE``; ``shards``: :class:`ShardDataset`'s options).
    Missing or empty splits are a ValueError, raised before any training."""
    if data.startswith(SHARDS):
        train, val = _shard_splits(data, shards or {}, ("train", "val"))
        return train, val, train.classes, None
    if data == BUILTIN:
        train = render_all(SyntheticShapes("train", size=shapes_train, res=shapes_res, seed=seed), workers)
        val, classes = make_val_dataset(data, seed=seed, shapes_val=shapes_val, shapes_res=shapes_res, workers=workers)
        return train, val, classes, shapes_res
    train = ImageFolder(_split_folder(data, "train"), draft=draft)
    val, _ = make_val_dataset(data, classes=train.classes, draft=draft)
    return train, val, train.classes, None


def _shard_splits(data: str, options: dict, splits: tuple[str, ...]) -> list:
    """The ``splits`` of the shard source ``wds:SOURCE``, its ``_info.json`` read once (with the options' timeout)."""
    from .shards import ShardDataset, read_info

    source = read_info(
        data.removeprefix(SHARDS), **({"timeout_s": options["timeout_s"]} if "timeout_s" in options else {})
    )
    return [ShardDataset(source, split, **options) for split in splits]


def _split_folder(data: str, split: str) -> Path:
    root = resolve_data(data)
    if not root.is_dir():
        raise ValueError(f"--data {data}: no such folder (and not the built-in {BUILTIN!r} or a named dataset)")
    if not (root / split).is_dir():
        raise ValueError(f"{root} has no {split}/ folder: expected {root}/{split}/<class name>/<images>")
    return root / split


def make_val_dataset(
    data: str,
    *,
    classes: list[str] | None = None,
    seed: int = 0,
    shapes_val: int = 2_000,
    shapes_res: int = 32,
    draft: int | None = None,
    workers: int = 0,
    shards: dict | None = None,
):
    """(val split, classes) of ``data``: ``classes`` give the label indices (a trained run's); without them, the
    class folders of ``train/`` when it exists (as training saw them), else those of ``val/`` (shards: the classes
    their ``_info.json`` names)."""
    if data.startswith(SHARDS):
        (val,) = _shard_splits(data, shards or {}, ("val",))
        if classes is not None and list(classes) != val.classes:
            raise ValueError(f"{data} has other classes than the run ({len(val.classes)} vs {len(classes)})")
        return val, val.classes
    if data == BUILTIN:
        if classes is not None and list(classes) != list(SHAPE_CLASSES):
            raise ValueError(f"{BUILTIN} has other classes than asked ({len(SHAPE_CLASSES)} vs {len(classes)})")
        val = render_all(SyntheticShapes("val", size=shapes_val, res=shapes_res, seed=seed), workers)
        return val, list(SHAPE_CLASSES)
    folder = _split_folder(data, "val")
    if classes is None and (folder.parent / "train").is_dir():
        classes = class_folders(folder.parent / "train")
    val = ImageFolder(folder, classes=classes, draft=draft)
    return val, val.classes
