"""The progressive-learning schedule (EfficientNetV2 §4.2, PAPERS.md §2.4): sizes and regularizers per stage."""

from __future__ import annotations

import pytest

from convscale.methods.progressive import ProgressiveConfig, format_schedule, progressive_schedule

V2_S = {"image_size": (128, 300), "drop_rate": (0.1, 0.3), "randaug_magnitude": (5, 15), "mixup_alpha": (0, 0)}


def test_paper_variant_interpolates_from_the_first_to_the_last_values():
    stages = progressive_schedule(ProgressiveConfig(**V2_S, multiple=1), epochs=350, batch_size=4096)
    assert [s.image_size for s in stages] == [128, 185, 243, 300]
    assert [s.drop_rate for s in stages] == pytest.approx([0.1, 0.1 + 0.2 / 3, 0.1 + 0.4 / 3, 0.3], abs=1e-6)
    assert [s.randaug_magnitude for s in stages] == pytest.approx([5, 5 + 10 / 3, 5 + 20 / 3, 15], abs=1e-6)
    assert all(s.mixup_alpha == 0 for s in stages)
    assert [(s.start_epoch, s.end_epoch) for s in stages] == [(0, 87), (87, 175), (175, 262), (262, 350)]


def test_official_variant():
    stages = progressive_schedule(ProgressiveConfig(**V2_S, multiple=1, variant="official"), 350, 4096)
    assert [s.image_size for s in stages] == [171, 214, 257, 300]  # AutoML main.py: ratio (i + 1) / M
    assert [s.randaug_magnitude for s in stages] == pytest.approx([5, 5 + 10 / 3, 5 + 20 / 3, 15], abs=1e-6)  # linspace
    assert all(s.drop_rate == 0.3 for s in stages)  # the dropout schedule is discarded there


def test_mixup_and_drop_path_grow_too():
    cfg = ProgressiveConfig(mixup_alpha=(0, 0.4), drop_path_rate=(0.0, 0.3), stages=3, multiple=1)
    stages = progressive_schedule(cfg, 9, 64)
    assert [s.mixup_alpha for s in stages] == pytest.approx([0, 0.2, 0.4])
    assert [s.drop_path_rate for s in stages] == pytest.approx([0, 0.15, 0.3], abs=1e-6)


def test_sizes_are_multiples_and_edge_cases():
    stages = progressive_schedule(ProgressiveConfig(**V2_S), 10, 64)
    assert all(s.image_size % 8 == 0 for s in stages)
    assert [(s.start_epoch, s.end_epoch) for s in stages] == [(0, 2), (2, 5), (5, 7), (7, 10)]
    (one,) = progressive_schedule(ProgressiveConfig(**V2_S, stages=1, multiple=1), 5, 64)  # M = 1: the last values
    assert (one.image_size, one.drop_rate, one.randaug_magnitude, one.start_epoch, one.end_epoch) == (
        300,
        0.3,
        15,
        0,
        5,
    )
    same = progressive_schedule(ProgressiveConfig(image_size=(224, 224)), 8, 64)  # S0 = Se: regularization only
    assert {s.image_size for s in same} == {224} and same[0].randaug_magnitude < same[-1].randaug_magnitude
    assert all(s.image_size % 32 == 0 for s in progressive_schedule(ProgressiveConfig(**V2_S, multiple=32), 8, 64))


def test_constant_memory_scales_batch_and_lr():
    stages = progressive_schedule(ProgressiveConfig(**V2_S, constant_memory=True), 8, 64)
    assert stages[-1].batch_size == 64 and stages[-1].lr_scale == 1
    first = stages[0]
    assert first.batch_size == 8 * ((64 * (304 / 128) ** 2) // 8) and first.lr_scale == first.batch_size / 64
    assert all(s.batch_size % 8 == 0 for s in stages)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="one epoch per stage"):
        progressive_schedule(ProgressiveConfig(), 3, 64)
    with pytest.raises(ValueError, match="variant"):
        ProgressiveConfig(variant="v3")
    with pytest.raises(ValueError, match="image_size"):
        ProgressiveConfig(image_size=(16, 300))
    with pytest.raises(ValueError, match="drop_rate"):
        ProgressiveConfig(drop_rate=(0.1, 1.5))


def test_schedule_table():
    text = format_schedule(progressive_schedule(ProgressiveConfig(**V2_S), 8, 64))
    assert text.splitlines()[0].split()[:3] == ["stage", "epochs", "size"] and len(text.splitlines()) == 5
