"""Fine-tuning: layer-wise learning-rate decay, the head-only warm-up, frozen batch-norm statistics, starting from a
run with other classes, and from published weights (through a Hugging Face cache written here)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from conftest import make_image_folder, parity_fixture, write_hub_file
from convscale import create_model
from convscale.cli import main
from convscale.interop import timm_key_map
from convscale.methods.finetune import layer_decay_scales, layer_ids
from convscale.runs import eval_policy
from convscale.train import TrainConfig, fit, load_run, read_checkpoint
from convscale.train.optimizer import create_optimizer
from convscale.weights import get_weights

TINY = {"model": "test_resnet", "batch_size": 16, "workers": 0, "warmup_epochs": 0.0}
QUIET = {"log": lambda *_: None}


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """test_resnet pretrained on synthetic-shapes (10 classes)."""
    tmp = tmp_path_factory.mktemp("pre")
    cfg = TrainConfig(**TINY, shapes_train=64, shapes_val=16, epochs=1, out=str(tmp), name="pre", lr=3e-3)
    return fit(cfg, **QUIET).run_dir


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("photos") / "data", per_class=12, val_per_class=4, res=64)


def test_layer_ids_follow_the_blocks():
    """test_resnet: stem 0; stages 1, 2, 1, 1 blocks → layers 1…5; the head layer 6."""
    model = create_model("test_resnet", num_classes=3)
    ids, blocks = layer_ids(model)
    assert blocks == 5
    assert ids["stem.conv.weight"] == 0
    assert ids["stages.0.0.branch.0.conv.weight"] == 1
    assert ids["stages.1.0.shortcut.conv.weight"] == 2 and ids["stages.1.1.branch.2.bn.bias"] == 3
    assert ids["stages.3.0.branch.0.conv.weight"] == 5
    assert ids["head.fc.weight"] == ids["head.fc.bias"] == 6
    convnext = create_model("test_convnext", num_classes=3)
    ids, _ = layer_ids(convnext)
    assert ids["stages.1.downsample.1.weight"] == ids["stages.1.blocks.0.conv_dw.weight"]  # counts with its first block


def test_layer_decay_groups_carry_the_formula(shapes_run, photos, tmp_path):
    """After a step, every parameter's group has lr = schedule lr × decay^(L + 1 − layer)."""
    decay = 0.6
    cfg = TrainConfig(
        **TINY, data=str(photos), epochs=2, lr=1e-3, pretrained=str(shapes_run), layer_decay=decay, max_steps=1,
        out=str(tmp_path), name="ld",
    )  # fmt: skip
    fit(cfg, **QUIET)
    ckpt = read_checkpoint(tmp_path / "ld" / "checkpoints" / "last.safetensors")
    model = create_model("test_resnet", num_classes=3)
    optimizer = create_optimizer(model, "adamw", 1e-3, 0.05, lr_scales=layer_decay_scales(model, decay))
    ckpt.restore_optimizer(optimizer)
    ids, blocks = layer_ids(model)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = set()
    lr = 1e-3  # the first step's: no warm-up, the top of the cosine
    for group in optimizer.param_groups:
        for p in group["params"]:
            layer = ids[names[id(p)]]
            assert group["lr_scale"] == pytest.approx(decay ** (blocks + 1 - layer))
            assert group["lr"] == pytest.approx(lr * decay ** (blocks + 1 - layer))
            seen.add(layer)
    assert seen == set(range(blocks + 2))


