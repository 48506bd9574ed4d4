"""Which samples of a shard split one rank reads in one epoch, and in which order — a pure function of (seed, epoch,
rank, world, global batch), so that a run stopped anywhere resumes at the same sample with the same pixels.

Training: the split's shards are put in an order drawn from (seed, epoch) and read as one sequence; it is cut into
``world`` contiguous ranges of ``batches x per_rank`` samples (the epoch's batches from ``_info.json``: the samples
divided by the global batch, the remainder left out as a folder's incomplete last batch is), so each sample is read by
one rank once, every rank takes the same number of steps, and a range may begin or end inside a shard (the samples
before it are read past, not decoded). A rank's samples pass through a shuffle buffer seeded by (seed, epoch, rank).
Decoding is spread over the loader's workers: each sample goes to one of them. A shard that cannot be read or breaks
off is counted (``bad``) and the rank's range is filled by reading it again from its start, so no rank runs short of
steps; more than ``max_bad`` bad shards in one epoch stop the run with the last one's error.

Evaluation (``shuffle=False``): every sample once, in the listed order, rank ``r`` taking the ``r``-th of ``world``
contiguous parts.
"""

from __future__ import annotations

import http.client
import itertools
import tarfile
import time
from collections.abc import Iterator

import numpy as np

from ..loader import BatchShares
from .layout import INFO, Shards, ShardSplit
from .stream import MAX_MEMBER_MB, TIMEOUT_S, RawSample, ShardError, SlowResponse, ahead, shard_samples

__all__ = ["ShardOrder", "buffered_shuffle"]

RETRIES = 2  # more tries of a shard whose connection dropped or was refused
RETRY_WAIT_S = 1.0  # before the first of them; doubled before each next
_TRANSIENT = (ConnectionError, http.client.HTTPException)  # a reset or refused connection, a body cut short


