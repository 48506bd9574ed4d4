"""MkDocs hook: the results pages show the CSVs and plots the benchmarks write under ``results/``, outside the docs.

A results page links its files as they lie in the repository (``../../results/STUDY/FILE``, so the link works on
GitHub too); this hook adds every file of ``results/`` to the site under ``results/data/`` and points those links
there, so ``mkdocs build --strict`` checks that each one exists.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
SITE_PREFIX = "results/data"
_LINK = re.compile(r"\]\(((?:\.\./)+results/[^)\s]*)\)")


def on_files(files, config):
    for path in sorted(RESULTS.rglob("*")):
        if path.is_file() and path.suffix != ".md":  # notes beside the data are read on GitHub, not built as pages
            rel = path.relative_to(RESULTS).as_posix()
            files.append(File.generated(config, f"{SITE_PREFIX}/{rel}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files):
    """A link that leads, from the page's place in the repository (``docs/...``), into ``results/`` -> the same
    file as the site holds it; links between pages are left alone."""
    here = posixpath.dirname(page.file.src_uri)

    def to_site(match):
        in_repo = posixpath.normpath(posixpath.join("docs", here, match.group(1)))
        if not in_repo.startswith("results/"):
            return match.group(0)
        target = posixpath.join(SITE_PREFIX, in_repo.removeprefix("results/"))
        return "](" + posixpath.relpath(target, here or ".") + ")"

    return _LINK.sub(to_site, markdown)
