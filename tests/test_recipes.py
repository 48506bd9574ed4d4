"""One recipe system: the papers' numbers live on the model (``ModelConfig.recipe``, NFNet's RandAugment fields), in
the trainer's vocabulary, and every shipped YAML recipe is checked against them."""

from __future__ import annotations

import pytest

from convscale.config import Recipe
from convscale.runs.recipes import list_recipes, published_values, read_recipe, recipe_differences
from convscale.train import load_config

TRAINING = [n for n in list_recipes() if not n.endswith(("_ft", "_distill"))]
FINE_TUNING = [n for n in list_recipes() if n.endswith("_ft")]


@pytest.mark.parametrize("name", TRAINING)
def test_shipped_recipes_agree_with_their_models_published_recipe(name):
    model = read_recipe(name)["model"]
    assert published_values(model), f"{model} carries no published recipe to check {name}.yaml against"
    assert recipe_differences(name) == []
    cfg = load_config(name)
    assert cfg.optimizer == published_values(model)["optimizer"]  # one vocabulary: the trainer reads it as is


def test_a_departure_from_the_published_recipe_is_found(tmp_path):
    recipe = tmp_path / "f0.yaml"
    recipe.write_text(
        (read_recipe_text("nfnet_f0")).replace("randaug_m: 5", "randaug_m: 10").replace("lr: 1.6", "lr: 3")
    )
    assert recipe_differences(recipe) == ["lr: 0.1875 vs 0.1", "randaug_m: 10 vs 5"]


def read_recipe_text(name: str) -> str:
    from convscale.runs.recipes import recipe_path

    return recipe_path(name).read_text()


def test_recipes_use_the_trainers_vocabulary():
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adamw, rmsprop"):
        Recipe(optimizer="sgd_nesterov", lr=0.1, batch_size=256, weight_decay=0, epochs=1, warmup_epochs=0,
               schedule="cosine")  # fmt: skip
    assert published_values("convnext_tiny")["randaug_n"] == 2 and published_values("convnext_tiny")["randaug_m"] == 9
    assert published_values("convnext_tiny")["randaug_ops"] == "timm"  # timm's rand-m9-mstd0.5-inc1
    assert (published_values("nfnet_f3")["randaug_n"], published_values("nfnet_f3")["randaug_m"]) == (4, 15)


@pytest.mark.parametrize("name", FINE_TUNING)
def test_fine_tuning_recipes_start_from_the_default_weights_at_a_low_rate(name):
    from convscale.weights import default_tag

    cfg = load_config(name, data="/photos")
    assert cfg.pretrained is True and default_tag(cfg.model)
    raw = read_recipe(name)
    per_256 = raw["lr"] * 256 / raw["adapt"]["batch_size"]
    assert per_256 <= published_values_or(cfg.model) / 5  # well under the rate training from scratch uses
    assert cfg.finetune.layer_decay is not None


def published_values_or(model: str) -> float:
    """The published lr per 256 images; 4e-3 × 256 / 4096 (ConvNeXt's AdamW rate) where the model carries none."""
    values = published_values(model)
    return values["lr"] * 256 / values["batch_size"] if values else 4e-3 * 256 / 4096 * 4


def test_the_convnext_fine_tuning_recipe_is_the_papers():
    """ConvNeXt Table 6 / TRAINING.md, 22K -> 1K (shared/reference PAPERS.md): AdamW 5e-5 at 512, wd 1e-8, 30
    epochs, no warm-up, layer decay 0.8, no mixup/CutMix, drop path 0.0 for T."""
    raw = read_recipe("convnext_tiny_ft")
    assert raw["adapt"] == {"batch_size": 512, "epochs": 30}
    want = {"optimizer": "adamw", "lr": 5e-5, "batch_size": 512, "weight_decay": 1e-8, "epochs": 30,
            "warmup_epochs": 0, "layer_decay": 0.8, "mixup": 0.0, "cutmix": 0.0, "drop_path_rate": 0.0}  # fmt: skip
    assert {k: raw[k] for k in want} == want


def test_the_distillation_recipe_names_a_published_teacher_and_function_matching():
    cfg = load_config("mobilenetv3_large_100_distill", data="/photos")
    d = cfg.distill
    assert (d.teacher, d.loss_mode, d.loss_temperature) == ("convnext_tiny", "function-matching", 1.0)
    assert cfg.model == "mobilenetv3_large_100" and cfg.mixup > 0


def test_the_nfnet_sam_recipe_is_f0s_plus_sam():
    assert recipe_differences("nfnet_f0_sam") == []  # the paper's F0 numbers, unchanged
    assert load_config("nfnet_f0_sam").sam.rho == 0.05 and load_config("nfnet_f0").sam.rho is None
