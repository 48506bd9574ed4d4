"""A deployed folder's ``deploy.json``, read as a claim: the runtime it names must be one convscale has, every file
it names must be a regular file inside the folder (no ``../``, absolute path or link leading out), and the
preprocessing it recorded must be complete. Anything else is a ValueError in one line, before a file is opened."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..utils.paths import file_inside
from .spec import RUNTIMES, ExportSpec

__all__ = ["DEPLOY_JSON", "DeployedFolder", "is_deployed"]

DEPLOY_JSON = "deploy.json"
_MAX_JSON = 16 * 2**20  # deploy.json holds a report, not data


def is_deployed(path: str | Path) -> bool:
    """Whether ``path`` is a folder that ``convscale deploy`` wrote."""
    return Path(path).is_dir() and (Path(path) / DEPLOY_JSON).is_file()


@dataclass(frozen=True)
class DeployedFolder:
    """What a deployed folder holds: its chosen ``runtime`` and ``precision``, the files of that form, the batch and
    size it was measured at, the export ``spec`` (preprocessing and classes) and the ``machine`` it was chosen on."""

    path: Path
    runtime: str
    precision: str
    files: tuple[str, ...]
    spec: Any  # an ExportSpec
    machine: dict
    report: dict

    @classmethod
    def read(cls, path: str | Path) -> DeployedFolder:
        folder = Path(path)
        where = folder / DEPLOY_JSON
        report = _json(where)
        runtime = report.get("choice")
        if runtime not in RUNTIMES:
            raise ValueError(f"{where}: unknown runtime {str(runtime)[:40]!r} (expected one of {', '.join(RUNTIMES)})")
        files = report.get("files")
        if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
            raise ValueError(f"{where}: 'files' must list the deployed form's files")
        for name in files:
            inside(folder, name, where)
        spec = report.get("spec")
        names = {f.name for f in fields(ExportSpec)}
        missing = sorted(names - {"classes", "dynamic_size"} - set(spec)) if isinstance(spec, dict) else ["all"]
        if missing:
            raise ValueError(
                f"{where} has no complete 'spec' (the preprocessing and classes; missing {', '.join(missing)}): "
                "written by an earlier convscale, or edited; deploy the model again"
            )
        try:
            exported = ExportSpec(**{k: spec[k] for k in names if k in spec})
        except TypeError as e:
            raise ValueError(f"{where}: 'spec' does not read as an export spec ({e})") from None
        _check_spec(exported, where)
        machine = report.get("machine") if isinstance(report.get("machine"), dict) else {}
        return cls(folder, runtime, str(report.get("precision", "")), tuple(files), exported, machine, report)

    def file(self, name: str) -> Path:
        """The path of one of the form's files, checked again as it is opened."""
        return inside(self.path, name, self.path / DEPLOY_JSON)


def _json(where: Path) -> dict:
    try:
        size = where.stat().st_size
        if size > _MAX_JSON:
            raise ValueError(f"{where}: {size} bytes, far more than a deploy report holds")
        data = json.loads(inside(where.parent, where.name, where).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        if isinstance(e, ValueError) and str(e).startswith(str(where)):
            raise
        raise ValueError(f"{where}: not a deploy report ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: not a deploy report (expected a JSON object)")
    return data


def inside(folder: Path, name: str, where: Path) -> Path:
    """``folder / name`` when it is a regular file inside ``folder`` (:func:`~convscale.utils.paths.file_inside`);
    else a ValueError naming ``where`` and the entry."""
    try:
        return file_inside(folder, name)
    except ValueError as e:
        raise ValueError(f"{where}: {e}: a deployed form stays in its folder") from None


def _check_spec(spec, where: Path) -> None:
    ok = (
        isinstance(spec.res, int) and 8 <= spec.res <= 4096
        and (spec.batch == "dynamic" or (isinstance(spec.batch, int) and 1 <= spec.batch <= 4096))
        and isinstance(spec.num_classes, int) and spec.num_classes >= 1
        and len(spec.mean) == 3 and len(spec.std) == 3 and all(float(s) > 0 for s in spec.std)
        and 0 < float(spec.crop_pct) <= 1 and spec.crop_mode in ("center", "squash", "border")
    )  # fmt: skip
    if not ok:
        raise ValueError(f"{where}: 'spec' holds values no deploy writes (size, batch, classes, mean/std or crop)")
    if spec.classes is not None and (not isinstance(spec.classes, list) or len(spec.classes) != spec.num_classes):
        raise ValueError(f"{where}: 'spec.classes' must name each of the {spec.num_classes} classes")
