"""One source syntax for every command (``convscale.resolve``): a registered model with a tag from the hub cache, an
``hf-hub:`` repository, a weights file, a run folder, its checkpoint file and an architecture YAML each give the same
model and preprocessing to ``eval``, ``predict``, ``export``, ``deploy``, ``bench`` and ``train --teacher`` /
``--pretrained`` — or one line saying why that kind does not apply. And ``convscale.evaluate`` / ``predict`` print
the CLI's numbers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import convscale
from conftest import write_hub_file
from convscale.arch import write_arch
from convscale.cli import main
from convscale.data.shapes import SHAPE_CLASSES
from convscale.registry import counterpart, get_entry
from convscale.train import TrainConfig, fit
from convscale.utils.keymap import expand_keys
from convscale.weights import table

REPO = "convscale/test-resnet-shapes"
TAG = "test_resnet.cs_shapes"
SMALL = dict(data="synthetic-shapes", shapes_train=64, shapes_val=32, shapes_res=32, batch_size=16, workers=0)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sources")
    cfg = TrainConfig(model="test_resnet", epochs=1, ema=False, out=str(out), name="run", **SMALL)
    return fit(cfg, log=lambda *_: None).run_dir


@pytest.fixture
def kinds(run, tmp_path, hub_cache, monkeypatch) -> dict[str, str]:
    """The six kinds of source, all of the run's model (the architecture file: its architecture, untrained)."""
    src = convscale.resolve(run)
    state = {k: v for k, v in src.model.state_dict().items() if not k.endswith("num_batches_tracked")}
    timm_keys = expand_keys(src.model, counterpart("test_resnet", "timm").keys, "timm")
    p = src.policy
    pretrained_cfg = {
        "input_size": [3, p.train_res, p.train_res], "test_input_size": [3, p.test_res, p.test_res],
        "crop_pct": p.crop_pct, "interpolation": p.interpolation, "mean": list(p.mean), "std": list(p.std),
    }  # fmt: skip
    config = {"architecture": "test_resnet", "num_classes": 10, "label_names": list(SHAPE_CLASSES)}
    config["pretrained_cfg"] = pretrained_cfg
    timm_state = {timm_keys[k]: v.contiguous() for k, v in state.items()}
    for name, write in (
        ("model.safetensors", lambda f: save_file(timm_state, str(f))),
        ("config.json", lambda f: f.write_text(json.dumps(config))),
    ):
        write_hub_file(hub_cache, REPO, name, write)
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights_dir / "model.safetensors"))
    (weights_dir / "config.json").write_text(json.dumps(config))
    # a published tag of the tiny model, its file in the hub cache (the table gains one record for this test)
    records, defaults = table._table()
    record = table.Weights(
        model="test_resnet", tag="cs_shapes", source="timm", hub_id="timm/" + TAG, url=None, sha256=None,
        input_size=p.train_res, test_input_size=p.test_res, crop_pct=p.crop_pct, test_crop_pct=None,
        crop_mode="center", interpolation=p.interpolation, mean=p.mean, std=p.std, num_classes=10,
        label_set="custom", top1=None, top1_res=None, license=None, keys="",
    )  # fmt: skip
    monkeypatch.setattr(table, "_table", lambda: ({**records, TAG: record}, defaults))
    write_hub_file(hub_cache, "timm/" + TAG, "model.safetensors", lambda f: save_file(timm_state, str(f)))
    arch = write_arch(tmp_path / "arch.yaml", get_entry("test_resnet").config, "test_resnet")
    return {
        "tag": TAG, "hub": "hf-hub:" + REPO, "file": str(weights_dir / "model.safetensors"), "run": str(run),
        "checkpoint": str(run / "checkpoints" / "last.safetensors"), "arch": str(arch),
    }  # fmt: skip


