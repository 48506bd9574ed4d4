"""The shipped count table (src/convscale/model_counts.json) equals the models: params and MACs counted now.

When a model changes, this fails; regenerate the table with `.venv/bin/python scripts/update_model_counts.py`.
"""

import pytest

from conftest import ALL_MODELS, meta_model
from convscale.counting import count_macs, count_params
from convscale.factory import _count_table
from convscale.registry import get_entry


def test_every_registered_model_is_in_the_table():
    assert sorted(_count_table()) == sorted(ALL_MODELS), "run scripts/update_model_counts.py"


@pytest.mark.parametrize("name", ALL_MODELS)
def test_table_matches_live_count(name):
    cfg = get_entry(name).config
    model = meta_model(name)  # what live_counts builds, built once per session
    params, macs = count_params(model), {r: count_macs(model, r) for r in sorted({cfg.train_res, cfg.test_res})}
    row = _count_table()[name]
    assert row["params"] == params, "run scripts/update_model_counts.py"
    assert {int(r): m for r, m in row["macs"].items()} == macs, "run scripts/update_model_counts.py"
