"""Child process of test_kernels.py: one channels_last training step per case of one family, on the CPU.

``python kernel_probe.py FAMILY`` prints ``start CASE`` before and ``ok CASE`` after each case, so that the parent
names the case that crashed or hung. Cases: each tiny variant whole (forward, backward, SGD step), then every
registered variant's stem and first stage at full width and 64 px (built on the meta device, then materialized:
the first layers are where the failing kernel shapes were).
"""

import sys

import torch
import torch.nn.functional as F
from torch import nn

import convscale
from convscale.registry import get_entry


def _materialize(part: nn.Module) -> nn.Module:
    """A meta-device module on the CPU with small random weights (running statistics reset)."""
    part = part.to_empty(device="cpu")
    with torch.no_grad():
        for t in [*part.parameters(), *part.buffers()]:
            if t.is_floating_point():
                t.normal_(0.0, 0.02)
    for m in part.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return part


def _stem_and_first_stage(name: str) -> nn.Module:
    with torch.device("meta"):
        model = convscale.create_model(name, drop_path_rate=0.0)
    parts = []
    for trunk_name, module in model.trunk():
        parts.append(module)
        if trunk_name.startswith("stages."):
            break
    return _materialize(nn.Sequential(*parts))


def _train_step(model: nn.Module, res: int, batch: int = 4) -> None:
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, res, res).contiguous(memory_format=torch.channels_last)
    out = model(x)
    loss = F.cross_entropy(out, torch.arange(batch) % out.shape[1]) if out.ndim == 2 else out.float().square().mean()
    loss.backward()
    opt.step()


def main(family: str) -> None:
    torch.manual_seed(0)
    names = [n for n in convscale.list_models() if get_entry(n).family == family]
    cases = [(f"{n} (whole, tiny)", lambda n=n: convscale.create_model(n)) for n in names if get_entry(n).tiny]
    cases += [(f"{n} (stem + first stage)", lambda n=n: _stem_and_first_stage(n)) for n in names]
    for case, build in cases:
        print("start", case, flush=True)
        _train_step(build(), 64)
        print("ok", case, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
