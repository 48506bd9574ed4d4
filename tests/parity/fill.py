"""Deterministic, seed-free weights for parity checks against reference implementations.

Every tensor of a reference state dict is filled from its key name and shape alone, so two
implementations that agree on a key mapping can rebuild identical weights without shipping them.
Batch-norm running statistics can't be made up that way (the signal would fade through a deep net), so a
fixture stores them, calibrated on the reference model, and they override the generated values.
Usage: tensors = fill_state_dict(shapes, decode_stored(fixture)); x = parity_input(*fixture["input"]).
"""

import base64
import math
import zlib

import numpy as np
import torch

GAIN_SUFFIXES = (".gain", "skipinit_gain", ".gamma", "layer_scale", ".ls.gamma", "scale")


def _wave(key: str, n: int) -> torch.Tensor:
    """n values in [-sqrt(3), sqrt(3)) (unit variance), from a splitmix64 hash of (key, index)."""
    seed = np.uint64(zlib.crc32(key.encode()))
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + seed * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(2**53)
    return torch.from_numpy((u * 2.0 - 1.0) * math.sqrt(3.0))


def fill_tensor(key: str, shape, gain: float = 1.0) -> torch.Tensor:
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape) if shape else 1
    v = _wave(key, n)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=torch.long)
    if leaf == "running_var":
        v = 1.0 + 0.3 * v.abs()
    elif leaf == "running_mean":
        v = 0.1 * v
    elif key.endswith(GAIN_SUFFIXES) or (len(shape) <= 1 and leaf in ("weight", "gamma", "g")):
        v = 1.0 + 0.1 * v  # norm weights, gains, layer scales
    elif len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        v = v * (gain / math.sqrt(fan_in))  # conv / linear weights
    else:
        v = 0.05 * v  # biases and other vectors
    return v.reshape(shape).to(torch.float32)


def fill_state_dict(shapes: dict, stored: dict | None = None) -> dict:
    """Weights for every key; `stored` (key -> tensor, e.g. calibrated batch-norm statistics) wins."""
    stored = stored or {}
    return {k: stored[k].reshape(s) if k in stored else fill_tensor(k, s) for k, s in shapes.items()}


def decode_stored(fixture: dict) -> dict:
    """The fixture's stored tensors (base64 little-endian float32) as torch tensors."""
    out = {}
    for key, b64 in fixture.get("stored", {}).items():
        out[key] = torch.from_numpy(np.frombuffer(base64.b64decode(b64), dtype="<f4").copy())
    return out


def parity_input(batch: int, channels: int, height: int, width: int) -> torch.Tensor:
    n = batch * channels * height * width
    i = torch.arange(n, dtype=torch.float64)
    x = torch.sin(i * 0.013) + 0.5 * torch.cos(i * 0.0007 + 1.0)
    return x.reshape(batch, channels, height, width).to(torch.float32)
