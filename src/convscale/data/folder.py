"""ImageFolder datasets (``root/<class>/<image>``, as Imagenette and Imagewoof ship), decoded with PIL in the
DataLoader's workers. A file that does not decode (corrupt, truncated, empty, not an image, a decompression bomb)
is skipped and counted, never fatal; grayscale, palette, RGBA, CMYK, 16-bit and floating-point images become 8-bit
RGB at their full range, turned upright as their EXIF orientation says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["DECODE_ERRORS", "IMAGE_SUFFIXES", "ImageFolder", "class_folders", "load_rgb", "opens_as_image"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
#: what PIL raises for a file that is not a decodable image (a decompression bomb included)
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)
_WIDE = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}  # mode: full scale


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer images scaled from 0-65535, float images from 0-1, to 8-bit grayscale (PIL's own
    conversion clips them at 255 instead, so most 16-bit images come out white and float ones black)."""
    values = np.asarray(img, dtype=np.float64) * (255.0 / _WIDE[img.mode])
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def load_rgb(path: str | Path, draft: int | None = None) -> Image.Image:
    """Decode ``path`` fully as RGB. ``draft``: let the JPEG decoder downscale by a power of two while the image stays
    at least ``draft`` px on each side (much faster for large photos). Raises one of :data:`DECODE_ERRORS` for
    undecodable files."""
    with Image.open(path) as img:
        if draft and img.format == "JPEG":
            img.draft("RGB", (draft, draft))
        img.load()  # the full decode: truncation shows here
        img = ImageOps.exif_transpose(img)  # a photo taken sideways is stored sideways with an orientation tag
        if img.mode in _WIDE:
            img = _to_8bit(img)
        if img.mode in ("P", "LA") or (img.mode == "RGBA" and "transparency" in img.info):
            img = img.convert("RGBA")
        return img.convert("RGB")


def opens_as_image(path: str | Path) -> bool:
    """Whether ``path`` has an image header PIL reads (cheap: the pixels are not decoded; a truncated file passes)."""
    try:
        with Image.open(path) as img:
            return img.size[0] > 0 and img.size[1] > 0
    except DECODE_ERRORS:
        return False


def class_folders(root: Path) -> list[str]:
    """The class names of split folder ``root``: its sub-folders, sorted (hidden ones left out)."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


class ImageFolder:
    """The split folder ``root``: one sub-folder per class (sorted names are the classes), every file in it a sample.

    ``dataset[i]`` is ``(PIL RGB image, label)``, or ``None`` when the file does not decode; the loader's collate
    drops those and counts them (``skipped`` lists the paths seen so far in this process).
    """

    def __init__(self, root: str | Path, *, classes: list[str] | None = None, draft: int | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"no image folder at {root}: expected {root}/<class name>/<images>")
        found = class_folders(root)
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
        except DECODE_ERRORS:
            return None

    def path(self, index: int) -> Path:
        return self.samples[index][0]

    def check_classes(self) -> None:
        """Every class folder holds at least one image (a file whose header opens as one; the first such file ends
        the look): a folder of other files, or an empty one, would get a label and no samples, and so a head and a
        class list that are wrong. ValueError naming the folders."""
        files: dict[int, list[Path]] = {}
        for path, label in self.samples:
            files.setdefault(label, []).append(path)
        empty = [c for i, c in enumerate(self.classes) if not any(opens_as_image(p) for p in files.get(i, ()))]
        if empty:
            raise ValueError(
                f"{self.root}: class folder{'s' if len(empty) > 1 else ''} without images: {first_few(empty, 5)}; "
                "remove them, or keep them as classes with --allow-empty-classes"
            )

    def check_readable(self, minimum: int, what: str) -> int:
        """The number of files whose header opens as an image; fewer than ``minimum`` is a ValueError (before any
        training). Files that fail here, or later at the full decode, are skipped and counted while training."""
        readable = sum(opens_as_image(p) for p, _ in self.samples)
        if readable < minimum:
            raise ValueError(
                f"{self.root}: only {readable} of {len(self.samples)} files open as images; {what} needs at least "
                f"{minimum}"
            )
        return readable


def first_few(paths: list[str], n: int = 3) -> str:
    """The first ``n`` of ``paths``, comma-separated, with ``...`` when there are more."""
    return ", ".join(paths[:n]) + (", ..." if len(paths) > n else "")


def skip_reason(path: str | Path) -> str:
    """Why ``path`` does not decode: the decoder's message, in one line."""
    try:
        load_rgb(path)
    except DECODE_ERRORS as e:
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        return f"{type(e).__name__}: {text}" if text else type(e).__name__
    return "failed to decode while training, decodes now"
