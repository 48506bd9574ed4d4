"""Distillation and SAM: the losses against hand-computed values, the teacher shown the student's very batch and
never trained, SAM's step against its formula in float64, and the combinations refused in one line."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from convscale.cli import main
from convscale.methods.distill import DistillHook, hard_loss, kd_loss, kl_loss
from convscale.methods.sam import perturb, restore, sam_gradient
from convscale.runs.checkpoint import read_checkpoint
from convscale.train import TrainConfig, fit
from convscale.train.steps import StepSettings, gradient, train_step

TINY = dict(model="test_resnet", batch_size=16, shapes_train=64, shapes_val=32, shapes_res=32, workers=0)


def _softmax(v: list[float]) -> list[float]:
    e = [math.exp(x - max(v)) for x in v]
    return [x / sum(e) for x in e]


STUDENT, TEACHER = [[1.0, 2.0, 0.5]], [[3.0, 0.0, 1.0]]


def test_kl_against_its_definition():
    t = 2.0
    p, q = _softmax([x / t for x in TEACHER[0]]), _softmax([x / t for x in STUDENT[0]])
    want = t * t * sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q, strict=True))
    assert kl_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), t).item() == pytest.approx(want, rel=1e-6)


def test_kd_and_hard_against_their_definitions():
    s, t, y = torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor([1])
    ce = -math.log(_softmax(STUDENT[0])[1])  # the label, class 1
    ce_teacher = -math.log(_softmax(STUDENT[0])[0])  # the teacher's top-1, class 0
    kl = kl_loss(s, t, 4.0).item()
    assert kd_loss(s, t, y, alpha=0.3, temperature=4.0).item() == pytest.approx(0.3 * ce + 0.7 * kl, rel=1e-6)
    assert hard_loss(s, t, y, alpha=0.25).item() == pytest.approx(0.25 * ce + 0.75 * ce_teacher, rel=1e-6)
    soft = torch.tensor([[0.2, 0.8, 0.0]])  # mixup's soft targets
    want = -(0.2 * math.log(_softmax(STUDENT[0])[0]) + 0.8 * math.log(_softmax(STUDENT[0])[1]))
    assert kd_loss(s, t, soft, alpha=1.0).item() == pytest.approx(want, rel=1e-6)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    return fit(TrainConfig(**TINY, epochs=1, out=str(out), name="teacher"), log=lambda *_: None).run_dir


def test_function_matching_shows_the_teacher_the_students_batch(teacher_run, tmp_path, monkeypatch):
    """With mixup, CutMix and RandAugment on, every teacher forward gets the very tensor the student got."""
    from convscale.methods import distill

    seen = {"student": [], "teacher": []}
    real_teacher = distill.Teacher.__call__

    def spy_teacher(self, images):
        seen["teacher"].append(images.clone())
        return real_teacher(self, images)

    monkeypatch.setattr(distill.Teacher, "__call__", spy_teacher)
    from convscale.train import loop

    real_step = loop.train_step

    def spy_step(model, images, labels, optimizer, *how):
        seen["student"].append(images.clone())
        return real_step(model, images, labels, optimizer, *how)

    monkeypatch.setattr(loop, "train_step", spy_step)
    cfg = TrainConfig(
        **TINY, epochs=1, teacher=str(teacher_run), distill="function-matching", mixup=0.8, cutmix=1.0,
        randaug_n=2, out=str(tmp_path), name="student",
    )  # fmt: skip
    result = fit(cfg, log=lambda *_: None)
    assert len(seen["teacher"]) == len(seen["student"]) == 4
    assert all(torch.equal(a, b) for a, b in zip(seen["teacher"], seen["student"], strict=True))
    assert "teacher_s" in result.metrics


def test_the_teacher_never_changes_and_is_not_optimized(teacher_run, tmp_path):
    from convscale.train import loop
    from convscale.train.distributed import setup

    before = read_checkpoint(teacher_run / "checkpoints" / "last.safetensors").weights("ema")
    cfg = TrainConfig(**TINY, epochs=2, teacher=str(teacher_run), out=str(tmp_path), name="kd")
    t = loop.prepare(dataclasses.replace(cfg, name="probe"), setup("cpu"), None, None, lambda *_: None)
    optimized = {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    teacher = next(h.teacher for h in t.hooks if isinstance(h, DistillHook))
    assert not optimized & {id(p) for p in teacher.model.parameters()}
    assert not any(p.requires_grad for p in teacher.model.parameters()) and not teacher.model.training
    fit(cfg, log=lambda *_: None)
    assert all(torch.equal(v, before[k]) for k, v in teacher.model.state_dict().items() if k in before)
    assert all(torch.equal(before[k], v) for k, v in _teacher_after(cfg).items())


def _teacher_after(cfg: TrainConfig) -> dict[str, torch.Tensor]:
    from convscale.runs import load_run

    return load_run(cfg.distill.teacher).model.state_dict()


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()


@pytest.mark.parametrize("adaptive", [False, True])
def test_a_sam_step_is_the_formula_in_float64(adaptive):
    rho, lr = 0.3, 0.1
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 2, (8,))
    net = _tiny_net()
    w = [p.detach().clone() for p in net.parameters()]

    def grads(weights):
        probe = _tiny_net()
        with torch.no_grad():
            for p, v in zip(probe.parameters(), weights, strict=True):
                p.copy_(v)
        loss = nn.functional.cross_entropy(probe(x), y)
        return torch.autograd.grad(loss, list(probe.parameters()))

    g = grads(w)
    t = [wi.abs() if adaptive else torch.ones_like(wi) for wi in w]
    norm = torch.sqrt(sum(((ti * gi) ** 2).sum() for ti, gi in zip(t, g, strict=True)))
    e = [rho * ti * ti * gi / norm for ti, gi in zip(t, g, strict=True)]
    g2 = grads([wi + ei for wi, ei in zip(w, e, strict=True)])
    want = [wi - lr * gi for wi, gi in zip(w, g2, strict=True)]

    opt = torch.optim.SGD(net.parameters(), lr=lr)
    train_step(net, x, y, opt, _sam(rho, adaptive))
    for p, v in zip(net.parameters(), want, strict=True):
        torch.testing.assert_close(p.detach(), v, rtol=1e-10, atol=1e-12)  # float32 would miss by ~1e-7


def _sam(rho: float, adaptive: bool = False) -> StepSettings:
    return StepSettings(gradient=sam_gradient(gradient, rho, adaptive))


def test_sam_with_rho_0_is_the_plain_optimizer():
    x, y = torch.randn(8, 4, dtype=torch.float64), torch.randint(0, 2, (8,))
    plain, sam = _tiny_net(), _tiny_net()
    for net, setting in ((plain, StepSettings()), (sam, _sam(0.0))):
        opt = torch.optim.AdamW(net.parameters(), lr=0.01)
        for _ in range(3):
            train_step(net, x, y, opt, setting)
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), sam.parameters(), strict=True))


def test_perturb_and_restore_give_the_weights_back_exactly():
    net = _tiny_net()
    w = [p.detach().clone() for p in net.parameters()]
    nn.functional.cross_entropy(net(torch.randn(5, 4, dtype=torch.float64)), torch.tensor([0, 1, 0, 1, 1])).backward()
    params = list(net.parameters())
    originals = perturb(params, 0.7)
    assert not all(torch.equal(a, b) for a, b in zip(params, w, strict=True))
    restore(params, originals)
    assert all(torch.equal(a, b) for a, b in zip(params, w, strict=True))


def test_sam_keeps_the_batch_norm_statistics_of_one_pass():
    """The second pass at the perturbed weights must not move BN's running statistics a second time."""
    torch.manual_seed(0)
    a = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])
    a(x)
    b = __import__("copy").deepcopy(a)
    train_step(a, x, y, torch.optim.SGD(a.parameters(), lr=0.0))
    train_step(b, x, y, torch.optim.SGD(b.parameters(), lr=0.0), _sam(0.5))
    assert torch.equal(a[1].running_mean, b[1].running_mean) and torch.equal(a[1].running_var, b[1].running_var)


def test_bad_combinations_are_one_line_and_exit_2(teacher_run, tmp_path, capsys):
    from conftest import make_image_folder

    folder = make_image_folder(tmp_path / "three", res=32)  # 3 classes; the teacher knows synthetic-shapes' 10
    common = ["--model", "test_resnet", "--epochs", "1", "--batch-size", "8", "--workers", "0", "--out", str(tmp_path)]
    cases = [
        (["--data", str(folder), "--teacher", str(teacher_run)], "predicts 10 classes"),
        (["--distill", "kd"], "distillation needs a teacher"),
        (["--sam-adaptive"], "ASAM needs a radius"),
        (["--sam", "0.05", "--amp", "fp16"], "SAM with --amp fp16 is not supported"),
        (["--teacher", "test_resnet:nope"], "nope"),
    ]
    for argv, words in cases:
        assert main(["train", *common, *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, (argv, err)
