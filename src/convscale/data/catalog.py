"""Datasets by name: fast.ai's Imagenette and Imagewoof (10-class ImageNet subsets, the homework of these papers),
downloaded from their official address into a cache folder, checked, and extracted safely and atomically, once.

The cache folder is ``$CONVSCALE_DATASETS``, else ``$XDG_CACHE_HOME/convscale/datasets`` (``~/.cache/...``). A dataset
is ready when its folder exists there: it appears in one rename, after every member of the archive was written, so a
half-extracted dataset is never taken for one. Archive members are written one by one by this module, never by
``tarfile``'s own extraction: an absolute name, a ``..`` part, a link or a device refuses the whole archive before it
writes that member, and everything written so far (inside the cache) is removed.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..utils.atomic import writable_folder
from ..utils.download import download
from ..utils.paths import stays_inside

__all__ = ["DATASETS", "DatasetSource", "cache_dir", "cached", "fetch", "is_named"]

BASE = "https://s3.amazonaws.com/fast-ai-imageclas"


@dataclass(frozen=True)
class DatasetSource:
    """A dataset as published: its archive's address, size in bytes and whole-file md5 (None where none is
    published: torchvision's md5s cover Imagenette; fast.ai's own cover only the first MiB)."""

    name: str
    url: str
    size: int
    md5: str | None
    train_images: int
    val_images: int
    about: str


_NETTE = "Imagenette: 10 easy ImageNet classes (tench, English springer, cassette player, ...)"
_WOOF = "Imagewoof: 10 dog breeds from ImageNet, hard to tell apart"

DATASETS: dict[str, DatasetSource] = {
    d.name: d
    for d in (
        DatasetSource("imagenette2", f"{BASE}/imagenette2.tgz", 1_557_161_267, "fe2fc210e6bb7c5664d602c3cd71e612",
                      9469, 3925, _NETTE + "; full size"),
        DatasetSource("imagenette2-320", f"{BASE}/imagenette2-320.tgz", 341_663_724,
                      "3df6f0d01a2c9592104656642f5e78a3", 9469, 3925, _NETTE + "; shorter side 320 px"),
        DatasetSource("imagenette2-160", f"{BASE}/imagenette2-160.tgz", 99_003_388,
                      "e793b78cc4c9e9a4ccc0c1155377a412", 9469, 3925, _NETTE + "; shorter side 160 px"),
        DatasetSource("imagewoof2", f"{BASE}/imagewoof2.tgz", 1_343_715_595, None, 9025, 3929, _WOOF + "; full size"),
        DatasetSource("imagewoof2-320", f"{BASE}/imagewoof2-320.tgz", 328_387_740, None, 9025, 3929,
                      _WOOF + "; shorter side 320 px"),
        DatasetSource("imagewoof2-160", f"{BASE}/imagewoof2-160.tgz", 92_612_825, None, 9025, 3929,
                      _WOOF + "; shorter side 160 px"),
    )
}  # fmt: skip


def cache_dir() -> Path:
    """Where named datasets live: ``$CONVSCALE_DATASETS``, else ``$XDG_CACHE_HOME/convscale/datasets``."""
    if os.environ.get("CONVSCALE_DATASETS"):
        return Path(os.environ["CONVSCALE_DATASETS"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "convscale" / "datasets"


def is_named(data: str) -> bool:
    """Whether ``--data`` names a catalogued dataset (a folder of that name in the working directory wins)."""
    return data in DATASETS and not Path(data).exists()


def cached(name: str) -> Path | None:
    """The dataset's folder when it is ready in the cache, else None."""
    folder = cache_dir() / name
    return folder if folder.is_dir() else None


def fetch(name: str, *, progress: bool = True) -> Path:
    """The folder (with ``train/`` and ``val/``) of dataset ``name``: from the cache, or downloaded (resuming a
    partial download), checked and extracted first."""
    if name not in DATASETS:
        raise ValueError(f"no dataset named {name!r}; the named datasets are {', '.join(DATASETS)}")
    src = DATASETS[name]
    if (ready := cached(name)) is not None:
        return ready
    where = "CONVSCALE_DATASETS" if os.environ.get("CONVSCALE_DATASETS") else "the dataset cache (CONVSCALE_DATASETS)"
    root = writable_folder(cache_dir(), where)
    archive = download(src.url, root / f"{name}.tgz", size=src.size, md5=src.md5, progress=progress)
    folder = extract(archive, root, name)
    archive.unlink()  # the extracted folder is the dataset; the archive would double the space
    return folder


def extract(archive: Path, root: Path, name: str) -> Path:
    """Extract ``archive`` into ``root/name`` all at once: into a hidden folder first, renamed when complete."""
    tmp = root / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                _write_member(tar, member, tmp)
        top = [p for p in tmp.iterdir() if not p.name.startswith(".")]
        data = top[0] if len(top) == 1 and top[0].is_dir() else tmp  # the archive's one top folder, or all of it
        if not ((data / "train").is_dir() and (data / "val").is_dir()):
            raise ValueError(f"{archive.name} holds no train/ and val/ folders: not an image-classification dataset")
        if not (root / name).is_dir():  # another process may have finished the same dataset first
            os.replace(data, root / name)
    except (tarfile.TarError, EOFError) as e:
        raise ValueError(f"{archive} is not a readable archive ({e}); delete it and run again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root / name


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, into: Path) -> None:
    parts = PurePosixPath(member.name).parts
    if not stays_inside(member.name):
        raise ValueError(f"archive member {member.name!r} would write outside the dataset folder: refused")
    if member.issym() or member.islnk():
        raise ValueError(f"archive member {member.name!r} is a link: refused (a dataset archive holds only files)")
    target = into.joinpath(*parts) if parts else into
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
    elif member.isfile():
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        with source, open(target, "xb") as f:
            shutil.copyfileobj(source, f, 1 << 20)
    else:
        raise ValueError(f"archive member {member.name!r} is not a file or folder: refused")
