"""A run's folder: ``OUT/NAME/`` holds ``config.yaml``, ``metrics.csv`` (a row per epoch), ``curves.png``,
``schedule.png`` (progressive runs), ``tensorboard/`` and ``checkpoints/last.safetensors``. A new run takes its folder
atomically (``mkdir`` that fails when the folder exists), so two runs started with the same name get ``NAME`` and
``NAME-2``."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..utils.atomic import atomic_write_text
from ..weights.files import RUN_CHECKPOINT
from .checkpoint import write_checkpoint
from .settings import TrainConfig

__all__ = ["RunFolder"]


@dataclass(frozen=True)
class RunFolder:
    """The folder of one run and the files in it."""

    path: Path

    @property
    def checkpoint(self) -> Path:
        return self.path / RUN_CHECKPOINT

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.csv"

    @classmethod
    def create(cls, out: str | Path, name: str) -> RunFolder:
        """A new, empty folder ``out/name`` (or ``name-2``, ``name-3``, … when taken), created atomically."""
        Path(out).mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            path = Path(out) / (name if n == 1 else f"{name}-{n}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return cls(path)
        raise ValueError(f"{out}: no free run folder name for {name!r}")

    @classmethod
    def of(cls, path: str | Path) -> RunFolder:
        """The run that ``path`` (a run folder, or the checkpoint inside one) belongs to."""
        path = Path(path)
        if path.is_dir():
            folder = cls(path)
        elif path.is_file() and path.parent.name == RUN_CHECKPOINT.parent.name:
            folder = cls(path.parent.parent)
        elif path.is_file():
            raise ValueError(f"{path} is not inside a run folder: expected RUN or RUN/{RUN_CHECKPOINT}")
        else:
            raise ValueError(f"no run at {path}")
        if not folder.checkpoint.is_file():
            raise ValueError(f"{path} is not a training run: it has no {RUN_CHECKPOINT}")
        return folder

    def clean_stale(self) -> list[Path]:
        """Remove temporary checkpoint files that a killed write left behind (other processes')."""
        mine = f".{os.getpid()}.tmp"
        stale = [p for p in self.checkpoint.parent.glob(f".{self.checkpoint.name}.*.tmp") if not p.name.endswith(mine)]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    def write_config(self, cfg: TrainConfig) -> None:
        import yaml

        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """``metrics.csv``: a row per finished epoch (the trainer draws ``curves.png`` from the same rows)."""
        if not history:
            return
        keys = list(dict.fromkeys(k for row in history for k in row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.metrics_file, buf.getvalue())

    def save(self, **parts: Any) -> None:
        """Write the checkpoint (``write_checkpoint``'s keywords), then remove stale temporary files."""
        write_checkpoint(self.checkpoint, **parts)
        self.clean_stale()
