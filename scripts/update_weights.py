"""Write ``src/convscale/weights/weights.json`` (and ``imagenet_classes.txt``) from timm's and torchvision's pretrained
configs. Run in the reference environment of ``shared/tools/ref_env.sh`` (it has timm and torchvision):

    REF_PY scripts/update_weights.py

For every registered model with a timm counterpart, every tag timm lists with weights; for the models with a
torchvision counterpart, torchvision's ImageNet weights (tags ``tv_in1k``, ``tv2_in1k``, timm's names for them). A
record is written only when the reference model's tensor names and shapes equal convscale's mapped ones (both built
on the meta device); the others are printed and left out. Published top-1: ``scripts/timm_top1.csv`` (timm's results
table) and torchvision's weight metadata.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from convscale.factory import create_model  # noqa: E402
from convscale.interop import timm_key_map, torchvision_key_map  # noqa: E402
from convscale.registry import counterpart, list_models  # noqa: E402
from convscale.weights import key_digest  # noqa: E402

LABEL_SETS = {1000: "imagenet-1k", 11821: "imagenet-12k", 21841: "imagenet-21k", 21843: "imagenet-21k", 0: "none"}
LABEL_SETS |= {11221: "imagenet-21k-p", 640: "clip-640"}  # MIIL's ImageNet-21K-P; CLIP image towers' 640-d output
TV_TAGS = {"IMAGENET1K_V1": "tv_in1k", "IMAGENET1K_V2": "tv2_in1k"}


def published_top1() -> dict[str, tuple[float, int]]:
    lines = [line for line in (ROOT / "scripts" / "timm_top1.csv").read_text().splitlines() if not line.startswith("#")]
    return {row["model"]: (float(row["top1"]), int(row["img_size"])) for row in csv.DictReader(lines)}


def ours_digest(name: str, num_classes: int, library: str) -> str:
    form = dict(counterpart(name, library).form)
    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes, **form)
    key_map = (timm_key_map if library == "timm" else torchvision_key_map)(model)
    return key_digest((key_map[k], v.shape) for k, v in model.state_dict().items())


def label_set(num_classes: int) -> str:
    return LABEL_SETS.get(num_classes, f"{num_classes}-classes")


def timm_records(name: str, top1: dict) -> tuple[list[dict], str | None, list[str]]:
    import timm
    from timm.models import get_pretrained_cfg, list_pretrained

    arch = counterpart(name, "timm").name
    rows, skipped = [], []
    for full in list_pretrained(arch + ".*"):
        if full.split(".", 1)[0] != arch:
            continue
        cfg = get_pretrained_cfg(full).to_dict()
        if not cfg.get("hf_hub_id") or cfg.get("custom_load") or cfg.get("hf_hub_filename"):
            skipped.append(f"{full} (not a plain hub checkpoint)")
            continue
        nc = cfg["num_classes"]
        with torch.device("meta"):
            ref = timm.create_model(full, pretrained=False, num_classes=nc)
        digest = key_digest((k, v.shape) for k, v in ref.state_dict().items())
        if digest != ours_digest(name, nc, "timm"):
            skipped.append(f"{full} (another layout than convscale's {name})")
            continue
        published = top1.get(full)
        rows.append(
            {
                "model": name,
                "tag": full.split(".", 1)[1],
                "source": "timm",
                "hub_id": cfg["hf_hub_id"],
                "url": None,
                "sha256": None,
                "input_size": cfg["input_size"][-1],
                "test_input_size": (cfg.get("test_input_size") or cfg["input_size"])[-1],
                "crop_pct": cfg["crop_pct"],
                "test_crop_pct": cfg.get("test_crop_pct"),
                "crop_mode": cfg.get("crop_mode") or "center",
                "interpolation": cfg["interpolation"],
                "mean": list(cfg["mean"]),
                "std": list(cfg["std"]),
                "num_classes": nc,
                "label_set": label_set(nc),
                "top1": published[0] if published else None,
                "top1_res": published[1] if published else None,
                "license": cfg.get("license"),
                "keys": digest,
            }
        )
    default = get_pretrained_cfg(arch).tag if rows else None
    if default is not None and default not in {r["tag"] for r in rows}:
        default = rows[0]["tag"]
    return rows, default, skipped


def torchvision_records(name: str) -> list[dict]:
    import torchvision
    from torchvision.models import get_model_weights

    tv_name = counterpart(name, "torchvision").name
    with torch.device("meta"):
        ref = torchvision.models.get_model(tv_name, weights=None)
    digest = key_digest((k, v.shape) for k, v in ref.state_dict().items())
    assert digest == ours_digest(name, 1000, "torchvision"), name
    rows = []
    for w in get_model_weights(tv_name):
        t = w.transforms()
        crop, resize = t.crop_size[0], t.resize_size[0]
        sha = w.url.rsplit("-", 1)[-1].split(".", 1)[0]
        rows.append(
            {
                "model": name,
                "tag": TV_TAGS[w.name],
                "source": "torchvision",
                "hub_id": None,
                "url": w.url,
                "sha256": sha,
                "input_size": crop,
                "test_input_size": crop,
                "crop_pct": tv_crop_pct(crop, resize),
                "test_crop_pct": None,
                "crop_mode": "center",
                "interpolation": t.interpolation.value,
                "mean": list(t.mean),
                "std": list(t.std),
                "num_classes": len(w.meta["categories"]),
                "label_set": "imagenet-1k",
                "top1": w.meta["_metrics"]["ImageNet-1K"]["acc@1"],
                "top1_res": crop,
                "license": "bsd-3-clause",  # torchvision's; its model zoo names no other
                "keys": digest,
            }
        )
    return rows


def tv_crop_pct(crop: int, resize: int) -> float:
    """torchvision's resize-then-crop as timm's crop fraction: 224 / 232 -> 0.965 (floor(224 / 0.965) = 232)."""
    pct = math.floor(1000 * crop / resize) / 1000
    assert math.floor(crop / pct) == resize, (crop, resize)
    return pct


def imagenet_classes() -> str:
    from timm.data import ImageNetInfo
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    info = ImageNetInfo()
    return "".join(f"{info.index_to_label_name(i)}\t{name}\n" for i, name in enumerate(_IMAGENET_CATEGORIES))


def main() -> None:
    top1 = published_top1()
    weights, defaults, skipped = [], {}, []
    for name in list_models(include_tiny=False):
        rows = []
        timm = counterpart(name, "timm")
        if timm is not None and timm.name is not None:
            rows, default, left = timm_records(name, top1)
            skipped += left
            if default:
                defaults[name] = default
        tv = counterpart(name, "torchvision")
        if tv is not None and tv.name is not None:
            tv_rows = torchvision_records(name)
            rows += tv_rows
            defaults.setdefault(name, tv_rows[0]["tag"])
        weights += rows
    table = {
        "format": 1,
        "written_by": "scripts/update_weights.py",
        "timm_version": __import__("timm").__version__,
        "torchvision_version": __import__("torchvision").__version__,
        "default_tags": dict(sorted(defaults.items())),
        "weights": weights,
    }
    out = ROOT / "src" / "convscale" / "weights" / "weights.json"
    out.write_text(json.dumps(table, indent=1) + "\n")
    (ROOT / "src" / "convscale" / "weights" / "imagenet_classes.txt").write_text(imagenet_classes())
    print(f"{len(weights)} weights of {len(defaults)} models -> {out}")
    for line in skipped:
        print("left out:", line)


if __name__ == "__main__":
    main()