def _line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _logits(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(0)
    with torch.no_grad():
        return model.eval()(torch.randn(2, 3, 32, 32))


def test_every_kind_resolves_to_the_same_model_and_preprocessing(kinds):
    want = convscale.resolve(kinds["run"])
    kinds_seen = {}
    for kind, source in kinds.items():
        src = convscale.resolve(source)
        kinds_seen[kind] = src.kind
        assert src.name == ("test_resnet" if kind != "arch" else source), kind
        shapes = {k: v.shape for k, v in src.model.state_dict().items() if not k.startswith("head.fc")}
        assert shapes == {k: v.shape for k, v in want.model.state_dict().items() if not k.startswith("head.fc")}
        if kind == "arch":  # an architecture: untrained, ImageNet's preprocessing at the model's own sizes
            assert src.weights == "random" and src.policy.crop_pct == 0.875
            continue
        assert torch.equal(_logits(src.model), _logits(want.model)), kind
        assert src.policy == dataclasses.replace(want.policy, crop_mode=src.policy.crop_mode), kind
        assert len(src.labels) == 10
    assert kinds_seen == {"tag": "tag", "hub": "hub", "file": "file", "run": "run", "checkpoint": "run", "arch": "arch"}


def test_eval_predict_export_deploy_bench_take_every_kind(kinds, run, tmp_path, capsys):
    image = tmp_path / "one.png"
    from PIL import Image

    Image.new("RGB", (40, 40), (200, 30, 30)).save(image)
    for kind, source in kinds.items():
        data = ["--data", "synthetic-shapes"] if kind in ("hub", "file", "tag", "arch") else []
        code = main(["eval", source, *data, "--workers", "0"])
        out, err = capsys.readouterr()
        if kind in ("tag", "arch"):  # no class names to match the data's folders with: one line, why
            assert code == 2 and "has no class folder names" in _line(err), (kind, err)
        else:
            assert code == 0 and "top-1" in out, (kind, err)
        assert main(["predict", "--model", source, str(image)]) == 0, kind
        assert capsys.readouterr().out.startswith(f"{image}: "), kind
        assert main(["export", source, "--out", str(tmp_path / f"{kind}.pt2")]) == 0, kind
        assert "-> " in capsys.readouterr().out
        deploy = ["deploy", source, "--out", str(tmp_path / f"d-{kind}"), "--runtimes", "eager", "--batch", "2"]
        assert (
            main(
                [*deploy, "--min-time", "0", "--val", "synthetic-shapes"]
                if kind == "run"
                else [*deploy, "--min-time", "0"]
            )
            == 0
        ), kind
        assert "chosen: eager" in capsys.readouterr().out
        bench = ["bench", source, "--res", "32", "--batch", "2", "--warmup", "0", "--min-iters", "1", "--min-time", "0"]
        assert main(bench) == 0, kind
        assert ("test_resnet" if kind != "arch" else "arch.yaml") in capsys.readouterr().out


def test_train_teacher_and_pretrained_take_every_kind(kinds, tmp_path, capsys):
    base = ["train", "--model", "test_resnet", "--epochs", "1", "--out", str(tmp_path), "--shapes-train", "32"]
    base += ["--shapes-val", "16", "--batch-size", "16", "--workers", "0"]
    for kind, source in kinds.items():
        code = main([*base, "--teacher", source, "--name", f"t-{kind}"])
        out, err = capsys.readouterr()
        if kind == "arch":
            assert code == 2 and "has no trained weights" in _line(err), err
        else:
            assert code == 0 and "done:" in out, (kind, err)
        pretrained = source if kind not in ("tag",) else "cs_shapes"
        code = main([*base, "--pretrained", pretrained, "--name", f"p-{kind}"])
        out, err = capsys.readouterr()
        if kind == "arch":
            assert code == 2 and "an architecture file, which holds no weights" in _line(err), err
        else:
            assert code == 0 and "done:" in out, (kind, err)


def test_evaluate_and_predict_give_the_cli_its_numbers(run, tmp_path, capsys):
    r = convscale.evaluate(run, workers=0)
    assert r.count == 32 and 0 <= r.top1 <= 100 and r.top1 <= r.top5
    assert sum(r.confusion.sum(1).tolist()) == r.count and set(r.per_class) <= set(SHAPE_CLASSES)
    assert main(["eval", str(run), "--workers", "0", "--confusion", str(tmp_path / "c.csv")]) == 0
    out = capsys.readouterr().out
    assert f"top-1 {r.top1:.2f}%  top-5 {r.top5:.2f}%  loss {r.loss:.4f}  ({r.count} of {r.expected} images)" in out
    assert (tmp_path / "c.csv").read_bytes().decode() == r.confusion_csv()
    from PIL import Image

    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32), (20, 200, 30)).save(image)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    found = convscale.predict(run, [image, tmp_path / "bad.jpg"], topk=3)
    assert [p.error is None for p in found] == [True, False] and len(found[0].top) == 3
    assert main(["predict", "--run", str(run), str(image)]) == 0
    line = capsys.readouterr().out.strip()
    assert line == f"{image}: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in convscale.predict(run, [image])[0].top)


def test_bad_sources_are_one_line(tmp_path, capsys):
    (tmp_path / "w.safetensors").write_bytes(b"x")
    for source, words in (
        (str(tmp_path / "nope"), "no such run folder or file"),
        (str(tmp_path / "w.safetensors"), "does not say which model"),
        ("no_such_model", "no_such_model"),
    ):
        assert main(["export", source, "--out", str(tmp_path / "x.pt2")]) == 2
        assert words in _line(capsys.readouterr().err), source
