"""from_timm covers every timm name with a counterpart: our mapped keys and shapes equal timm's.

tests/data/timm_layouts.json holds, per timm name, the number of state-dict keys and the sha256 of the sorted
``key:shape`` lines, recorded from timm 1.0.31 (models built on the meta device). A 1×1 conv weight (O, I, 1, 1) is
written (O, I), so that timm's 1×1-conv MLPs (convnext_atto…nano) and our linear ones compare equal: the loader
reshapes one into the other.
"""

import hashlib

import pytest
import torch

import convscale
from conftest import timm_layouts
from convscale.interop import timm_key_map, timm_names

LAYOUTS = timm_layouts()


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    s = tuple(t.shape)
    return s[:2] if len(s) == 4 and s[2:] == (1, 1) else s


def test_every_counterpart_has_a_recorded_layout():
    assert set(timm_names()) == set(LAYOUTS)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_mapped_layout_equals_timm(name):
    with torch.device("meta"):
        model = convscale.create_model(name)
    mapping = timm_key_map(model)
    lines = sorted(f"{mapping[k]}:{_shape(v)}" for k, v in model.state_dict().items())
    assert len(lines) == LAYOUTS[name]["keys"]
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == LAYOUTS[name]["sha256"]