def test_freeze_epochs_keeps_the_trunk_bit_identical_then_trains_it(shapes_run, photos, tmp_path):
    """--freeze-epochs 1 from a run with 10 classes on a folder with 3: after epoch 1 every trunk tensor (weights and
    batch-norm statistics) equals the pretrained run's; the new classifier learned; after epoch 2 the trunk moved."""
    source = load_run(shapes_run).model.state_dict()  # a run's EMA weights, as pretrained=RUN takes them
    cfg = TrainConfig(
        **TINY, data=str(photos), epochs=2, lr=3e-3, pretrained=str(shapes_run), freeze_epochs=1, ema=False,
        out=str(tmp_path), name="ft",
    )  # fmt: skip
    steps = 36 // 16  # 36 images, full batches of 16
    fit(cfg.__class__(**{**cfg.to_dict(), "max_steps": steps}), **QUIET)
    after1 = read_checkpoint(tmp_path / "ft" / "checkpoints" / "last.safetensors").weights("model")
    trunk = [k for k in after1 if not k.startswith("head.fc.")]
    assert trunk and all(torch.equal(after1[k], source[k]) for k in trunk)
    assert after1["head.fc.weight"].shape == (3, source["head.fc.weight"].shape[1])
    fresh = create_model("test_resnet", num_classes=3)  # the classifier moved from its initialization
    torch.manual_seed(0)
    assert not torch.equal(after1["head.fc.bias"], fresh.head.fc.bias.detach())
    fit(resume=tmp_path / "ft", **QUIET)
    after2 = load_run(tmp_path / "ft", weights="model").model.state_dict()
    weights = [k for k in trunk if k.endswith("weight")]
    assert [k for k in weights if not torch.equal(after2[k], source[k])] == weights  # every trunk weight moved


def test_freeze_bn_keeps_the_statistics_and_trains_the_rest(shapes_run, photos, tmp_path):
    source = load_run(shapes_run).model.state_dict()
    cfg = TrainConfig(
        **TINY, data=str(photos), epochs=1, lr=3e-3, pretrained=str(shapes_run), freeze_bn=True, ema=False,
        out=str(tmp_path), name="bn",
    )  # fmt: skip
    fit(cfg, **QUIET)
    after = load_run(tmp_path / "bn").model.state_dict()
    stats = [k for k in after if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(after[k], source[k]) for k in stats)
    assert not torch.equal(after["stem.conv.weight"], source["stem.conv.weight"])


def test_without_freezing_the_trunk_trains_from_the_first_step(shapes_run, photos, tmp_path):
    """The check above can fail: with no freeze the trunk moves in epoch 1."""
    source = load_run(shapes_run).model.state_dict()
    cfg = TrainConfig(
        **TINY, data=str(photos), epochs=1, lr=3e-3, pretrained=str(shapes_run), ema=False, out=str(tmp_path),
        name="nofreeze",
    )  # fmt: skip
    fit(cfg, **QUIET)
    after = load_run(tmp_path / "nofreeze").model.state_dict()
    assert not torch.equal(after["stem.conv.weight"], source["stem.conv.weight"])
    assert not torch.equal(after["stem.bn.running_mean"], source["stem.bn.running_mean"])


