import csv
import json
import sys
from pathlib import Path

import pytest
import torch

import convscale

DATA = Path(__file__).parent / "data"
PARITY = Path(__file__).parent / "parity"
sys.path.insert(0, str(PARITY))  # fill.py: the fixtures' deterministic weights

from fill import decode_stored, fill_state_dict, parity_input  # noqa: E402


def parity_fixture(name: str):
    """(reference model name, its weights, the input, the reference logits as float64) of a parity fixture."""
    fx = json.loads((PARITY / f"{name}.json").read_text())
    weights = fill_state_dict(dict(fx["state_dict"]), decode_stored(fx))
    return fx["model"], weights, parity_input(*fx["input"]), torch.tensor(fx["logits"], dtype=torch.float64)


def reference_rows() -> dict[str, dict[str, str]]:
    """shared/reference/reference_models.csv (copied): params and GMACs counted on timm / torchvision."""
    with open(DATA / "reference_models.csv") as f:
        return {row["model"]: row for row in csv.DictReader(f)}


def timm_layouts() -> dict[str, dict]:
    return json.loads((DATA / "timm_layouts.json").read_text())["models"]


ALL_MODELS = convscale.list_models()
TINY_MODELS = [n for n in ALL_MODELS if n.startswith("test_")]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
