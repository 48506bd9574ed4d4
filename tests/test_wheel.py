"""The wheel that ``pip wheel .`` builds holds everything the commands need (recipes, counts, class names, the serve
page): installed into a fresh environment — which reuses this one's torch and other packages through a ``.pth``
line, but not its editable convscale — ``--version``, ``list``, ``info`` and a two-epoch ``train`` run from an empty
folder."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import convscale

ROOT = Path(__file__).resolve().parent.parent


def test_the_built_wheel_runs_the_commands_from_an_empty_folder(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels)], check=True, capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = wheels.glob("convscale-*.whl")
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=300)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    # torch and the rest from this environment, after the new one's own packages (its convscale is the wheel's)
    Path(purelib, "outer.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1",
                                                                         "PYTHONWARNINGS": "ignore"}  # fmt: skip
    exe = str(env_dir / "bin" / "convscale")

    def run(*args: str) -> str:
        done = subprocess.run([exe, *args], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    where = subprocess.run([str(python), "-c", "import convscale; print(convscale.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True).stdout  # fmt: skip
    assert where.startswith(purelib), where  # the wheel's copy, not this checkout's
    assert run("--version").strip() == f"convscale {convscale.__version__}"
    assert "efficientnet_b0" in run("list")
    assert "efficientnet_b0" in run("info", "efficientnet_b0")
    run("train", "--model", "test_resnet", "--epochs", "2", "--shapes-train", "64", "--shapes-val", "32",
        "--shapes-res", "32", "--batch-size", "16", "--workers", "0")  # fmt: skip
    assert (work / "runs").is_dir() and any((work / "runs").rglob("last.safetensors"))
    installed = Path(purelib, "convscale")
    for data in ("deployed/page.html", "model_counts.json", "weights/weights.json", "recipes/efficientnet_b0.yaml"):
        assert (installed / data).is_file(), data