def test_fine_tuning_options_need_pretrained_and_bad_tags_are_one_line(capsys):
    assert main(["train", "--freeze-epochs", "1", "--check"]) == 2
    assert "needs --pretrained" in capsys.readouterr().err
    assert main(["train", "--model", "efficientnet_b0", "--pretrained", "nope", "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "its tags: ra_in1k" in err
    assert main(["train", "--pretrained", "--layer-decay", "1.5", "--model", "resnet18", "--check"]) == 2
    assert "layer_decay" in capsys.readouterr().err
    assert main(["train", "--model", "resnet18", "--pretrained", "--layer-decay", "0.7", "--check"]) == 0
    assert "pretrained: true" in capsys.readouterr().out


def test_a_run_from_published_weights_uses_their_preprocessing():
    w = get_weights("tf_efficientnetv2_s")  # in21k_ft_in1k: mean/std 0.5, 300 / 384, crop 1.0
    policy = eval_policy(TrainConfig(model="tf_efficientnetv2_s", data="/photos", pretrained=True))
    assert (policy.train_res, policy.test_res) == (300, 384)
    assert (policy.mean, policy.std, policy.crop_pct, policy.interpolation) == (w.mean, w.std, 1.0, "bicubic")
    nf = eval_policy(TrainConfig(model="dm_nfnet_f0", data="/photos", pretrained=True, train_res=128))
    assert (nf.crop_mode, nf.crop_pct, nf.test_res) == ("squash", 0.9, 168)  # 128 × 256 / 192, on a multiple of 8
    rv = eval_policy(TrainConfig(model="repvgg_a0", data="/photos", pretrained="rvgg_in1k"))
    assert rv.interpolation == "bilinear"
    plain = eval_policy(TrainConfig(model="tf_efficientnetv2_s", data="/photos"))
    assert plain.mean == (0.485, 0.456, 0.406)


def test_fine_tuning_published_weights_in_their_form(hub_cache, photos, tmp_path):
    """nf_resnet50's timm weights need timm's form (gamma_in_act=False, pool_shortcut=True): the run trains in it,
    and load_run rebuilds the model in it."""
    _, weights, _, _ = parity_fixture("timm__nf_resnet50")
    repo = get_weights("nf_resnet50").hub_id
    write_hub_file(hub_cache, repo, "model.safetensors", lambda p: save_file(weights, str(p)))
    cfg = TrainConfig(
        model="nf_resnet50", data=str(photos), pretrained=True, epochs=1, batch_size=4, train_res=64, workers=0,
        max_steps=2, ema=False, lr=1e-4, out=str(tmp_path), name="nf",
    )  # fmt: skip
    fit(cfg, **QUIET)
    run = load_run(tmp_path / "nf")
    assert run.model.cfg.pool_shortcut is True and run.model.cfg.gamma_in_act is False
    assert run.model.head.fc.out_features == 3
    trained = run.model.state_dict()
    key_map = timm_key_map(run.model)
    stem = next(k for k, v in trained.items() if v.ndim == 4)
    ref = weights[key_map[stem]]
    assert 0 < (trained[stem] - ref).norm() < 0.01 * ref.norm()  # the published weights, after two small steps


def test_the_classifier_is_kept_only_for_the_same_classes(shapes_run, tmp_path):
    """From a run of synthetic-shapes' 10 classes: onto the same classes the classifier is kept (a longer run); onto
    10 other classes (same width) it is replaced, not reused with its labels mismatched."""
    from convscale.data import SHAPE_CLASSES
    from convscale.train.build import build_model

    source = load_run(shapes_run).model.state_dict()
    cfg = TrainConfig(**TINY, pretrained=str(shapes_run))
    kept = build_model(cfg, torch.device("cpu"), list(SHAPE_CLASSES), fresh=True).state_dict()
    assert torch.equal(kept["head.fc.weight"], source["head.fc.weight"])
    digits = [str(i) for i in range(10)]
    replaced = build_model(cfg, torch.device("cpu"), digits, fresh=True).state_dict()
    assert replaced["head.fc.weight"].shape == source["head.fc.weight"].shape
    assert not torch.equal(replaced["head.fc.weight"], source["head.fc.weight"])
    assert torch.equal(replaced["stem.conv.weight"], source["stem.conv.weight"])


def test_wordnet_folders_read_as_names_in_predict_and_the_confusion_matrix(photos, tmp_path, capsys):
    """Class folders named by WordNet id (as Imagenette's are) print as ImageNet's names."""
    import shutil

    wnids = {"circle": "n01440764", "star": "n02102040", "triangle": "n02979186"}  # tench, springer, cassette
    data = tmp_path / "nette"
    for split in ("train", "val"):
        for shape, wnid in wnids.items():
            shutil.copytree(photos / split / shape, data / split / wnid)
    cfg = TrainConfig(**TINY, data=str(data), epochs=1, out=str(tmp_path), name="nette")
    run = fit(cfg, **QUIET).run_dir
    matrix = tmp_path / "confusion.csv"
    assert main(["eval", str(run), "--workers", "0", "--confusion", str(matrix)]) == 0
    rows = [line.split(",") for line in matrix.read_text().splitlines()]
    assert rows[0][1:] == ["tench", "English springer", "cassette player"]
    evaluated = load_run(run)
    total = sum(int(v) for row in rows[1:] for v in row[1:])
    assert total == 12  # every val image counted once
    image = next((data / "val" / "n01440764").iterdir())
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(run), str(image)]) == 0
    labels = capsys.readouterr().out.strip().splitlines()[-1].rsplit(": ", 1)[1]
    assert "tench" in labels and "English springer" in labels and "cassette player" in labels
    assert "n0" not in labels
    assert evaluated.classes == sorted(wnids.values())
