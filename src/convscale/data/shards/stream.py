"""Reading shards: a local file or an ``http(s)://`` address opened with a timeout on every read (a server that stops
answering is an error after ``timeout_s``, never a hang), its tar members grouped into samples by webdataset's own
tar iterator (the ``[webdataset]`` extra), and a reader thread that keeps a stream's next samples ready."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import NamedTuple

from ...utils.extras import require

__all__ = ["IMAGE_KEYS", "TIMEOUT_S", "RawSample", "ShardError", "ahead", "is_remote", "open_source", "shard_samples"]

TIMEOUT_S = 30.0  # seconds without an answer before a read fails (--shard-timeout-s)
IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")  # what timm reads ("jpg;png;webp"), and the spelled-out jpeg
_USER_AGENT = "convscale"


class ShardError(OSError):
    """A shard source that cannot be read: no ``_info.json``, an unreachable server, too many bad shards.
    ``transient``: worth another try (a refused or reset connection, HTTP 429 or 5xx)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def is_remote(source: str) -> bool:
    return source.startswith(("http://", "https://"))


class RawSample(NamedTuple):
    """One sample as the shard holds it: not decoded (decoding happens in the loader's workers)."""

    key: str  # the shard's name and the sample's key, for messages
    image: bytes
    label: int


@contextlib.contextmanager
def open_source(where: str, timeout_s: float):
    """``where`` opened for reading: a local file, or an HTTP(S) response whose connect and every read time out
    after ``timeout_s`` (socket timeouts: the error names the address)."""
    if not is_remote(where):
        with open(where, "rb") as f:
            yield f
        return
    import urllib.error
    import urllib.request

    request = urllib.request.Request(where, headers={"User-Agent": _USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as e:
        raise ShardError(f"{where}: HTTP {e.code} {e.reason}", transient=e.code == 429 or e.code >= 500) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, TimeoutError):
            raise ShardError(f"{where}: no answer within {timeout_s:g} s ({reason})") from None
        raise ShardError(f"{where}: cannot connect ({reason})", transient=True) from None
    with response:
        length = response.headers.get("Content-Length")
        yield _Whole(response, int(length)) if length and length.isdigit() else response


class _Whole:
    """A response body that ends with an error, not silently, when the connection closes before its declared length
    (``http.client`` returns the short body as if whole): a cut-off shard is tried again, not taken as truncated."""

    def __init__(self, response, length: int) -> None:
        self.response, self.length, self.read_bytes = response, length, 0

    def read(self, size: int = -1) -> bytes:
        data = self.response.read(size)
        self.read_bytes += len(data)
        if not data and size != 0 and self.read_bytes < self.length:
            import http.client

            raise http.client.IncompleteRead(b"", self.length - self.read_bytes)
        return data


def shard_samples(url: str, timeout_s: float) -> Iterator[RawSample]:
    """The samples of shard ``url`` in their stored order. A sample without an image or a ``cls`` label is left out;
    a shard that cannot be read, or breaks off, raises (the samples before the break were yielded)."""
    require("webdataset", "streaming WebDataset shards (--data wds:...)")
    from webdataset.tariterators import group_by_keys, tar_file_expander

    name = url.rsplit("/", 1)[-1]
    with open_source(url, timeout_s) as f:
        for sample in group_by_keys(tar_file_expander([{"url": url, "stream": f}], eof_value=None)):
            image = next((sample[k] for k in IMAGE_KEYS if k in sample), None)
            label = sample.get("cls")
            if image is None or label is None:
                continue
            try:
                yield RawSample(f"{name}:{sample['__key__']}", image, int(label))
            except ValueError:
                continue  # a label that is not a number: the sample is left out


_END = object()


def ahead(stream: Iterator, depth: int = 256, chunk: int = 32) -> Iterator:
    """``stream``'s items in order, read by a thread up to ``depth`` items ahead (the shard's download and tar parsing
    overlap the training steps), handed over ``chunk`` at a time; its exception is raised here, after the items read
    before it. Closing this generator (an epoch ended early) stops the thread."""
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
            items, end = box.get()
            yield from items
            if end is _END:
                return
            if end is not None:
                raise end
    finally:
        stop.set()
