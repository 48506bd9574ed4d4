"""The generator every batched augmentation draws from: the caller's, for reproducible runs, or a fresh one seeded
from the global RNG."""

from __future__ import annotations

import torch


def generator_or_new(generator: torch.Generator | None) -> torch.Generator:
    return generator if generator is not None else torch.Generator().manual_seed(int(torch.randint(2**31, (1,))))
