"""Batches in a known order: which images an epoch sees, in which order, on which rank, and with which augmentation,
all follow from (seed, epoch), so a run can stop anywhere and resume at the same batch with the same pixels."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

__all__ = ["Batch", "BatchShares", "DieWithParent", "EpochOrder", "build_loader", "epoch_order"]


class BatchShares(Sampler):
    """What every epoch order shares: an epoch and the batch it starts from, the global batch cut into equal
    per-rank shares (training), and the batch count. A subclass says how many samples a rank evaluates
    (``evaluated``) and yields ``(sample, augmentation seed)`` pairs."""

    def __init__(
        self, size: int, global_batch: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world: int = 1
    ) -> None:
        if shuffle and global_batch % world:
            raise ValueError(f"batch size {global_batch} must be divisible by the {world} processes")
        self.size, self.global_batch, self.shuffle = size, global_batch, shuffle
        self.seed, self.rank, self.world = seed, rank, world
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Read epoch ``epoch`` from its batch ``start`` (the batches before it were trained on already)."""
        self.epoch, self.start = epoch, start

    @property
    def per_rank(self) -> int:
        """Images per rank per batch: a share of the global batch (at least one when evaluating)."""
        share = self.global_batch // self.world
        return share if self.shuffle else max(1, share)

    @property
    def evaluated(self) -> int:
        """The samples this rank reads when evaluating: every ``world``-th (an order that splits otherwise says so)."""
        return len(range(self.rank, self.size, self.world))

    @property
    def batches(self) -> int:
        """Batches per epoch (per rank: the same number on every rank when training)."""
        if self.shuffle:
            return self.size // self.global_batch
        return -(-self.evaluated // self.per_rank)


class EpochOrder(BatchShares):
    """The (index, augmentation seed) pairs one rank reads in one epoch, from batch ``start`` on.

    Training: a permutation seeded by (seed, epoch), cut into global batches of ``global_batch`` (an incomplete last
    batch is dropped); rank ``r`` of ``world`` takes its contiguous ``global_batch // world`` share of each, so the
    ranks together see exactly the batches a single process would. Evaluation (``shuffle=False``): every image once,
    in order, rank ``r`` taking every ``world``-th.
    """

    def _indices(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.rank, self.size, self.world)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        full = order[: self.batches * self.global_batch].reshape(self.batches, self.world, -1)
        return full[:, self.rank].reshape(-1)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = self._indices()[self.start * self.per_rank :]
        for i in indices.tolist():
            yield i, int(np.random.default_rng([self.seed, self.epoch, i, 1]).integers(2**62))

    def __len__(self) -> int:
        return max(0, len(self._indices()) - self.start * self.per_rank)


def epoch_order(
    dataset, global_batch: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world: int = 1
) -> EpochOrder:
    """The order ``dataset`` is read in: its own when it streams (shards: :class:`~.shards.ShardOrder`, the same
    interface), else an :class:`EpochOrder` over its indices."""
    if hasattr(dataset, "order"):
        return dataset.order(global_batch, shuffle=shuffle, seed=seed, rank=rank, world=world)
    return EpochOrder(len(dataset), global_batch, shuffle=shuffle, seed=seed, rank=rank, world=world)


class _Transformed:
    """``base[index]`` (a PIL image and its label, or None) through ``transform`` with the sample's own generator."""

    def __init__(self, base, transform: Callable) -> None:
        self.base, self.transform = base, transform

    def __getitem__(self, item: tuple[int, int]):
        index, seed = item
        sample = self.base[index]
        if sample is None:  # a streamed sample is named by its shard and key, and says why it was skipped
            why = getattr(self.base, "why_skipped", None)
            return None, f"{index.key}: {why(index)}" if why is not None else index
        img, label = sample
        return self.transform(img, np.random.default_rng(seed)), label

    def __len__(self) -> int:
        return len(self.base)


@dataclass
class Batch:
    images: torch.Tensor
    labels: torch.Tensor
    skipped: list[int] = field(default_factory=list)  # dataset indices that did not decode


def _collate(samples: list) -> Batch:
    good = [s for s in samples if s[0] is not None]
    skipped = [s[1] for s in samples if s[0] is None]
    if not good:
        return Batch(torch.empty(0), torch.empty(0, dtype=torch.long), skipped)
    return Batch(torch.stack([s[0] for s in good]), torch.tensor([s[1] for s in good]), skipped)


def build_loader(
    dataset, transform: Callable, order: EpochOrder, *, workers: int = 0, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader over ``dataset`` in ``order``; each batch is a :class:`Batch`. Its worker processes persist
    from one pass to the next (start them once, then ``order.set_epoch`` before each pass): every sample's
    randomness comes from the order's seeds, not from the workers' state, so a kept loader reads what a new one
    would."""
    return DataLoader(
        _Transformed(dataset, transform),
        batch_size=order.per_rank,
        sampler=order,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),  # workers' base seed: never drawn from the global RNG, whose
        # state (dropout, drop path) a resumed run must continue exactly
        prefetch_factor=4 if workers else None,
        worker_init_fn=DieWithParent() if workers else None,
    )


class DieWithParent:
    """A loader worker's start: it ends with the process that started it, however that one ends. torch's workers look
    for their parent only between samples, so one busy decoding (or started just as its parent was SIGKILLed) was
    left running for minutes with parent PID 1; Linux's parent-death signal (``PR_SET_PDEATHSIG``) kills it at once,
    and a worker whose parent is already gone exits before it starts."""

    def __init__(self) -> None:
        self.parent = os.getpid()

    def __call__(self, worker_id: int) -> None:
        import signal

        if sys.platform.startswith("linux"):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != self.parent:
            os._exit(0)
