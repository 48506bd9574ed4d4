"""Every ``convscale COMMAND ... --flag`` the README and the docs show names a flag that command has: a flag renamed
or removed fails here, not in a reader's terminal."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from convscale.cli.app import _parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_COMMAND = re.compile(r"convscale ([a-z][a-z-]*)((?: [^`\n|]*)?)")


def _subparsers(parser) -> dict:
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def _flags(parser) -> set[str]:
    """The parser's flags and those of its sub-commands (``search scaling|stages``)."""
    found = {s for a in parser._actions for s in a.option_strings}
    nested = any(a.__class__.__name__ == "_SubParsersAction" for a in parser._actions)
    for sub in _subparsers(parser).values() if nested else ():
        found |= _flags(sub)
    return found


def _uses() -> list[tuple[str, str, str]]:
    """(file:line, command, flag) of every flag written after ``convscale COMMAND`` in a code span or block."""
    commands = _subparsers(_parser())
    uses = []
    for path in DOCS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in _COMMAND.finditer(line):
                command, rest = match.group(1), match.group(2)
                if command not in commands:
                    continue  # prose ("convscale keeps ...")
                try:
                    words = shlex.split(rest.split("#")[0], posix=True)
                except ValueError:
                    words = rest.split()
                for word in words:
                    if re.fullmatch(r"--[a-z][a-z0-9-]*(=.*)?", word):
                        uses.append((f"{path.relative_to(ROOT)}:{number}", command, word.split("=")[0]))
    return uses


def test_the_docs_show_flags():
    assert len(_uses()) > 50  # the scan finds the documented commands (a broken pattern would find none)


@pytest.mark.parametrize("command", sorted({c for _, c, _ in _uses()}))
def test_every_documented_flag_exists(command):
    parser = _subparsers(_parser())[command]
    known = _flags(parser) | {"--help"}
    uses = [(where, flag) for where, c, flag in _uses() if c == command]
    missing = [f"{where}: convscale {command} {flag}" for where, flag in uses if flag not in known]
    assert not missing, "documented flags that do not exist:\n" + "\n".join(missing)
