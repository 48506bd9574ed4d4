"""The run API: ``load_run``, ``create_model(name, pretrained=RUN)``, and ``convscale eval`` / ``predict`` scoring a
run at its own test size and crop."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from conftest import make_image_folder
from convscale import create_model
from convscale.cli import main
from convscale.runs import eval_policy
from convscale.train import TrainConfig, fit, load_run, read_checkpoint

TINY = {"model": "test_resnet", "batch_size": 16, "workers": 0, "warmup_epochs": 0.5}


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> Path:
    """test_resnet trained 2 epochs on an ImageFolder at 48 px (the model's own size is 64)."""
    tmp = tmp_path_factory.mktemp("run48")
    data = make_image_folder(tmp / "data")
    cfg = TrainConfig(**TINY, data=str(data), epochs=2, train_res=48, out=str(tmp), name="r48", lr=5e-3)
    return fit(cfg, log=lambda *_: None).run_dir


def test_eval_scores_a_run_at_its_own_test_size_and_crop(folder_run, capsys):
    run = load_run(folder_run)
    assert (run.policy.train_res, run.policy.test_res, run.policy.crop_pct) == (48, 48, 0.875)
    assert run.transform.res == 48 and run.config.train_res == 48
    assert main(["eval", str(folder_run), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "val at 48 px (crop 0.875)" in out and "(12 of 12 images)" in out
    top1 = float(re.search(r"top-1 ([\d.]+)%", out)[1])
    last = run.metrics[-1]
    assert top1 == pytest.approx(last["ema_top1"], abs=1e-6)  # the EMA weights, as validated while training


def test_predict_agrees_with_eval(folder_run, capsys):
    images = sorted((folder_run.parent / "data" / "val").rglob("*.png"))
    assert main(["predict", "--checkpoint", str(folder_run), *map(str, images)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    hits = sum(line.split(": ", 1)[1].split(" ")[0] == Path(line.split(": ")[0]).parent.name for line in lines)
    assert main(["eval", str(folder_run), "--workers", "0"]) == 0
    top1 = float(re.search(r"top-1 ([\d.]+)%", capsys.readouterr().out)[1])
    assert len(lines) == len(images) == 12 and 100 * hits / len(images) == pytest.approx(top1)


@pytest.mark.parametrize("weights", ["ema", "model"])
def test_load_run_and_create_model_give_the_weights_asked(folder_run, weights):
    ckpt = read_checkpoint(folder_run / "checkpoints" / "last.safetensors")
    stored = ckpt.weights(weights)
    run = load_run(folder_run, weights=weights)
    assert run.weights == weights and run.classes == ["circle", "star", "triangle"]
    assert all(torch.equal(run.model.state_dict()[k], v) for k, v in stored.items())
    model = create_model("test_resnet", num_classes=3, pretrained=folder_run, pretrained_weights=weights)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stored.items())
    file = folder_run / "checkpoints" / "last.safetensors"
    same = create_model("test_resnet", num_classes=3, pretrained=file, pretrained_weights=weights)
    assert all(torch.equal(same.state_dict()[k], v) for k, v in stored.items())


def test_auto_weights_are_the_ema_and_fine_tuning_drops_the_classifier(folder_run):
    ema = read_checkpoint(folder_run / "checkpoints" / "last.safetensors").weights("ema")
    assert load_run(folder_run).weights == "ema"
    model = create_model("test_resnet", num_classes=7, pretrained=folder_run)  # another task: a fresh classifier
    assert model.head.fc.weight.shape[0] == 7
    assert torch.equal(model.state_dict()["stem.conv.weight"], ema["stem.conv.weight"])
    with pytest.raises(ValueError, match="run of test_resnet, not of test_convnext"):
        create_model("test_convnext", pretrained=folder_run)


def test_runs_without_ema_have_only_raw_weights(tmp_path):
    cfg = TrainConfig(**TINY, shapes_train=32, shapes_val=16, epochs=1, ema=False, out=str(tmp_path), name="raw")
    run_dir = fit(cfg, log=lambda *_: None).run_dir
    assert load_run(run_dir).weights == "model"
    with pytest.raises(ValueError, match="no ema weights"):
        load_run(run_dir, weights="ema")
    with pytest.raises(ValueError, match="no ema weights"):
        create_model("test_resnet", num_classes=10, pretrained=run_dir, pretrained_weights="ema")


def test_eval_policy_comes_from_the_config_and_the_model():
    assert eval_policy(TrainConfig(model="resnet18")).test_res == 32  # synthetic-shapes: its own size, whole scene
    assert eval_policy(TrainConfig(model="resnet18")).crop_pct == 1.0
    photo = eval_policy(TrainConfig(model="efficientnet_b3", data="/data/imagenette"))
    assert (photo.train_res, photo.test_res, photo.crop_pct) == (300, 300, 0.875)  # B3: the paper's 300 px
    atto = eval_policy(TrainConfig(model="convnext_atto", data="/x", train_res=64))
    assert atto.test_res == 8 * round(64 * 288 / 224 / 8)  # the model's train -> test ratio


def test_eval_and_predict_take_a_device(folder_run, capsys):
    image = str(next((folder_run.parent / "data" / "val").rglob("*.png")))
    assert main(["eval", str(folder_run), "--workers", "0", "--device", "cpu"]) == 0
    assert main(["predict", "--checkpoint", str(folder_run), image, "--device", "cpu"]) == 0
    capsys.readouterr()
    if not torch.cuda.is_available():
        assert main(["eval", str(folder_run), "--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert "CUDA is not available" in err and err.count("\n") == 1


def test_a_run_cut_by_max_steps_resumes_to_its_end_from_the_cli(tmp_path, capsys):
    cfg = TrainConfig(**TINY, shapes_train=64, shapes_val=16, epochs=2, max_steps=3, out=str(tmp_path), name="cut")
    run = fit(cfg, log=lambda *_: None).run_dir
    assert read_checkpoint(run / "checkpoints" / "last.safetensors").state.batch == 3
    assert main(["train", "--resume", str(run)]) == 0  # --max-steps limited the first invocation only
    state = read_checkpoint(run / "checkpoints" / "last.safetensors").state
    assert (state.epoch, state.batch, len(state.history)) == (2, 0, 2)


PREVIOUS = Path(__file__).parent / "data" / "previous_run" / "run"


def test_a_run_folder_of_the_previous_release_loads_and_resumes_to_the_same_weights(tmp_path):
    """A run folder written by the release before the methods moved into ``convscale.methods`` and the run into
    ``convscale.runs`` (flat config keys; SAM, AGC and an EMA decay set; stopped by ``--max-steps`` inside epoch 2)
    loads with the methods' settings nested, and resumes to the very weights this release gets uninterrupted. One
    thread, as the folder was written with (another count sums in another order)."""
    import shutil

    import yaml

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _resume_previous(tmp_path, yaml.safe_load((PREVIOUS / "config.yaml").read_text()), shutil.copytree)
    finally:
        torch.set_num_threads(threads)


def _resume_previous(tmp_path: Path, flat: dict, copytree) -> None:
    old = Path(copytree(PREVIOUS, tmp_path / "old" / "run"))
    run = load_run(old)
    assert (run.config.sam.rho, run.config.agc.clip_factor, run.config.ema.decay) == (0.05, 0.02, 0.99)
    assert (run.state.epoch, run.state.batch) == (1, 2)
    fit(resume=old, log=lambda *_: None)
    resumed = read_checkpoint(old / "checkpoints" / "last.safetensors")
    assert resumed.state.epoch == 3 and resumed.config_obj == run.config.replace(max_steps=0)

    # this release, uninterrupted, gets the same weights: on the kind of CPU and the torch the folder was written
    # with (``made_on.json``; another kind sums in another order, and the comparison would say nothing of the code)
    import json

    import convscale.utils.machine as m

    made = json.loads((PREVIOUS.parent / "made_on.json").read_text())
    here = m.machine()
    if (here.cpu, list(here.isa), torch.__version__) != (made["cpu"], made["isa"], made["torch"]):
        pytest.skip(f"the folder was written on {made['cpu']} {made['isa']}; this is {here.describe()}")
    flat.update(out=str(tmp_path / "new"), name="run", max_steps=0)
    straight = fit(TrainConfig(**flat), log=lambda *_: None).run_dir
    assert _same_weights(resumed, read_checkpoint(straight / "checkpoints" / "last.safetensors"))


def _same_weights(a, b) -> bool:
    for part in ("model", "ema"):
        x, y = a.weights(part), b.weights(part)
        if x.keys() != y.keys() or not all(torch.equal(x[k], y[k]) for k in x):
            return False
    return True
