"""DDP under torchrun: the same command for one process or many. Rank 0 logs and writes; metrics are summed over
ranks. Backend gloo on CPU, nccl on CUDA."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..utils.device import device_named

__all__ = ["Dist", "all_sum", "broadcast_str", "launched_world", "setup", "teardown"]


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    device: torch.device
    local_rank: int = 0  # the rank on this machine (torchrun's LOCAL_RANK)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def local_main(self) -> bool:
        """The first process on this machine: it fetches and builds what every process of the machine reads."""
        return self.local_rank == 0


def launched_world() -> int:
    """The number of processes torchrun launched this one among (1 without torchrun), known before any group."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str = "auto") -> Dist:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); otherwise a single process.

    The group's keys in the rendezvous store are kept apart per restart (``TORCHELASTIC_RESTART_COUNT``): torchrun's
    agent keeps its store when it restarts a failed group, and without a prefix the new processes would read the
    addresses the old ones published and connect to a dead peer (pytorch issue 167288)."""
    world = launched_world()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = device_named(device, local_rank)
    if world > 1 and not dist.is_initialized():
        store, rank, world = next(dist.rendezvous("env://"))
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group(
            "nccl" if dev.type == "cuda" else "gloo",
            store=dist.PrefixStore(f"convscale/attempt-{attempt}", store),
            rank=rank,
            world_size=world,
        )
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Dist(rank, world, dev, local_rank)


def teardown(finished: bool = False) -> None:
    """Leave the process group. ``finished``: every rank got here normally, so they first meet at the rendezvous
    store, outside Gloo/NCCL: no rank closes its connections while another still has a message of the last collective
    in flight (a barrier *in* Gloo followed by destruction is itself that race: gloo issue 155, a rank aborts). Never
    after an error: a rank that raised would wait there for the others until the timeout."""
    if dist.is_initialized():
        if finished:
            _meet_at_the_store()
        dist.destroy_process_group()


def _meet_at_the_store(timeout_s: float = 300.0) -> None:
    """Every rank has completed its last collective: each writes its key, then waits for all the others'."""
    import datetime

    store = dist.distributed_c10d._get_default_store()
    rank, world = dist.get_rank(), dist.get_world_size()
    store.set(f"convscale/finished/{rank}", "1")
    store.wait([f"convscale/finished/{r}" for r in range(world)], datetime.timedelta(seconds=timeout_s))


def all_sum(values: list[float], d: Dist) -> list[float]:
    """Element-wise sum of ``values`` over ranks (float64)."""
    if d.world == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=d.device if d.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def broadcast_str(value: str, d: Dist) -> str:
    """Rank 0's ``value`` on every rank (the run folder rank 0 took)."""
    if d.world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
