"""The device policy, once for every command: ``auto`` is CUDA when this PyTorch has it, else MPS (an Apple GPU),
else the CPU; a device asked by name that this machine lacks is a ValueError."""

from __future__ import annotations

import torch

__all__ = ["DEVICES", "device_named", "has_mps"]

#: what every ``--device`` flag and config key accepts
DEVICES = ("auto", "cpu", "cuda", "mps")


def has_mps() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def device_named(name: str | torch.device, local_rank: int = 0) -> torch.device:
    """The device ``name`` (one of :data:`DEVICES`) means here; CUDA's is the ``local_rank``-th GPU, made current. A
    ``torch.device`` is taken as it is."""
    if isinstance(name, torch.device):
        return name
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if has_mps() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device cuda: CUDA is not available to this PyTorch (CPU-only build or no GPU)")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if name == "mps" and not has_mps():
        raise ValueError("device mps: MPS (Apple GPU) is not available here")
    return torch.device(name)
