"""Batched augmentation: random-resized crop and flip, RandAugment's magnitude, mixup/CutMix targets, random
erasing, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from convscale.augment import (
    OP_SETS,
    OPS,
    apply_op,
    flip_mask,
    mix_batch,
    one_hot_smooth,
    rand_augment,
    random_erasing,
    resize_weights,
    resized_crop,
    sample_boxes,
)
from convscale.data import SyntheticShapes
from convscale.data.transforms import to_tensor


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    shapes = SyntheticShapes("val", size=8, res=32)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return torch.stack([to_tensor(shapes[i][0]) * std + mean for i in range(8)]).clamp(0, 1)  # [0, 1]


_NO_MAGNITUDE = ("identity", "auto_contrast", "equalize", "invert")


@pytest.mark.parametrize("name", sorted({op for ops in OP_SETS.values() for op in ops} - set(_NO_MAGNITUDE)))
def test_randaugment_magnitude_changes_each_ops_strength(images, name):
    sign = torch.ones(images.shape[0])
    change = [float((apply_op(name, images, m, sign) - images).abs().mean()) for m in (0.0, 3.0, 9.0)]
    if name not in ("solarize", "posterize", "posterize_increasing"):
        assert change[0] == pytest.approx(0, abs=1e-6)  # magnitude 0 is the identity
    assert change[0] <= change[1] < change[2], change


def _pil_batch(seed: int = 0) -> tuple[list[Image.Image], torch.Tensor]:
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (24, 20, 3), dtype=np.uint8) for _ in range(3)]
    arrays[1] = (arrays[1] // 4 + 100).astype(np.uint8)  # a narrow histogram
    arrays[2][:] = 7  # one level only: equalize leaves it
    arrays[2][0, 0] = 200
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255
    return [Image.fromarray(a) for a in arrays], x


def _pil_to_float(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255


@pytest.mark.parametrize(
    "name, pil",
    [
        ("equalize", ImageOps.equalize),
        ("invert", ImageOps.invert),
        ("solarize_add", lambda im: im.point([min(255, i + 99) if i < 128 else i for i in range(256)] * 3)),
        ("posterize_increasing", lambda im: ImageOps.posterize(im, 1)),  # timm's inc1 at m 9: 4 - int(3.6) bits
    ],
)
def test_the_pixel_ops_match_pil_level_for_level(name, pil):
    """equalize as PIL's (per channel, the cumulative histogram over the levels below the top one), and timm's
    inc1 ops at magnitude 9 as timm computes them on PIL images."""
    pils, x = _pil_batch()
    got = apply_op(name, x, 9.0, torch.ones(len(pils)))
    want = torch.stack([_pil_to_float(pil(im)) for im in pils])
    assert torch.equal((got * 255).round(), (want * 255).round())


@pytest.mark.parametrize(
    "name, data",
    [
        ("shear_x", (1, 0.27, 0, 0, 1, 0)),
        ("shear_y", (1, 0, 0, 0.27, 1, 0)),
        ("translate_x", (1, 0, 0.405 * 20, 0, 1, 0)),  # 0.45 x 0.9 of the width
        ("translate_y", (1, 0, 0, 0, 1, 0.405 * 24)),
    ],
)
def test_shear_and_translate_are_pils_affine_transforms(name, data):
    """At magnitude 9, a shear of 0.27 about the image's top-left corner and a shift of 40.5% of the side: PIL's
    affine transform with those coefficients (what timm and the paper's code apply), to interpolation rounding."""
    pils, x = _pil_batch()
    got = apply_op(name, x, 9.0, torch.ones(len(pils)))
    want = torch.stack([_pil_to_float(im.transform(im.size, Image.AFFINE, data, Image.BILINEAR, fillcolor=(128,) * 3))
                        for im in pils])  # fmt: skip
    inside = (want - 128 / 255).abs().amax(1, keepdim=True) > 2 / 255  # away from the grey fill's edge
    assert (got - want).abs()[inside.expand_as(got)].mean() < 0.03


def test_the_op_lists_are_the_papers_and_timms():
    assert len(OPS) == 14 and "equalize" in OPS and "invert" not in OPS  # Cubuk et al., 2020, Section 3
    timm = OP_SETS["timm"]
    assert len(timm) == 15 and "identity" not in timm and {"invert", "solarize_add"} <= set(timm)
    with pytest.raises(ValueError, match="paper, timm"):
        rand_augment(torch.rand(2, 3, 8, 8), 2, 9, ops="autoaugment")


def test_rand_augment_is_reproducible_and_per_image(images):
    a = rand_augment(images, 2, 9, generator=torch.Generator().manual_seed(1))
    b = rand_augment(images, 2, 9, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == images.shape and 0 <= a.min() and a.max() <= 1
    assert not torch.equal(a, rand_augment(images, 2, 9, generator=torch.Generator().manual_seed(2)))
    assert torch.equal(rand_augment(images, 0, 9), images)
    t = rand_augment(images, 2, 9, ops="timm", generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a, t) and 0 <= t.min() and t.max() <= 1


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


def test_switch_prob_picks_cutmix_or_mixup(images):
    labels = torch.arange(8)
    for p, expected in ((0.0, 0), (1.0, 40), (0.5, None)):
        kinds = [
            mix_batch(images, labels, 8, mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=p, generator=g).box is not None
            for g in (torch.Generator().manual_seed(s) for s in range(40))
        ]
        if expected is None:
            assert 10 < sum(kinds) < 30
        else:
            assert sum(kinds) == expected


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


# -- random-resized crop and flip on the device -------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [12, 40, 90])
def test_resized_crop_of_the_whole_image_is_antialiased_interpolate(kernel, size):
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    whole = torch.tensor([[0.0, 0.0, 56.0, 40.0]] * 2)
    expected = torch.nn.functional.interpolate(x, size=(size, size), mode=kernel, antialias=True, align_corners=False)
    torch.testing.assert_close(resized_crop(x, whole, size, kernel=kernel), expected, atol=1e-5, rtol=0)
    flips = torch.tensor([True, False])  # boxes None (the whole image): the batched shortcut, the same result
    torch.testing.assert_close(
        resized_crop(x, None, size, flips, kernel), resized_crop(x, whole, size, flips, kernel), atol=1e-5, rtol=0
    )
    assert torch.equal(resized_crop(x[..., :40, :40], None, 40), x[..., :40, :40])  # right size already: untouched


def test_resized_crop_matches_pil_box_resize_image_by_image():
    """Fractional boxes, down- and up-scaling, a different box per image in one batched call: equal to PIL's
    ``resize(box=...)`` (bicubic, antialiased) to one grey level, once PIL's uint8 rounding between its horizontal
    and vertical passes is reproduced."""
    rng = np.random.default_rng(0)
    pixels = (rng.random((6, 48, 64, 3)) * 255).astype(np.uint8)
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float()
    boxes = sample_boxes(6, 48, 64, (0.08, 1.0), generator=torch.Generator().manual_seed(1))
    for size in (16, 96):
        wy = resize_weights(boxes[:, 1], boxes[:, 3] - boxes[:, 1], 48, size)
        wx = resize_weights(boxes[:, 0], boxes[:, 2] - boxes[:, 0], 64, size)
        rows = (x @ wx.transpose(1, 2)[:, None]).round().clamp(0, 255)  # PIL stores the first pass as uint8
        two_pass = (wy[:, None] @ rows).round().clamp(0, 255)
        one_pass = resized_crop(x, boxes, size)
        for i in range(6):
            pil = Image.fromarray(pixels[i]).resize(
                (size, size), Image.Resampling.BICUBIC, box=tuple(boxes[i].tolist())
            )
            pil = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1).float()
            assert (two_pass[i] - pil).abs().max() <= 1
            assert (one_pass[i].round().clamp(0, 255) - pil).abs().mean() < 0.5  # without the rounding: close


def test_flip_mirrors_the_crop():
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    boxes = sample_boxes(3, 32, 32, (0.3, 1.0), generator=torch.Generator().manual_seed(2))
    flips = torch.tensor([True, False, True])
    out, plain = resized_crop(x, boxes, 24, flips), resized_crop(x, boxes, 24)
    torch.testing.assert_close(out[flips], plain[flips].flip(-1))
    torch.testing.assert_close(out[~flips], plain[~flips])


def test_sample_boxes_follow_scale_and_ratio_and_the_generator():
    boxes = sample_boxes(500, 48, 64, (0.2, 0.6), (3 / 4, 4 / 3), generator=torch.Generator().manual_seed(0))
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 64 + 1e-9).all() and (boxes[:, 3] <= 48 + 1e-9).all()
    area = w * h / (48 * 64)
    assert area.min() >= 0.2 - 1e-9 and area.max() <= 0.6 + 1e-9
    assert (w / h).min() >= 3 / 4 - 1e-9 and (w / h).max() <= 4 / 3 + 1e-9
    again = sample_boxes(500, 48, 64, (0.2, 0.6), (3 / 4, 4 / 3), generator=torch.Generator().manual_seed(0))
    assert torch.equal(boxes, again)
    # a crop that can never fit (the whole area at aspect 2-3 of a 4:3 image): the centre square
    square = sample_boxes(4, 48, 64, (1.0, 1.0), (2.0, 3.0), generator=torch.Generator().manual_seed(0))
    assert torch.equal(square, torch.tensor([[8.0, 0.0, 56.0, 48.0]] * 4, dtype=torch.float64))


def test_flip_mask_probability():
    flips = flip_mask(4000, 0.5, generator=torch.Generator().manual_seed(0))
    assert 0.45 < flips.float().mean() < 0.55
    assert not flip_mask(100, 0.0).any()
