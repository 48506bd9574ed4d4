"""Batched augmentation: RandAugment's magnitude, mixup/CutMix targets, random erasing, reproducibility."""

from __future__ import annotations

import pytest
import torch

from convscale.augment import OPS, apply_op, mix_batch, one_hot_smooth, rand_augment, random_erasing
from convscale.data import SyntheticShapes
from convscale.data.transforms import to_tensor


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    shapes = SyntheticShapes("val", size=8, res=32)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return torch.stack([to_tensor(shapes[i][0]) * std + mean for i in range(8)]).clamp(0, 1)  # [0, 1]


@pytest.mark.parametrize("name", [op for op in OPS if op not in ("identity", "auto_contrast")])
def test_randaugment_magnitude_changes_each_ops_strength(images, name):
    sign = torch.ones(images.shape[0])
    change = [float((apply_op(name, images, m, sign) - images).abs().mean()) for m in (0.0, 3.0, 9.0)]
    if name not in ("solarize", "posterize"):
        assert change[0] == pytest.approx(0, abs=1e-6)  # magnitude 0 is the identity
    assert change[0] <= change[1] < change[2], change


def test_rand_augment_is_reproducible_and_per_image(images):
    a = rand_augment(images, 2, 9, generator=torch.Generator().manual_seed(1))
    b = rand_augment(images, 2, 9, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == images.shape and 0 <= a.min() and a.max() <= 1
    assert not torch.equal(a, rand_augment(images, 2, 9, generator=torch.Generator().manual_seed(2)))
    assert torch.equal(rand_augment(images, 0, 9), images)


def test_mixup_targets_sum_to_one_with_smoothing(images):
    labels = torch.arange(8) % 3
    r = mix_batch(images, labels, 3, mixup_alpha=0.4, label_smoothing=0.1, generator=torch.Generator().manual_seed(0))
    assert r.box is None and 0 < r.lam < 1
    assert torch.allclose(r.targets.sum(1), torch.ones(8))
    assert r.targets.min() >= 0.1 / 3 - 1e-6  # smoothing folded in


def test_cutmix_lambda_is_the_kept_area(images):
    labels = torch.arange(8)
    for seed in range(5):
        r = mix_batch(images, labels, 8, cutmix_alpha=1.0, generator=torch.Generator().manual_seed(seed))
        y0, y1, x0, x1 = r.box
        assert r.lam == pytest.approx(1 - (y1 - y0) * (x1 - x0) / (32 * 32))
        assert torch.allclose(r.targets.sum(1), torch.ones(8))
        for i in range(8):  # each image keeps lam of itself and takes 1 - lam from the image whose box it holds
            weights = r.targets[i][r.targets[i] > 0]
            if weights.numel() == 1:  # mixed with itself
                assert torch.equal(r.images[i], images[i])
                continue
            j = int((r.targets[i] * (torch.arange(8) != i)).argmax())
            assert r.targets[i, i] == pytest.approx(r.lam) and r.targets[i, j] == pytest.approx(1 - r.lam)
            assert torch.equal(r.images[i, :, y0:y1, x0:x1], images[j, :, y0:y1, x0:x1])
        outside = r.images.clone()
        outside[..., y0:y1, x0:x1] = images[..., y0:y1, x0:x1]
        assert torch.equal(outside, images)  # only the box changed


def test_no_mixing_gives_smoothed_one_hot(images):
    r = mix_batch(images, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), 3, label_smoothing=0.3)
    assert r.images is images and r.lam == 1.0
    assert torch.allclose(r.targets, one_hot_smooth(torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]), 3, 0.3))


def test_random_erasing(images):
    out = random_erasing(images, 1.0, generator=torch.Generator().manual_seed(0))
    changed = (out != images).any(1)  # (N, H, W)
    assert all(changed[i].any() for i in range(8))
    assert torch.equal(random_erasing(images, 0.0), images)
    with pytest.raises(ValueError, match="prob"):
        random_erasing(images, 1.5)
