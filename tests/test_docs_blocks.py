"""The command blocks of the README and the guides run, at small size, as a reader would copy them.

Every ``console``/``bash``/``sh``/``python`` block of a page is run in order, in one sandbox per page (a home folder
holding the folders the pages name, ``~/photos`` and ``~/data/...``, tiny image folders; ``photo.jpg``, ``cat.jpg``,
``dog.jpg`` and ``photos/`` in the working folder), unless the line before it says why it is not:
``<!-- not run: REASON -->`` (a download, GPUs, two machines, a server that runs until stopped). A block preceded by
``<!-- file: NAME -->`` is written to the sandbox as ``NAME`` (a recipe the next block reads).

*Small size* is the reader's command with flags appended (argparse keeps the last value of a flag given twice):
one epoch of a few dozen images at 32 px, a tiny search, a short timing, two runtimes for ``deploy`` (every runtime is
built in ``tests/test_runtime_table.py``) — the table ``SMALL`` below, the only place where a documented command is
changed. Python blocks run in this process with the same sizes forced on
``load_config`` and ``bench.run``. A command the runner does not know (``pip``, ``make``, ``curl``) in a block that is
not marked fails, so a new block is either run or says why not.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import make_image_folder

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "docs" / "index.md", *sorted((ROOT / "docs" / "guides").glob("*.md"))]
ALL_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LANGS = {"console", "bash", "sh", "shell", "python"}
_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
_MARK = re.compile(r"<!-- (not run|file): (.+?) -->")

TRAIN = ["--epochs", "1", "--batch-size", "8", "--workers", "0", "--train-res", "32", "--test-res", "32"]
#: flags appended to each documented command: the same command at small size
SMALL = {
    "train": [*TRAIN, "--shapes-train", "64", "--shapes-val", "32"],
    "eval": ["--workers", "0"],
    "bench": ["--res", "32", "--batch", "2", "--min-iters", "1", "--min-time", "0", "--warmup", "1"],
    "deploy": ["--batch", "2", "--min-time", "0.05", "--calibration-images", "16", "--runtimes", "eager,onnxruntime"],
    "search scaling": ["--base", "test_efficientnet", "--res", "32", "--max-candidates", "1", "--phi", "1",
                       "--step", "0.25", "--tolerance", "0.3",
                       "--proxy-epochs", "1", "--proxy-batch", "8", "--seeds", "1", "--min-time", "0.01"],
    "search stages": ["--base", "test_efficientnetv2", "--res", "32", "--trials", "2", "--proxy-epochs", "1",
                      "--proxy-batch", "8", "--seeds", "1", "--min-time", "0.01", "--stages", "1"],
    "shards": ["--workers", "0"],
    "cache": ["--workers", "0"],
    "signal": ["--res", "32", "--batch", "2"],
}  # fmt: skip
#: what a resumed run may be given (its own config is kept; other flags are refused by design)
RESUMED = ["--workers", "0"]


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    code: str
    mark: tuple[str, str] | None  # ("not run", reason) | ("file", name) | None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a page, each with the marker on the line before it."""
    lines, found, i = path.read_text().splitlines(), [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = m.group(1), m.group(2), i
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        code = "\n".join(line[len(indent) :] for line in lines[i + 1 : j])
        before = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        mark = _MARK.search(before)
        found.append(Block(str(path.relative_to(ROOT)), start + 1, lang, code, mark.groups() if mark else None))
        i = j + 1
    return found


def commands(block: Block) -> list[str]:
    """The shell commands of a block: ``$ ``-prefixed lines of a console block (the rest is output), every line of a
    bash block; ``\\`` joins a line to the next; comments are dropped."""
    out, pending = [], None
    for line in block.code.splitlines():
        if pending is not None:
            pending += " " + line.strip()
        elif block.lang == "console":
            if not line.startswith("$ "):
                continue
            pending = line[2:]
        elif line.strip() and not line.lstrip().startswith("#"):
            pending = line.strip()
        else:
            continue
        if pending.endswith("\\"):
            pending = pending[:-1]
        else:
            out.append(pending)
            pending = None
    return out


def small(argv: list[str], sandbox: Path) -> list[str]:
    """A documented ``convscale ...`` argv, at small size, as the command to run."""
    words = argv[1:]
    key = " ".join(words[:2]) if words[:1] == ["search"] else words[0] if words else ""
    extra = list(SMALL.get(key, []))
    if key == "train" and "--resume" in words:
        extra = RESUMED + (["--epochs", "2"] if "--epochs" in words else [])
    if key == "train" and "--freeze-epochs" in words:
        extra += ["--freeze-epochs", "1"]  # a head-only warm-up shorter than the one epoch
    if key.startswith("search"):
        extra += ["--table", str(sandbox / "latency-table.json")]
    return [*words, *extra]


def to_run(command: str, sandbox: Path, where: str) -> list[str]:
    argv = [os.path.expanduser(w) if w.startswith("~") else w for w in shlex.split(command, comments=True)]
    if argv[0] == "convscale":
        return [sys.executable, "-m", "convscale.cli", *small(argv, sandbox)]
    if argv[0] == "torchrun" and "-m" in argv and argv[argv.index("-m") + 1] == "convscale.cli":
        cut = argv.index("-m")
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", *argv[1:cut]]
        return [*launcher, "-m", "convscale.cli", *small(["convscale", *argv[cut + 2 :]], sandbox)]
    raise AssertionError(
        f"{where}: `{argv[0]}` is not a command this runner knows; run it in a test or mark the block "
        "`<!-- not run: REASON -->`"
    )


def _sandbox(tmp: Path) -> tuple[Path, dict[str, str]]:
    from PIL import Image

    home = tmp / "home"
    for folder in ("photos", "data/imagenette2-320", "data/my-folder"):
        make_image_folder(home / folder, per_class=8, val_per_class=4, res=40)
    work = tmp / "work"
    (work / "photos").mkdir(parents=True)
    first = next((home / "photos" / "val").rglob("*.png"))
    for name in ("photo.jpg", "cat.jpg", "dog.jpg", "photos/a.jpg", "photos/b.jpg"):
        Image.open(first).convert("RGB").save(work / name)
    env = {"HOME": str(home), "CONVSCALE_DATASETS": str(tmp / "datasets"), "HF_HUB_OFFLINE": "1",
           "XDG_CACHE_HOME": str(tmp / "cache"), "TORCH_HOME": str(tmp / "torch")}  # fmt: skip
    return work, env


def _small_python(monkeypatch) -> None:
    """Python blocks at small size: the same sizes forced on ``load_config`` and ``bench.run``."""
    from convscale import bench, runs, train
    from convscale.runs import settings

    load_config, run = settings.load_config, bench.run
    sizes = {"epochs": 1, "batch_size": 8, "workers": 0, "train_res": 32, "test_res": 32, "shapes_train": 64}
    for module in (settings, runs, train):  # every name a page imports it by
        monkeypatch.setattr(module, "load_config", lambda *a, **k: load_config(*a, **{**k, **sizes}))
    fast = {"res": 32, "batch": 2, "min_iters": 1, "min_time": 0, "warmup": 1}
    monkeypatch.setattr(bench, "run", lambda models, **k: run(models, **{**k, **fast}))


def _run_page(path: Path, tmp: Path, monkeypatch) -> None:
    work, sandbox = _sandbox(tmp)  # the same environment for the commands and for the Python blocks
    monkeypatch.chdir(work)
    for key, value in sandbox.items():
        monkeypatch.setenv(key, value)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        env["OMP_NUM_THREADS"] = "1"
    _small_python(monkeypatch)
    from PIL import Image

    namespace: dict = {"image": Image.open(work / "photo.jpg").convert("RGB")}
    for block in blocks(path):
        if block.lang not in LANGS and not block.mark:
            continue
        if block.mark and block.mark[0] == "file":
            (work / block.mark[1]).write_text(block.code + "\n")
            continue
        if block.mark:
            continue
        if block.lang == "python":
            exec(compile(block.code, block.where, "exec"), namespace)
            continue
        for command in commands(block):
            proc = subprocess.run(to_run(command, tmp, block.where), cwd=work, env=env, capture_output=True,
                                  text=True, timeout=900)  # fmt: skip
            assert proc.returncode == 0, f"{block.where}: `{command}` exited {proc.returncode}:\n{proc.stderr[-3000:]}"


def test_every_block_is_run_or_marked():
    """Every fenced block of every page is of a known kind or marked; count what runs."""
    run = marked = 0
    for path in ALL_PAGES:
        for block in blocks(path):
            if block.mark and block.mark[0] == "not run":
                assert len(block.mark[1]) > 10, f"{block.where}: say why the block is not run"
                marked += 1
            elif block.lang in LANGS and path in PAGES:
                run += 1
            elif block.lang in LANGS:
                raise AssertionError(f"{block.where}: a command block outside the README and the guides; mark it")
    assert run >= 30 and marked >= 1, (run, marked)


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_page_runs(path, tmp_path, monkeypatch):
    _run_page(path, tmp_path, monkeypatch)
