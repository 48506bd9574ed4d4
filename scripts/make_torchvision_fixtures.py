"""Parity fixtures for torchvision models that shared/parity does not pin (run in the timm/torchvision reference
environment from shared/tools/ref_env.sh):

    REF_PY scripts/make_torchvision_fixtures.py mobilenet_v2 mobilenet_v3_large mobilenet_v3_small --out tests/parity

Same format as shared/parity (README there): weights from fill.py's key hash, batch-norm running statistics
calibrated on the reference model (one pass in training mode over the parity input, cumulative average) and stored,
and the reference model's eval-mode logits for that input.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "parity"))
from fill import fill_state_dict, parity_input

INPUT = (2, 3, 112, 112)


def make(name: str) -> dict:
    import torchvision

    model = torchvision.models.get_model(name, weights=None)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    weights = fill_state_dict(shapes)
    model.load_state_dict(weights)
    x = parity_input(*INPUT)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one pass sets the batch statistics
    with torch.no_grad():
        model.train()(x)
        logits = model.eval()(x)
    stored = {
        k: base64.b64encode(v.detach().float().numpy().astype("<f4").tobytes()).decode()
        for k, v in model.state_dict().items()
        if k.endswith(("running_mean", "running_var"))
    }
    return {
        "source": "torchvision",
        "source_version": torchvision.__version__,
        "model": name,
        "input": list(INPUT),
        "state_dict": [[k, s] for k, s in shapes.items()],
        "stored": stored,
        "logits": [[round(float(v), 7) for v in row] for row in logits],
        "made_by": "convscale scripts/make_torchvision_fixtures.py",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="+")
    p.add_argument("--out", type=Path, default=Path("tests/parity"))
    args = p.parse_args()
    for name in args.names:
        path = args.out / f"torchvision__{name}.json"
        path.write_text(json.dumps(make(name)))
        print("wrote", path)


if __name__ == "__main__":
    main()