def buffered_shuffle(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """``items`` shuffled through a buffer of up to ``size``: each item out is a random one of the buffer. It starts
    giving items once it holds an eighth of ``size`` and grows to ``size`` by taking two items for each it gives (the
    first batches come without waiting for a full buffer); the rest, shuffled, at the end."""
    initial, buf = max(1, size // 8), []
    items = iter(items)
    for item in items:
        buf.append(item)
        if len(buf) < size:
            buf.extend(itertools.islice(items, 1))
        if len(buf) >= initial:
            j = int(rng.integers(len(buf)))
            buf[j], buf[-1] = buf[-1], buf[j]
            yield buf.pop()
    rng.shuffle(buf)
    yield from buf


class ShardOrder(BatchShares):
    """The ``(raw sample, augmentation seed)`` pairs one rank reads in one epoch, from batch ``start`` on (the same
    interface as :class:`~convscale.data.loader.EpochOrder`)."""

    def __init__(
        self, shards: Shards, split: ShardSplit, global_batch: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
        world: int = 1, buffer: int = 4096, timeout_s: float = TIMEOUT_S, max_bad: int = 3,
        max_member_mb: float = MAX_MEMBER_MB,
    ) -> None:  # fmt: skip
        super().__init__(split.num_samples, global_batch, shuffle=shuffle, seed=seed, rank=rank, world=world)
        self.shards, self.split = shards, split
        self.buffer, self.timeout_s, self.max_bad, self.max_member_mb = buffer, timeout_s, max_bad, max_member_mb
        self.bad: dict[str, str] = {}  # this epoch's bad shards: address -> what went wrong

    @property
    def evaluated(self) -> int:
        first, end = self.span
        return end - first

    @property
    def span(self) -> tuple[int, int]:
        """This rank's samples: [first, end) of the epoch's sequence."""
        if self.shuffle:
            quota = self.batches * self.per_rank
            return self.rank * quota, (self.rank + 1) * quota
        return self.rank * self.size // self.world, (self.rank + 1) * self.size // self.world

    def pieces(self) -> list[tuple[str, int, int]]:
        """(shard address, samples to read past, samples to take) of this rank's span, in the epoch's shard order."""
        names, lengths = self.split.filenames, self.split.shard_lengths
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(len(names))
            if self.shuffle
            else range(len(names))
        )
        first, end = self.span
        out, at = [], 0
        for i in order:
            lo, hi = max(first, at), min(end, at + lengths[i])
            if lo < hi:
                out.append((self.shards.url(names[i]), lo - at, hi - lo))
            at += lengths[i]
        return out

    def _read(self) -> Iterator[RawSample]:
        """This rank's samples in their stored order; when bad shards left it short (training), read again — but only
        while a pass brings at least half of what the rank needs: shards that hold far fewer samples than
        ``_info.json`` claims end the run in one line instead of looping over the good ones for good."""
        first, end = self.span
        want, got = end - first, 0
        while got < want:
            before = got
            for url, skip, take in self.pieces():
                if url in self.bad:
                    continue  # found bad on an earlier pass
                for sample in self._piece(url, skip, take):
                    yield sample
                    got += 1
                    if got == want:
                        return
            if not self.shuffle:
                return
            if got - before < want / 2:
                url, why = next(reversed(self.bad.items())) if self.bad else ("", "")
                raise ShardError(
                    f"this process's shards gave {got - before} of the {want} samples {INFO} promises it in epoch "
                    f"{self.epoch + 1}" + (f"; the last bad one: {url}: {why}" if url else "")
                )

    def _piece(self, url: str, skip: int, take: int) -> Iterator[RawSample]:
        """Samples ``skip`` to ``skip + take`` of shard ``url``. A dropped or refused connection (or HTTP 429/5xx) is
        tried again, after 1 then 2 s, from the sample where it broke off; a timeout, a broken tar or a short shard
        makes it bad at once."""
        taken = 0
        for attempt in range(1 + RETRIES):
            if attempt:
                time.sleep(RETRY_WAIT_S * 2 ** (attempt - 1))
            read = 0
            try:
                for sample in shard_samples(url, self.timeout_s, self.max_member_mb):
                    read += 1
                    if read > skip + taken:
                        yield sample
                        taken += 1
                        if taken == take:
                            return
                why = f"ended after {read} samples, {skip + take} expected (truncated, or {INFO} claims too many)"
            except SlowResponse as e:  # its text names the address, as the bad-shard line does already
                why = f"{str(e).removeprefix(f'{url}: ')} (after {read} samples)"
            except TimeoutError:
                why = f"no answer within {self.timeout_s:g} s (after {read} samples)"
            except (*_TRANSIENT, OSError, tarfile.TarError, EOFError, ValueError) as e:
                text = str(e).splitlines()[0] if str(e) else ""
                why = f"{type(e).__name__}: {text[:300]} (after {read} samples)"
                if isinstance(e, _TRANSIENT) or getattr(e, "transient", False):
                    continue
            break
        self._count_bad(url, why)

    def _count_bad(self, url: str, why: str) -> None:
        self.bad[url] = why
        if len(self.bad) > self.max_bad:
            raise ShardError(
                f"{len(self.bad)} bad shards in epoch {self.epoch + 1} (at most {self.max_bad}: --max-bad-shards); "
                f"the last: {url}: {why}"
            )

    def __iter__(self) -> Iterator[tuple[RawSample, int]]:
        self.bad = {}
        stream = ahead(self._read())
        if self.shuffle:
            stream = buffered_shuffle(stream, self.buffer, np.random.default_rng([self.seed, self.epoch, self.rank, 2]))
        first, skip = self.span[0], self.start * self.per_rank
        for i, sample in enumerate(stream):
            if i >= skip:
                yield sample, int(np.random.default_rng([self.seed, self.epoch, first + i, 1]).integers(2**62))

    def __len__(self) -> int:
        first, end = self.span
        return max(0, end - first - self.start * self.per_rank)
