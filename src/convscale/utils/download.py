"""Downloading one file: resumable, checked, and atomic.

The bytes go to ``FILE.part`` beside the target; a second call after an interruption asks the server for the rest
(an HTTP ``Range`` request) and appends. When the file is whole its size and checksum are checked: a file that fails
is moved to ``FILE.bad`` (kept apart, never taken for the real one) and the call raises; one that passes is renamed
to ``FILE`` in one step. A target that exists is returned without any network work.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["DownloadError", "download", "file_digest"]

CHUNK = 1 << 20
TIMEOUT_S = 60


class DownloadError(OSError):
    """A download stopped, or its file did not check out; the message says what to do."""


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download(
    url: str,
    dest: str | Path,
    *,
    size: int | None = None,
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """``url`` saved as ``dest``: resumed from ``dest.part`` when an earlier call stopped, then checked against
    ``size`` (bytes), ``md5`` (the whole digest) and ``sha256`` (the digest or its leading digits) where given."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _fetch(url, part, size, progress)
    _check(part, dest, size, md5, sha256)
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, size: int | None, progress: bool) -> None:
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have >= size:
        return  # whole already: only the check is left
    request = urllib.request.Request(url, headers={"User-Agent": "convscale"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the part file is whole
            return
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"cannot reach {url} ({reason}); check the connection and run again") from None
    with response:
        if have and response.status != 206:  # the server ignored the range: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else size
        _copy(response, part, have, total, progress, url)
    got = part.stat().st_size
    if total is not None and got < total:
        raise DownloadError(f"download of {url} stopped at {got} of {total} bytes; run again to resume from {part}")


def _copy(response, part: Path, have: int, total: int | None, progress: bool, url: str) -> None:
    bar = _bar(total, have, part.name.removesuffix(".part")) if progress else None
    try:
        with open(part, "ab" if have else "wb") as f:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, ValueError) as e:  # a dropped connection: what arrived stays in the part file
                    raise DownloadError(
                        f"download of {url} stopped at {f.tell()} bytes ({type(e).__name__}); run again to resume"
                    ) from None
                if not chunk:
                    break
                f.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
    finally:
        if bar is not None:
            bar.close()


def _bar(total: int | None, initial: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr)


def _check(part: Path, dest: Path, size: int | None, md5: str | None, sha256: str | None) -> None:
    got = part.stat().st_size
    problem = None
    if size is not None and got != size:
        problem = f"{got} bytes, expected {size}"
    elif md5 is not None and (digest := file_digest(part, "md5")) != md5.lower():
        problem = f"md5 {digest}, expected {md5}"
    elif sha256 is not None and not (digest := file_digest(part, "sha256")).startswith(sha256.lower()):
        problem = f"sha256 {digest[: len(sha256)]}…, expected {sha256}…"
    if problem is not None:
        bad = dest.with_name(dest.name + ".bad")
        os.replace(part, bad)
        raise DownloadError(f"{dest.name} does not check out ({problem}); kept apart as {bad}, not used")
