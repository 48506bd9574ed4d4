"""``docs/models.md``, generated from the registry — never typed: every registered variant with its parameters,
GMACs at its own test size (the shipped count table: counted on the meta device), its default published weights, and
what the suite checks it against (reference logits of timm, torchvision or AsymmNet's official port in
``tests/parity/``; parameter and MAC counts of timm or torchvision in ``tests/data/reference_models.csv``).

    python scripts/models_page.py            # writes docs/models.md
    python scripts/models_page.py --check    # exit 1 when docs/models.md is not what the registry gives

``tests/test_docs_pages.py`` fails when the page is out of date (a variant added without regenerating it).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "models.md"
LIBRARIES = ("timm", "torchvision", "asymmnet")


def _checked(name: str, fixtures: set[tuple[str, str]], counted: set[tuple[str, str]]) -> str:
    from convscale.registry import counterpart

    said = []
    for library in LIBRARIES:
        c = counterpart(name, library)
        if c is None or c.name is None:
            continue
        if (library, c.name) in fixtures:
            said.append(f"logits: {library} `{c.name}`")
        if (library, name) in counted or (library, c.name) in counted:
            said.append(f"params & MACs: {library}")
    return "; ".join(said) or "—"


def render() -> str:
    """The page's text."""
    import convscale
    from convscale.weights.table import default_tag

    fixtures = {tuple(p.stem.split("__", 1)) for p in (ROOT / "tests" / "parity").glob("*__*.json")}
    with open(ROOT / "tests" / "data" / "reference_models.csv") as f:
        counted = {(row["source"], row["model"]) for row in csv.DictReader(f)}
    lines = [
        "# Models",
        "",
        "Every registered model (`convscale list`), generated from the registry by `scripts/models_page.py`. "
        "Parameters and GMACs are counted on the meta device at the model's own test size; *checked against* says "
        "what the test suite compares the model with.",
        "",
    ]
    families: dict[str, list[str]] = {}
    for name in convscale.list_models():
        families.setdefault(convscale.model_info(name).family, []).append(name)
    for family in sorted(families):
        header = "| model | params (M) | GMACs | train / test px | default weights | checked against |"
        lines += [f"## {family}", "", header, "|---|---|---|---|---|---|"]
        for name in families[family]:
            info = convscale.model_info(name)
            tag = default_tag(name)
            weights = f"`{name}.{tag}`" if tag else "—"
            lines.append(
                f"| `{name}` | {info.params / 1e6:.2f} | {info.gmacs_test:.3f} | {info.train_res} / {info.test_res} "
                f"| {weights} | {_checked(name, fixtures, counted)} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description="write (or --check) docs/models.md from the registry")
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    text = render()
    if args.check:
        if not PAGE.is_file() or PAGE.read_text() != text:
            print(f"{PAGE} is out of date: run python scripts/models_page.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
