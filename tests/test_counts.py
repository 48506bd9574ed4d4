"""Params and GMACs of every variant against the reference implementations (counted on the meta device)."""

import pytest

import convscale
from conftest import reference_rows
from convscale.factory import count_model
from convscale.registry import get_entry

REF = reference_rows()
COUNTED = [n for n in convscale.list_models() if n in REF]


def test_every_efficientnet_in_the_reference_is_registered():
    wanted = {n for n in REF if "efficientnet" in n}
    assert wanted <= set(COUNTED)


@pytest.mark.parametrize("name", COUNTED)
def test_params_and_gmacs_match_reference(name):
    row = REF[name]
    sizes = (int(row["train_size"]), int(row["test_size"]))
    params, macs = count_model(name, sizes)  # meta-device counts (test_model_counts checks the table behind it)
    assert params == int(row["params"])
    for res, ref in zip(sizes, (row["gmacs_at_train_size"], row["gmacs_at_test_size"]), strict=True):
        assert macs[res] / 1e9 == pytest.approx(float(ref), rel=0.01), f"{name} at {res}"


def test_model_info_fields():
    info = convscale.model_info("efficientnetv2_s")
    assert (info.family, info.train_res, info.test_res) == ("efficientnetv2", 300, 384)
    assert info.params == int(REF["tf_efficientnetv2_s"]["params"])
    assert info.gmacs_train == pytest.approx(5.3076, rel=0.01)
    assert info.gmacs_test == pytest.approx(8.3656, rel=0.01)
    assert info.published.top1 == 83.9
    b7 = convscale.model_info("efficientnet_b7")
    assert (b7.train_res, b7.test_res, b7.config.drop_rate) == (600, 600, 0.5)
    assert (b7.published.top1, b7.published.params_m) == (84.3, 66.0)


def test_paper_resolutions_and_dropout_v1():
    expected = {
        0: (224, 0.2),
        1: (240, 0.2),
        2: (260, 0.3),
        3: (300, 0.3),
        4: (380, 0.4),
        5: (456, 0.4),
        6: (528, 0.5),
        7: (600, 0.5),
    }
    for b, (res, drop) in expected.items():
        cfg = get_entry(f"efficientnet_b{b}").config
        assert (cfg.train_res, cfg.test_res, cfg.drop_rate, cfg.drop_path_rate) == (res, res, drop, 0.2)


def test_v2_train_and_eval_sizes():
    expected = {
        "s": (300, 384),
        "m": (384, 480),
        "l": (384, 480),
        "xl": (384, 512),
        "b0": (192, 224),
        "b1": (192, 240),
        "b2": (208, 260),
        "b3": (240, 300),
    }
    for v, sizes in expected.items():
        for prefix in ("", "tf_"):
            cfg = get_entry(f"{prefix}efficientnetv2_{v}").config
            assert (cfg.train_res, cfg.test_res) == sizes
