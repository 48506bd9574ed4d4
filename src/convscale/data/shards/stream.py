"""Reading shards: a local file or an HTTP(S) response, the tar's samples, and a reader thread that keeps a stream's
next samples ready.

Everything a file or a server gives is a claim to check, and every read has a deadline:

- a local name must be a regular file (a fifo would block ``open`` for good, a device would never end);
- an HTTP response must bring at least :data:`MIN_RATE` bytes a second over every window of the timeout, headers
  included (a server trickling a byte a second never trips a socket timeout); a redirect may lead only to http(s);
- a tar member may declare at most ``max_member`` bytes (a 1 TiB member is refused at its header, not read into
  memory); a sample without an image or with a label that is not a class index is yielded with what is wrong, so
  the reader says which sample it skipped and why instead of calling the shard short.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import queue
import stat
import tarfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import NamedTuple

from ...utils import stopping
from ...utils.extras import require

__all__ = [
    "IMAGE_KEYS", "INFO", "MAX_MEMBER_MB", "MIN_RATE", "TIMEOUT_S", "RawSample", "ShardError", "SlowResponse", "ahead",
    "is_remote", "open_source", "shard_samples",
]  # fmt: skip

TIMEOUT_S = 30.0  # seconds without an answer before a read fails (--shard-timeout-s)
MIN_RATE = 4096  # bytes per second a response must keep up over every TIMEOUT_S window
MAX_MEMBER_MB = 256  # the largest tar member read (--shard-max-member-mb): far above any image, far below the memory
IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")  # what timm reads ("jpg;png;webp"), and the spelled-out jpeg
_USER_AGENT = "convscale"
_SCHEMES = ("http", "https")
INFO = "_info.json"  # the split list beside the shards (layout.py reads it)


class ShardError(OSError):
    """A shard source that cannot be read: no ``_info.json``, an unreachable server, too many bad shards.
    ``transient``: worth another try (a refused or reset connection, HTTP 429 or 5xx)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class SlowResponse(TimeoutError):
    """A server that answers, but slower than :data:`MIN_RATE` over a whole timeout window."""


def is_remote(source: str) -> bool:
    return source.startswith(("http://", "https://"))


class RawSample(NamedTuple):
    """One sample as the shard holds it: not decoded (decoding happens in the loader's workers). ``label`` is the
    class index, or the text that stood in ``.cls`` when it is not a number (``image`` None: the sample has none)."""

    key: str  # the shard's name and the sample's key, for messages
    image: bytes | None
    label: int | str


@contextlib.contextmanager
def open_source(where: str, timeout_s: float):
    """``where`` opened for reading: a local regular file, or an HTTP(S) response paced by :class:`_Pace` (connect,
    every read and the rate over each window of ``timeout_s``: the error names the address)."""
    if not is_remote(where):
        with _open_regular(where) as f:
            yield f
        return
    import urllib.error

    request = urllib.request.Request(where, headers={"User-Agent": _USER_AGENT})
    pace = _Pace(where, timeout_s)
    opener = urllib.request.build_opener(_PacedHTTPHandler(pace), _PacedHTTPSHandler(pace), _HttpOnlyRedirects())
    try:
        response = opener.open(request, timeout=timeout_s)
    except urllib.error.HTTPError as e:
        raise ShardError(f"{where}: HTTP {e.code} {e.reason}", transient=e.code == 429 or e.code >= 500) from None
    except ShardError:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, SlowResponse):
            raise ShardError(str(reason)) from None
        if isinstance(reason, TimeoutError):
            raise ShardError(f"{where}: no answer within {timeout_s:g} s ({reason})") from None
        raise ShardError(f"{where}: cannot connect ({reason})", transient=True) from None
    with response:
        length = response.headers.get("Content-Length")
        yield _Whole(response, int(length)) if length and length.isdigit() else response


