"""Loader-only throughput: training crops per second from JPEG files vs from the decoded-image cache.

    .venv/bin/python benchmarks/loader_throughput.py --out docs/train

1,000 JPEG photos of 500 × 375 (ImageNet's typical size; the digits photos of ``train_vs_timm.py``). For each
training size (64, 128, 224 px) the training loader — 2 worker processes, batches of 64, the random-resized crop
(0.08–1) to the size as ``convscale train`` does it — reads one epoch from the files (JPEG draft decoding as training
sets it) and one from the cache (shorter side ``size / 0.875``, built beforehand; its build time is reported), the two
alternating, three times each. Nothing trains: this is the loader's ceiling. Writes ``loader_throughput.csv``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from common import write_csv  # noqa: E402
from convscale.data import EpochOrder, ImageFolder, TrainTransform, build_loader  # noqa: E402
from convscale.data.cache import CachedImages, build_cache, cache_folder  # noqa: E402
from train_vs_timm import write_photos  # noqa: E402

CROP_SCALE = 0.08


def epoch_rate(dataset, res: int, seed: int, workers: int) -> float:
    """Images per second of one loader epoch over ``dataset`` (workers' start-up included, as every epoch has it)."""
    order = EpochOrder(len(dataset), 64, shuffle=True, seed=seed)
    loader = build_loader(dataset, TrainTransform(res, (CROP_SCALE, 1.0), flip=0.0, normalize=False), order,
                          workers=workers)  # fmt: skip
    start, images = time.perf_counter(), 0
    for batch in loader:
        images += len(batch.labels)
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/train")
    parser.add_argument("--work", default="runs/loader", help="the photos and caches (not committed)")
    parser.add_argument("--sizes", default="64,128,224")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(args.work)
    root = write_photos(work / "photos-500x375", size=(500, 375))
    files = ImageFolder(root / "train")
    rows = []
    for res in (int(s) for s in args.sizes.split(",")):
        files.draft = round(res / CROP_SCALE**0.5)  # as training sets it: the smallest crop keeps its pixels
        cache_res = round(res / 0.875)
        with tempfile.TemporaryDirectory(dir=work) as caches:
            built = build_cache(files, cache_res, cache_folder(files.root, cache_res, caches), workers=args.workers)
            cached = CachedImages(files, built.folder, cache_res)
            rates: dict[str, list[float]] = {"jpeg": [], "cache": []}
            for r in range(args.repeats):
                pair = [("jpeg", files), ("cache", cached)]
                for source, dataset in pair if r % 2 == 0 else pair[::-1]:
                    rates[source].append(epoch_rate(dataset, res, r, args.workers))
        jpeg, cache = statistics.median(rates["jpeg"]), statistics.median(rates["cache"])
        for source, values in rates.items():
            rows.append(dict(
                res=res, source=source, cache_res=cache_res if source == "cache" else "",
                build_s=round(built.seconds, 2) if source == "cache" else "", cache_mib=round(built.bytes / 2**20, 1)
                if source == "cache" else "", images=len(files), workers=args.workers,
                img_s=round(statistics.median(values), 1), runs="/".join(f"{v:.0f}" for v in values),
                vs_jpeg=round(statistics.median(values) / jpeg, 2),
            ))  # fmt: skip
        runs = "/".join(f"{v:.0f}" for v in rates["jpeg"]), "/".join(f"{v:.0f}" for v in rates["cache"])
        print(
            f"{res} px: JPEG {jpeg:.0f} img/s ({runs[0]}), cache {cache:.0f} img/s ({runs[1]}): {cache / jpeg:.2f}x; "
            f"cache at {cache_res} px {built.bytes / 2**20:.0f} MiB, built in {built.seconds:.1f} s",
            flush=True,
        )
    write_csv(Path(args.out) / "loader_throughput.csv", rows)


if __name__ == "__main__":
    main()
