"""Check that timm reads the shards ``convscale shards`` wrote: run in the reference environment (timm and
webdataset installed; ``../shared/tools/ref_env.sh``), it opens every split with timm's own ``wds/`` dataset (its
``ReaderWds``: ``_info.json``, ``.jpg``/``.png``/``.webp`` + ``.cls``), decodes each sample, and compares the number of
samples and their labels with what ``_info.json`` and the source folder say.

    $HOME/.cache/convscale-ref/bin/python benchmarks/timm_reads_shards.py SHARDS_DIR [--source FOLDER]
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("shards", help="a folder written by convscale shards")
    p.add_argument("--source", help="the ImageFolder it was written from (default: the one _info.json names)")
    args = p.parse_args()
    import timm
    from timm.data import create_dataset

    info = json.loads((Path(args.shards) / "_info.json").read_text())
    source = Path(args.source or info["convscale"]["source"])
    classes = info["classes"]
    ok = True
    for split, meta in info["splits"].items():
        ds = create_dataset(f"wds/{info['name']}", root=args.shards, split=split, is_training=False, batch_size=1)
        labels = collections.Counter()
        sizes = set()
        for img, target in ds:
            labels[classes[int(target)]] += 1
            sizes.add(img.size)
        expected = collections.Counter(
            {
                c: sum(1 for f in (source / split / c).iterdir() if f.is_file())
                for c in classes
                if (source / split / c).is_dir()
            }
        )
        skipped = info["convscale"]["skipped"].get(split, 0)
        same = sum(labels.values()) == meta["num_samples"] and (labels == expected or skipped)
        ok &= bool(same)
        print(
            f"timm {timm.__version__} read {split}: {sum(labels.values())} samples "
            f"(_info.json {meta['num_samples']}, folder {sum(expected.values())}, left out {skipped}); per class "
            f"{dict(labels)} {'== folder' if labels == expected else '!= folder ' + str(dict(expected))}; "
            f"{len(sizes)} image sizes"
        )
    print("timm reads the shards: " + ("yes" if ok else "NO"))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
