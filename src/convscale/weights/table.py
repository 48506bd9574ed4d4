"""Published weights as typed data: one frozen :class:`Weights` record per (model, tag), as torchvision types its
weights, for the checkpoints timm hosts on the Hugging Face hub (``timm/<model>.<tag>``) and torchvision's own.

The table is ``weights.json`` beside this module, written by ``scripts/update_weights.py`` from timm's and
torchvision's pretrained configs (in the reference environment of ``shared/tools/ref_env.sh``), with the published
top-1 from timm's results table and torchvision's weight metadata. Each record also carries a digest of the
reference model's tensor names and shapes, so a test proves, offline and for every record, that the convscale model
maps onto the checkpoint key for key. Downloading is :mod:`convscale.weights.hub`'s job; nothing here touches the
network.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..data.transforms import EvalPolicy, EvalTransform

__all__ = [
    "Weights",
    "default_tag",
    "get_weights",
    "imagenet_classes",
    "imagenet_folders",
    "key_digest",
    "list_pretrained",
    "readable_class_names",
    "weights_for",
]

TABLE = Path(__file__).with_name("weights.json")
IMAGENET_CLASSES = Path(__file__).with_name("imagenet_classes.txt")


@dataclass(frozen=True)
class Weights:
    """One published checkpoint of a registered model, and how its model was trained and is evaluated."""

    model: str  # the registered convscale name
    tag: str  # e.g. "ra_in1k"; the full name is ``model.tag``
    source: str  # "timm" (its layout, on the Hugging Face hub) or "torchvision" (its layout, at ``url``)
    hub_id: str | None  # "timm/efficientnet_b0.ra_in1k"
    url: str | None  # torchvision's download address
    sha256: str | None  # the leading hex digits of the file's sha256 (torchvision writes them into the file name)
    input_size: int  # the training size
    test_input_size: int  # the size the published top-1 was measured at
    crop_pct: float
    test_crop_pct: float | None
    crop_mode: str  # "center" (resize the short side, centre crop) or "squash" (resize both sides, centre crop)
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_classes: int  # 0: a feature extractor without a classifier
    label_set: str  # "imagenet-1k", "imagenet-12k", "imagenet-21k", ... or "none"
    top1: float | None  # published ImageNet-1k top-1 at ``top1_res`` (None where none is published)
    top1_res: int | None
    license: str | None
    keys: str  # key_digest of the reference model's state dict
    label_names: tuple[str, ...] | None = None  # a hub repository's own labels (timm's config.json ``label_names``)

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"

    @property
    def filename(self) -> str:
        """The file on the hub (timm's ``model.safetensors``), or the last part of the torchvision URL."""
        return self.url.rsplit("/", 1)[-1] if self.url else "model.safetensors"

    @property
    def classes(self) -> list[str] | None:
        """Human-readable class names in logit order: a repository's own ``label_names``, else ImageNet-1k's (other
        label sets are not bundled)."""
        if self.label_names:
            return list(self.label_names)
        return [name for _, name in imagenet_classes()] if self.label_set == "imagenet-1k" else None

    @property
    def folders(self) -> list[str] | None:
        """The class folder of each logit, for evaluating on a folder of class folders: a repository's own
        ``label_names``, else ImageNet-1k's WordNet ids."""
        if self.label_names:
            return list(self.label_names)
        return imagenet_folders() if self.label_set == "imagenet-1k" else None

    @property
    def form(self) -> dict[str, object]:
        """The ``create_model`` overrides under which convscale's model computes what the source's does."""
        from ..registry import counterpart

        c = counterpart(self.model, self.source)
        return dict(c.form) if c is not None else {}

    @property
    def eval_crop_pct(self) -> float:
        """The centre-crop fraction of evaluation: the test-size one where published, else the training one."""
        return self.test_crop_pct or self.crop_pct

    @property
    def policy(self) -> EvalPolicy:
        """How these weights are fed: their sizes, evaluation crop, resampling and normalization."""
        return EvalPolicy(
            self.input_size,
            self.test_input_size,
            self.eval_crop_pct,
            self.interpolation,
            self.mean,
            self.std,
            self.crop_mode,
        )

    def transforms(self, res: int | None = None) -> EvalTransform:
        """The evaluation transform the published top-1 was measured with: at the test size (or ``res``), its crop
        fraction and mode, interpolation, mean and std."""
        return self.policy.transform(res)


@cache
def _table() -> tuple[dict[str, Weights], dict[str, str]]:
    raw = json.loads(TABLE.read_text())
    records = {}
    for row in raw["weights"]:
        w = Weights(**{**row, "mean": tuple(row["mean"]), "std": tuple(row["std"])})
        records[w.name] = w
    return records, dict(raw["default_tags"])


def list_pretrained(pattern: str = "*") -> list[str]:
    """Full names (``model.tag``) of every published checkpoint whose model matches ``pattern``, default tag first."""
    import fnmatch

    records, defaults = _table()
    names = [n for n, w in records.items() if fnmatch.fnmatchcase(w.model, pattern)]
    return sorted(names, key=lambda n: (records[n].model, defaults.get(records[n].model) != records[n].tag, n))


def weights_for(model: str) -> list[Weights]:
    """Every published checkpoint of registered ``model``, the default first."""
    records, _ = _table()
    return [records[n] for n in list_pretrained(model)]


def default_tag(model: str) -> str | None:
    """The tag ``pretrained=True`` loads (timm's default for the model; torchvision's where timm hosts none)."""
    return _table()[1].get(model)


def get_weights(model: str, tag: str | None = None) -> Weights:
    """The record of ``model`` (a registered name, or a full ``model.tag`` name) with ``tag`` (None: the default).

    An unknown tag raises ValueError listing the model's tags."""
    if tag is None and "." in model:
        model, tag = model.split(".", 1)
    from ..registry import get_entry

    get_entry(model)  # an unknown model: the registry's message, with the closest names
    records, defaults = _table()
    tag = tag or defaults.get(model)
    if tag is None:
        raise ValueError(f"{model} has no published weights (`convscale list --pretrained` lists the models that do)")
    if f"{model}.{tag}" not in records:
        tags = ", ".join(w.tag for w in weights_for(model)) or "none"
        raise ValueError(f"{model} has no weights tagged {tag!r}; its tags: {tags}")
    return records[f"{model}.{tag}"]


def key_digest(shapes: Iterable[tuple[str, Iterable[int]]]) -> str:
    """A short digest of a state dict's tensor names and shapes (batch-norm step counters left out, trailing 1s of
    a shape dropped, so a 1×1 conv and a linear layer of the same weights agree)."""
    rows = []
    for key, shape in shapes:
        if key.endswith("num_batches_tracked"):
            continue
        dims = list(shape)
        while dims and dims[-1] == 1 and len(dims) > 1:
            dims.pop()
        rows.append([key, dims])
    return hashlib.sha256(json.dumps(sorted(rows)).encode()).hexdigest()[:16]


@cache
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """ImageNet-1k's (WordNet id, short name) pairs, in the usual label order (sorted WordNet ids)."""
    rows = []
    for line in IMAGENET_CLASSES.read_text(encoding="utf-8").splitlines():
        wnid, name = line.split("\t")
        rows.append((wnid, name))
    return tuple(rows)


def imagenet_folders() -> list[str]:
    """ImageNet-1k's WordNet ids in label order: the class folders of its val split (and of Imagenette's)."""
    return [wnid for wnid, _ in imagenet_classes()]


def readable_class_names(classes: Iterable[str]) -> list[str]:
    """Class folder names with WordNet ids (``n01440764``) replaced by their ImageNet name (``tench``); other names
    are kept as they are."""
    names: Mapping[str, str] = dict(imagenet_classes())
    return [names.get(c, c) for c in classes]
