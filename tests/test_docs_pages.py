"""Generated documentation stays generated: ``docs/models.md`` is what ``scripts/models_page.py`` renders from the
registry now, and the check notices a variant added without regenerating the page."""

from __future__ import annotations

import importlib.util
import re
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


README = ROOT / "README.md"
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_short_and_holds_no_run_log():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "dated runs go on a results page of the docs"


def test_every_link_of_the_readme_and_the_changelog_resolves():
    """Relative links lead to a file of the repository (the site's own links are checked by ``mkdocs --strict``)."""
    for page in (README, ROOT / "CHANGELOG.md"):
        for target in _LINK.findall(page.read_text()):
            if re.match(r"[a-z]+://|#|mailto:", target):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.is_file() and path.is_relative_to(ROOT), f"{page.name}: the link {target} leads nowhere"
