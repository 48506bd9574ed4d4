"""User architectures as data: a YAML file that names a registered base model and the config fields it changes.

``convscale search`` writes its winners this way, and ``create_model("arch.yaml")``, ``convscale info arch.yaml`` and
``convscale train --model arch.yaml`` accept such a file wherever a registered name is accepted (the registry
resolves a ``.yaml`` path through :func:`arch_entry`). The file holds the full config (every field of the base's
config class except the published numbers and recipe), so it is readable on its own::

    format: convscale-arch/1
    base: efficientnet_b0          # the family's builder and the defaults of any field left out
    config:
      width_mult: 1.1
      stages:
        - {block: mbconv, repeats: 1, kernel: 3, stride: 1, expand: 1.0, out_chs: 16, se_ratio: 0.25}
        ...

Every value is checked against the config class's field types, and a bad one is refused in one line naming the
field (``arch.yaml: config.stages[2].kernel: expected an integer, got 'five'``). Files are read with
``yaml.safe_load`` and written atomically.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

from .config import ModelConfig
from .registry import ModelEntry, add_resolver, get_entry
from .utils.atomic import atomic_write_text

__all__ = ["ARCH_FORMAT", "arch_entry", "is_arch_path", "read_arch", "write_arch"]

ARCH_FORMAT = "convscale-arch/1"
SUFFIXES = (".yaml", ".yml")
_SKIPPED = ("published", "recipe")  # facts about a published variant: not part of a user's architecture


def is_arch_path(name: object) -> bool:
    return isinstance(name, str | Path) and str(name).lower().endswith(SUFFIXES)


def write_arch(path: str | Path, config: ModelConfig, base: str, comment: str = "") -> Path:
    """Write ``config`` (a config of ``base``'s class) as an architecture file."""
    import yaml

    entry = get_entry(base)
    if type(config) is not type(entry.config):
        raise TypeError(f"{base} is built from {type(entry.config).__name__}, got {type(config).__name__}")
    fields = {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config) if f.name not in _SKIPPED}
    doc = {"format": ARCH_FORMAT, "base": base, "config": fields}
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    return atomic_write_text(path, head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120))


def read_arch(path: str | Path) -> tuple[str, ModelConfig]:
    """The base model's name and the config a file describes; ValueError naming the file and the bad field."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"architecture file {path} does not exist")
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict) or doc.get("format") != ARCH_FORMAT:
        raise ValueError(f"{path}: expected a mapping with format: {ARCH_FORMAT}, base: and config:")
    unknown = sorted(set(doc) - {"format", "base", "config"})
    if unknown:
        raise ValueError(f"{path}: unknown key {unknown[0]!r}; expected format, base and config")
    base = doc.get("base")
    if not isinstance(base, str) or is_arch_path(base):
        raise ValueError(f"{path}: base: expected a registered model name, got {base!r}")
    try:
        entry = get_entry(base)
        # not the published variant any more: its numbers go; the family's recipe stays
        default = dataclasses.replace(entry.config, published=None)
        config = _build(type(entry.config), default, doc.get("config") or {}, "config")
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from None
    return base, config


def arch_entry(name: str) -> ModelEntry | None:
    """The registry entry of an architecture file (the base's builder, the file's config), or None for a name."""
    if not is_arch_path(name):
        return None
    path = Path(name)
    stamp = path.stat().st_mtime_ns if path.is_file() else None
    return _entry(str(path), stamp)


@cache
def _entry(path: str, stamp: int | None) -> ModelEntry:
    base, config = read_arch(path)
    b = get_entry(base)
    return ModelEntry(path, b.family, config, b.build)


add_resolver(arch_entry)


def _plain(value: Any) -> Any:
    """A config value as YAML-safe data: dataclasses as mappings, tuples as lists."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, default: Any, data: Any, where: str) -> Any:
    """An instance of dataclass ``cls`` from a mapping, its fields checked by type; absent fields from ``default``."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in _SKIPPED]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}; {cls.__name__} has {', '.join(names)}")
    values = {k: _value(hints[k], v, getattr(default, k, None), f"{where}.{k}") for k, v in data.items()}
    try:
        return dataclasses.replace(default, **values) if default is not None else cls(**values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None


def _value(hint: Any, value: Any, default: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _value(option, value, default, where)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0])
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        # an item's absent fields take its class's defaults (not another item's values)
        return tuple(_value(args[0], v, None, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return _build(hint, default if isinstance(default, hint) else None, value, where)
    return _scalar(hint, value, where)


_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in _KINDS and isinstance(value, hint) and (hint is bool or not isinstance(value, bool)):
        return value
    if hint in _KINDS:
        raise ValueError(f"{where}: expected {_KINDS[hint]}, got {value!r}")
    if hint is Any or hint is object:
        return value
    raise ValueError(f"{where}: a field of type {hint} cannot be set from a file")
