"""One recipe system: the papers' numbers live on the model (``ModelConfig.recipe``, NFNet's RandAugment fields), in
the trainer's vocabulary, and every shipped YAML recipe is checked against them."""

from __future__ import annotations

import pytest

from convscale.config import Recipe
from convscale.train import load_config
from convscale.train.recipes import list_recipes, published_values, read_recipe, recipe_differences


@pytest.mark.parametrize("name", list_recipes())
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
    from convscale.train.recipes import recipe_path

    return recipe_path(name).read_text()


def test_recipes_use_the_trainers_vocabulary():
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adamw, rmsprop"):
        Recipe(optimizer="sgd_nesterov", lr=0.1, batch_size=256, weight_decay=0, epochs=1, warmup_epochs=0,
               schedule="cosine")  # fmt: skip
    assert published_values("convnext_tiny")["randaug_n"] == 2 and published_values("convnext_tiny")["randaug_m"] == 9
    assert (published_values("nfnet_f3")["randaug_n"], published_values("nfnet_f3")["randaug_m"]) == (4, 15)
