"""ImageFolder datasets (``root/<class>/<image>``, as Imagenette and Imagewoof ship), decoded with PIL in the
DataLoader's workers. A file that does not decode (corrupt, truncated, empty, not an image) is skipped and counted,
never fatal; grayscale, palette, RGBA and CMYK images become RGB."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

__all__ = ["IMAGE_SUFFIXES", "ImageFolder", "load_rgb"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
_DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


def load_rgb(path: str | Path, draft: int | None = None) -> Image.Image:
    """Decode ``path`` fully as RGB. ``draft``: let the JPEG decoder downscale by a power of two while the image stays
    at least ``draft`` px on each side (much faster for large photos). Raises OSError & co. for undecodable files."""
    with Image.open(path) as img:
        if draft and img.format == "JPEG":
            img.draft("RGB", (draft, draft))
        if img.mode in ("P", "LA") or (img.mode == "RGBA" and "transparency" in img.info):
            img = img.convert("RGBA")
        return img.convert("RGB")  # also forces the full decode: truncation shows here


class ImageFolder:
    """The split folder ``root``: one sub-folder per class (sorted names are the classes), every file in it a sample.

    ``dataset[i]`` is ``(PIL RGB image, label)``, or ``None`` when the file does not decode; the loader's collate
    drops those and counts them (``skipped`` lists the paths seen so far in this process).
    """

    def __init__(self, root: str | Path, *, classes: list[str] | None = None, draft: int | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"no image folder at {root}: expected {root}/<class name>/<images>")
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        self.classes = list(classes) if classes is not None else found
        if not self.classes:
            raise ValueError(f"{root} has no class folders: expected {root}/<class name>/<images>")
        missing = sorted(set(found) - set(self.classes))
        if missing:
            raise ValueError(f"{root} has classes the training split lacks: {', '.join(missing[:5])}")
        self.samples: list[tuple[Path, int]] = []
        for label, name in enumerate(self.classes):
            folder = root / name
            if folder.is_dir():
                files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
                self.samples += [(p, label) for p in files]
        if not self.samples:
            raise ValueError(f"{root} holds no files in its class folders")
        self.root, self.draft = root, draft
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Image.Image, int] | None:
        path, label = self.samples[index]
        try:
            return load_rgb(path, self.draft), label
        except _DECODE_ERRORS:
            return None

    def path(self, index: int) -> Path:
        return self.samples[index][0]


def warn_skipped(paths: list[str], total: int | None = None) -> None:
    """One warning: how many files were skipped, and the first few."""
    if paths:
        shown = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
        of = f" of {total}" if total else ""
        warnings.warn(f"skipped {len(paths)}{of} files that do not decode as images: {shown}", stacklevel=2)
