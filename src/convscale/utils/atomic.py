"""Files written whole or not at all: a temporary file in the same folder, flushed to disk, then renamed over the
target. A crash or a kill mid-write leaves the previous file as it was."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "DiskFull", "atomic_output", "atomic_write", "atomic_write_csv", "atomic_write_text", "disk_full_message",
    "folder_lock", "on_disk_full", "require_room", "writable_folder",
]  # fmt: skip


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a temporary binary file next to ``path``, fsync it, and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_csv(path: str | Path, rows: Sequence[Mapping[str, object]]) -> Path:
    """``rows`` as CSV, written atomically: the header is every row's keys, first seen first (a row without one of
    them leaves its cell empty)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """For writers that leave side files (the ONNX exporter's external ``.data``, a quantizer's intermediate model):
    yields a file path inside a private hidden folder next to ``path``; whatever was written there under that name is
    renamed to ``path`` when the block ends without an error, and the folder goes in any case, side files with it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    work = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        yield work / path.name
        os.replace(work / path.name, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def writable_folder(folder: str | Path, what: str) -> Path:
    """``folder``, made if missing, after a file was created and removed in it; else a ValueError that names
    ``what`` the folder is (``"--out"``, ``"CONVSCALE_DATASETS"``) and why it cannot be written."""
    folder = Path(folder).expanduser()
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(0, "it is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".convscale-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"{what}: {folder} cannot be written ({e.strerror or e})") from None
    return folder


_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_LITTLE_FREE = 2**20  # a disk with less free than this after a failed write was the reason it failed


class DiskFull(OSError):
    """A write that failed because the disk it went to is full (or its quota is); its text names the disk."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return self.strerror


def _chain(e: BaseException | None):
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def disk_full_message(e: BaseException, folder: str | Path | None = None) -> str | None:
    """A line that names the full disk when ``e`` (or what it was raised from: an exporter's or OpenVINO's own error
    wraps the OSError, or loses it) came from one: ENOSPC or EDQUOT in its chain, or, with ``folder``, less than
    1 MiB left on the disk holding it (call it before a failed write's partial files are removed). None otherwise."""
    full = next((x for x in _chain(e) if isinstance(x, OSError) and x.errno in _FULL), None)
    if full is None and any("No space left on device" in str(x) for x in _chain(e)):
        full = e
    where = folder if folder is not None else getattr(full, "filename", None)
    if full is None and folder is not None:
        try:
            if shutil.disk_usage(folder).free < _LITTLE_FREE:
                full = e
        except OSError:
            return None
    if full is None:
        return None
    if isinstance(e, DiskFull):
        return str(e)
    try:
        free = f"{shutil.disk_usage(Path(where).parent if Path(where).is_file() else where).free} bytes free"
    except (OSError, TypeError):
        free = "free space unknown"
    return f"no space left on the disk holding {where} ({free}): free some space or write elsewhere"


@contextlib.contextmanager
def folder_lock(folder: str | Path, *, wait: bool = True) -> Iterator[None]:
    """``folder`` held by this process: an exclusive ``flock`` on the folder itself (no lock file left behind;
    released when the block ends or the process does, however it ends). ``wait=False`` raises
    :class:`BlockingIOError` at once when another process holds it. Not POSIX: no lock."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def require_room(folder: str | Path, nbytes: int) -> None:
    """ENOSPC before a write of about ``nbytes`` into ``folder`` when its disk has not that much (and 64 KiB) free:
    for writers in native code that fail badly half-way (:func:`on_disk_full` turns it into the disk's line)."""
    if shutil.disk_usage(folder).free < nbytes + 64 * 1024:
        raise OSError(errno.ENOSPC, "no space left on device", str(folder))


@contextlib.contextmanager
def on_disk_full(folder: str | Path) -> Iterator[None]:
    """Writes into ``folder`` whose failure on a full disk becomes a :class:`DiskFull` that names the disk (checked
    while the failed write's partial files still take their space); any other error passes through."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as e:
        message = disk_full_message(e, folder)
        if message is None:
            raise
        raise DiskFull(message) from e
