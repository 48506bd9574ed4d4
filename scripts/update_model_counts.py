"""Regenerate src/convscale/model_counts.json: params and multiply-adds of every registered model at its train and
test resolutions, so that `convscale list` and `model_info` answer at once. tests/test_model_counts.py fails when the
table no longer matches the models; then run:

    .venv/bin/python scripts/update_model_counts.py
"""

import json

from convscale.factory import COUNTS_PATH, live_counts
from convscale.registry import get_entry, list_models


def main() -> None:
    table = {}
    for name in list_models():
        cfg = get_entry(name).config
        params, macs = live_counts(name, (cfg.train_res, cfg.test_res))
        table[name] = {"params": params, "macs": {str(r): m for r, m in macs.items()}}
        print(f"{name:32s} {params:>12,d}  " + "  ".join(f"{r}px {m / 1e9:.4f}G" for r, m in macs.items()))
    COUNTS_PATH.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {COUNTS_PATH} ({len(table)} models)")


if __name__ == "__main__":
    main()
