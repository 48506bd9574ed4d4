"""Generated documentation stays generated: ``docs/models.md`` is what ``scripts/models_page.py`` renders from the
registry now, and the check notices a variant added without regenerating the page."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import convscale

ROOT = Path(__file__).resolve().parent.parent


def _page_module():
    spec = importlib.util.spec_from_file_location("models_page", ROOT / "scripts" / "models_page.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_models_page_is_what_the_registry_gives():
    page = _page_module()
    assert page.PAGE.read_text() == page.render(), "docs/models.md is out of date: python scripts/models_page.py"
    for name in convscale.list_models():
        assert f"| `{name}` |" in page.PAGE.read_text()


def test_a_variant_added_without_regenerating_fails_the_check(monkeypatch):
    """A variant registered as a user or a new family would (here: B0 at twice the width) makes the page stale."""
    import dataclasses

    from convscale import registry

    page = _page_module()
    b0 = registry.get_entry("efficientnet_b0")
    wide = dataclasses.replace(b0.config, width_mult=2.0)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # the registration is undone afterwards
    convscale.register_model("efficientnet_b0_wide", b0.family, wide, b0.build)
    assert "| `efficientnet_b0_wide` |" in page.render()
    assert page.PAGE.read_text() != page.render()