def _open_regular(where: str):
    """A local file opened for reading, refused unless it is a regular file (checked on the open descriptor:
    ``O_NONBLOCK`` keeps a fifo from blocking the open itself)."""
    fd = os.open(where, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a fifo" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "other"
        raise ShardError(f"{where}: not a regular file ({kind}); shards and {INFO} must be regular files")
    return os.fdopen(fd, "rb")


class _Pace:
    """The pace of one HTTP response: every window of ``timeout_s`` must bring ``MIN_RATE x timeout_s`` bytes (the
    socket's own timeout catches a server that sends nothing), so a trickle ends within about twice the timeout."""

    def __init__(self, where: str, timeout_s: float) -> None:
        self.where, self.timeout_s = where, timeout_s
        self.window, self.got = time.monotonic(), 0

    def add(self, n: int) -> None:
        self.got += n
        now = time.monotonic()
        if now - self.window < self.timeout_s:
            return
        if self.got < MIN_RATE * self.timeout_s:
            raise SlowResponse(
                f"{self.where}: slower than {MIN_RATE} bytes/s ({self.got} bytes in {now - self.window:.1f} s; "
                f"--shard-timeout-s {self.timeout_s:g})"
            )
        self.window, self.got = now, 0


class _PacedReader(io.RawIOBase):
    """A socket's reads, each counted by the pace (end of the body excepted)."""

    def __init__(self, raw, pace: _Pace) -> None:
        self.raw, self.pace = raw, pace

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int | None:
        n = self.raw.readinto(b)
        if n:
            self.pace.add(n)
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class _PacedSocket:
    """A connection's socket whose reads (``makefile``, as ``http.client`` reads headers and body) are paced."""

    def __init__(self, sock, pace: _Pace) -> None:
        self._sock, self._pace = sock, pace

    def makefile(self, mode: str = "rb", *args, **kwargs):
        return io.BufferedReader(_PacedReader(self._sock.makefile("rb", buffering=0), self._pace))

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class _PacedConnection:
    def __init__(self, *args, pace: _Pace, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pace = pace

    def connect(self) -> None:
        super().connect()
        self.sock = _PacedSocket(self.sock, self._pace)


class _PacedHTTP(_PacedConnection, http.client.HTTPConnection):
    """An HTTP connection whose reads are paced."""


class _PacedHTTPS(_PacedConnection, http.client.HTTPSConnection):
    """An HTTPS connection whose reads (after TLS) are paced."""


class _PacedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, pace: _Pace) -> None:
        super().__init__()
        self.pace = pace

    def http_open(self, req):
        return self.do_open(_PacedHTTP, req, pace=self.pace)


class _PacedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, pace: _Pace) -> None:
        super().__init__()
        self.pace = pace

    def https_open(self, req):
        return self.do_open(_PacedHTTPS, req, context=self._context, pace=self.pace)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are followed to http(s) addresses only (urllib would follow one to ``ftp://``)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl)).scheme.lower()
        if scheme not in _SCHEMES:
            raise ShardError(f"{req.full_url}: redirected to {newurl[:200]}: only http and https are followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Whole:
    """A response body that ends with an error, not silently, when the connection closes before its declared length
    (``http.client`` returns the short body as if whole): a cut-off shard is tried again, not taken as truncated."""

    def __init__(self, response, length: int) -> None:
        self.response, self.length, self.read_bytes = response, length, 0

    def read(self, size: int = -1) -> bytes:
        data = self.response.read(size)
        self.read_bytes += len(data)
        if not data and size != 0 and self.read_bytes < self.length:
            raise http.client.IncompleteRead(b"", self.length - self.read_bytes)
        return data


def tar_members(f, where: str, max_member: int) -> Iterator[dict]:
    """The regular files of the tar stream ``f`` as webdataset's file samples (``fname``, ``data``), in order; a
    member that declares more than ``max_member`` bytes is a :class:`ShardError` before any of it is read."""
    with tarfile.open(fileobj=f, mode="r|*") as tar:
        for member in tar:
            if not member.isreg() or member.name.startswith("__"):
                continue  # folders, links and webdataset's own __meta__ entries carry no sample
            if member.size > max_member:
                raise ShardError(
                    f"{where}: member {member.name[:100]!r} declares {member.size} bytes, above the "
                    f"{max_member / 2**20:g} MiB a member may hold (--shard-max-member-mb)"
                )
            yield {"fname": member.name, "data": tar.extractfile(member).read(), "__url__": where}
            tar.members = []  # streamed: keep no list of every member read


def shard_samples(url: str, timeout_s: float, max_member_mb: float = MAX_MEMBER_MB) -> Iterator[RawSample]:
    """The samples of shard ``url`` in their stored order, each with its image (None when it has none) and its
    label (the ``cls`` text when it is not a number); a shard that cannot be read, or breaks off, raises (the
    samples before the break were yielded)."""
    require("webdataset", "streaming WebDataset shards (--data wds:...)")
    from webdataset.tariterators import group_by_keys

    name = url.rsplit("/", 1)[-1]
    with open_source(url, timeout_s) as f:
        for sample in group_by_keys(tar_members(f, url, int(max_member_mb * 2**20))):
            image = next((sample[k] for k in IMAGE_KEYS if k in sample), None)
            raw = sample.get("cls")
            text = raw.decode("utf-8", "replace").strip() if isinstance(raw, bytes) else ""
            try:
                label: int | str = int(text)
            except ValueError:
                label = text[:40] if raw is not None else "(no .cls)"
            yield RawSample(f"{name}:{sample['__key__']}", image, label)


_END = object()


def ahead(stream: Iterator, depth: int = 256, chunk: int = 32) -> Iterator:
    """``stream``'s items in order, read by a thread up to ``depth`` items ahead (the shard's download and tar parsing
    overlap the training steps), handed over ``chunk`` at a time; its exception is raised here, after the items read
    before it. Closing this generator (an epoch ended early) stops the thread. While it waits, a stop signal raises
    :class:`~convscale.utils.stopping.StopRequested` here."""
    box: queue.Queue = queue.Queue(maxsize=max(1, depth // chunk))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        items: list = []
        try:
            for item in stream:
                items.append(item)
                if len(items) == chunk:
                    if not put((items, None)):
                        return
                    items = []
            put((items, _END))
        except BaseException as e:  # handed to the consumer, raised there
            put((items, e))

    thread = threading.Thread(target=read, daemon=True, name="convscale-shards")
    thread.start()
    try:
        while True:
            items, end = _next(box)
            yield from items
            if end is _END:
                return
            if end is not None:
                raise end
    finally:
        stop.set()


def _next(box: queue.Queue):
    """The box's next item, waiting as long as it takes — unless a stop signal comes (checked every 0.1 s): then
    :class:`~convscale.utils.stopping.StopRequested`, now rather than at the slow shard's deadline."""
    while True:
        try:
            return box.get(timeout=0.1)
        except queue.Empty:
            stopping.check()
