"""Child process of test_kernels.py: one channels_last training step per case of one family, on the CPU.

``python kernel_probe.py FAMILY`` prints ``start CASE`` before and ``ok CASE`` after each case, so that the parent
names the case that crashed or hung. Cases: each tiny variant whole (forward, backward, SGD step), then every
registered variant's stem and first block at full width and 64 px (built on the meta device, then materialized:
the first layers are where the failing kernel shapes were). Each full model built on the meta device is also
checked to hold no plain strided 1×1 conv (``fail CASE`` names one).
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


def _plain_strided_pointwise(model: nn.Module) -> list[str]:
    """Convs that would reach oneDNN's strided-1×1 weight gradient: 1×1, strided, not in the subsampled form."""
    from convscale.layers.conv import StridedPointwiseConv2d
    from convscale.layers.std_conv import ScaledStdConv2d

    safe = (StridedPointwiseConv2d, ScaledStdConv2d)
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and not isinstance(m, safe) and m.kernel_size == (1, 1) and m.stride != (1, 1)
    ]


def _first_block(stage: nn.Module) -> nn.Module:
    """A stage's first block (ConvNeXt's stage: its downsampling, then its first block)."""
    if hasattr(stage, "blocks"):
        return nn.Sequential(stage.downsample, stage.blocks[0])
    children = list(stage.children())
    return children[0] if children else stage


def _stem_and_first_block(name: str) -> nn.Module:
    with torch.device("meta"):
        model = convscale.create_model(name, drop_path_rate=0.0)
    plain = _plain_strided_pointwise(model)
    if plain:
        print("fail", name, "plain strided 1x1 convs:", plain, flush=True)
        sys.exit(3)
    parts = []
    for trunk_name, module in model.trunk():
        if trunk_name.startswith("stages."):
            parts.append(_first_block(module))
            break
        parts.append(module)
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
    cases += [(f"{n} (stem + first block)", lambda n=n: _stem_and_first_block(n)) for n in names]
    for case, build in cases:
        print("start", case, flush=True)
        _train_step(build(), 64)
        print("ok", case, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
