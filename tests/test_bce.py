"""Binary cross-entropy as the training loss (``methods/bce.py``; timm's ``--bce-loss`` and ``--bce-target-thresh``):
the targets and the loss against hand-computed values, its settings from flags and recipes, and a run that uses it."""

from __future__ import annotations

import math

import pytest
import torch

from convscale.cli import main
from convscale.methods.bce import BCE, bce_loss, bce_targets
from convscale.train import TrainConfig, fit

TINY = {"model": "test_resnet", "batch_size": 16, "shapes_train": 64, "shapes_val": 32, "workers": 0}


def test_class_labels_become_smoothed_one_hot_targets_and_the_threshold_binarizes():
    t = bce_targets(torch.tensor([2, 0]), 4, smoothing=0.2)
    off, on = 0.2 / 4, 1 - 0.2 + 0.2 / 4
    assert torch.allclose(t, torch.tensor([[off, off, on, off], [on, off, off, off]]))
    mixed = torch.tensor([[0.7, 0.3, 0.0, 0.0]])  # a mixup target: used as it is, then thresholded
    assert torch.equal(bce_targets(mixed, 4), mixed)
    assert torch.equal(bce_targets(mixed, 4, threshold=0.2), torch.tensor([[1.0, 1.0, 0.0, 0.0]]))


def test_the_loss_is_the_mean_binary_cross_entropy_over_images_and_classes():
    assert bce_loss()(torch.zeros(3, 5), None, torch.tensor([0, 1, 4])).item() == pytest.approx(math.log(2))
    logits, label = torch.tensor([[2.0, -1.0]]), torch.tensor([0])
    by_hand = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))) / 2  # -log σ(2), -log(1 - σ(-1))
    assert bce_loss()(logits, None, label).item() == pytest.approx(by_hand, rel=1e-6)
    assert bce_loss()(logits.bfloat16(), None, label).dtype == torch.float32


def test_its_settings_are_nested_and_spelled_as_timms_flags(capsys):
    cfg = TrainConfig(bce_loss=True, bce_target_thresh=0.2)
    assert cfg.bce == BCE(True, 0.2) and cfg.to_dict()["bce_target_thresh"] == 0.2
    assert main(["train", "--bce-loss", "--bce-target-thresh", "0.2", "--check"]) == 0
    assert "bce_loss: true" in capsys.readouterr().out
    with pytest.raises(ValueError, match="'bce_target_thresh': the threshold is BCE's; it needs --bce-loss"):
        TrainConfig(bce_target_thresh=0.2)
    with pytest.raises(ValueError, match="'bce_target_thresh': expected a number in"):
        TrainConfig(bce_loss=True, bce_target_thresh=2)
    with pytest.raises(ValueError, match="'bce_loss': distillation brings its own loss"):
        TrainConfig(bce_loss=True, teacher="resnet18")


def test_a_run_trains_with_it(tmp_path):
    lines: list[str] = []
    cfg = TrainConfig(**TINY, epochs=1, bce_loss=True, bce_target_thresh=0.2, mixup=0.2, out=str(tmp_path))
    result = fit(cfg, log=lines.append)
    said = "binary cross-entropy loss (label smoothing 0.1, targets above 0.2 -> 1)"
    assert any(line.startswith(said) for line in lines)
    assert result.metrics["train_loss"] < 1.0  # BCE's scale over 10 classes; cross-entropy starts near ln 10 = 2.3
