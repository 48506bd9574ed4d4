"""Loader-only throughput: training crops per second from JPEG files, the decoded-image cache, and tar shards read
from the disk and over HTTP.

    .venv/bin/python benchmarks/loader_throughput.py --out results/train

1,000 JPEG photos of 500 × 375 (ImageNet's typical size; the digits photos of ``train_vs_timm.py``). For each
training size (64, 128, 224 px) the training loader — 2 worker processes, batches of 64, the random-resized crop
(0.08–1) to the size as ``convscale train`` does it — reads one epoch from each source, in a rotating order, three
times each: the files (JPEG draft decoding as training sets it), the cache (shorter side ``size / 0.875``, built
beforehand; its build time is reported), the same JPEGs as tar shards (``convscale shards``, images as stored, 16 MB
shards) read from the disk, and those shards served over HTTP by ``python -m http.server`` on 127.0.0.1 (a separate
process). The shard reader reads in a thread of the main process, with a shuffle buffer of 1,024; decoding and
cropping are in the workers, as for files. Nothing trains: this is the loader's ceiling. Writes
``loader_throughput.csv`` (the CPU and its instruction sets in every row).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from common import write_csv  # noqa: E402
from convscale.data import ImageFolder, TrainTransform, build_loader, epoch_order  # noqa: E402
from convscale.data.cache import CachedImages, build_cache, cache_folder  # noqa: E402
from convscale.data.shards import ShardDataset, read_info  # noqa: E402
from convscale.data.shards.write import ShardSettings, write_shards  # noqa: E402
from convscale.utils.machine import machine  # noqa: E402
from train_vs_timm import write_photos  # noqa: E402

CROP_SCALE = 0.08


def epoch_rate(dataset, res: int, seed: int, workers: int) -> float:
    """Images per second of one loader epoch over ``dataset`` (workers' start-up included, as every epoch has it)."""
    order = epoch_order(dataset, 64, shuffle=True, seed=seed)
    loader = build_loader(dataset, TrainTransform(res, (CROP_SCALE, 1.0), flip=0.0, normalize=False), order,
                          workers=workers)  # fmt: skip
    start, images = time.perf_counter(), 0
    for batch in loader:
        images += len(batch.labels)
    return images / (time.perf_counter() - start)


@contextlib.contextmanager
def served(folder: Path):
    """``folder`` over HTTP on 127.0.0.1, by ``python -m http.server`` in its own process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.1):
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


def shards_of(root: Path, work: Path) -> Path:
    """The photos as tar shards (images as stored), written once."""
    out = work / "shards-500x375"
    if not (out / "_info.json").is_file():
        write_shards(str(root), out, ShardSettings(shard_bytes=16 * 10**6), workers=2, log=lambda *_: None)
    return out


def rates_at(res: int, sources: dict, repeats: int, workers: int) -> dict[str, list[float]]:
    """Each source's epoch rates, the sources in a rotating order from one repeat to the next."""
    names = list(sources)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            rates[name].append(epoch_rate(sources[name], res, r, workers))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/train")
    parser.add_argument("--work", default="runs/loader", help="the photos, shards and caches (not committed)")
    parser.add_argument("--sizes", default="64,128,224")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(args.work)
    root = write_photos(work / "photos-500x375", size=(500, 375))
    files = ImageFolder(root / "train")
    shards = shards_of(root, work)
    host = machine()
    print(f"machine: {host.describe()}", flush=True)
    rows = []
    with served(shards) as url:
        local = ShardDataset(read_info(str(shards)), "train", buffer=1024)
        remote = ShardDataset(read_info(url), "train", buffer=1024)
        for res in (int(s) for s in args.sizes.split(",")):
            draft = round(res / CROP_SCALE**0.5)  # as training sets it: the smallest crop keeps its pixels
            files.draft = local.draft = remote.draft = draft
            cache_res = round(res / 0.875)
            with tempfile.TemporaryDirectory(dir=work) as caches:
                built = build_cache(files, cache_res, cache_folder(files.root, cache_res, caches), workers=args.workers)
                cached = CachedImages(files, built.folder, cache_res)
                sources = {"jpeg": files, "cache": cached, "shards": local, "shards-http": remote}
                rates = rates_at(res, sources, args.repeats, args.workers)
            rows += _rows(res, rates, built, cache_res, len(files), args.workers, host)
            each = [f"{k} {statistics.median(v):.0f} img/s ({_runs(v)})" for k, v in rates.items()]
            print(f"{res} px: {', '.join(each)}; cache {built.bytes / 2**20:.0f} MiB in {built.seconds:.1f} s")
    write_csv(Path(args.out) / "loader_throughput.csv", rows)


def _runs(values: list[float]) -> str:
    return "/".join(f"{v:.0f}" for v in values)


def _rows(res: int, rates: dict, built, cache_res: int, images: int, workers: int, host) -> list[dict]:
    jpeg = statistics.median(rates["jpeg"])
    rows = []
    for source, values in rates.items():
        cache = source == "cache"
        rows.append(dict(
            res=res, source=source, cache_res=cache_res if cache else "", build_s=round(built.seconds, 2) if cache
            else "", cache_mib=round(built.bytes / 2**20, 1) if cache else "", images=images, workers=workers,
            img_s=round(statistics.median(values), 1), runs=_runs(values),
            vs_jpeg=round(statistics.median(values) / jpeg, 2), cpu=host.cpu, isa=" ".join(host.isa),
        ))  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
