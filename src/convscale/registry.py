"""The model registry: every variant is registered once, and tests, the CLI, benchmarks and interop iterate it."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from torch import nn

from .config import ModelConfig
from .utils.keymap import Counterpart

__all__ = [
    "ModelEntry",
    "add_resolver",
    "counterpart",
    "counterpart_of",
    "get_entry",
    "list_families",
    "list_models",
    "register_model",
]

BuildFn = Callable[..., nn.Module]  # build(config, *, num_classes, in_chans) -> nn.Module


@dataclass(frozen=True)
class ModelEntry:
    """A registered variant: its name, family, typed config, the builder that turns a config into a model, and the
    same network in other libraries (``counterparts["timm"]``, ``counterparts["torchvision"]``)."""

    name: str
    family: str
    config: ModelConfig
    build: BuildFn
    tiny: bool = False  # a small test variant, for fast CI
    counterparts: Mapping[str, Counterpart] = field(default_factory=lambda: MappingProxyType({}))


_REGISTRY: dict[str, ModelEntry] = {}
#: functions that turn a name that is not registered into an entry (``convscale.arch``: an architecture file)
_RESOLVERS: list[Callable[[str], ModelEntry | None]] = []


def add_resolver(resolve: Callable[[str], ModelEntry | None]) -> None:
    """Let ``get_entry`` accept names ``resolve`` knows (it returns None for the rest)."""
    if resolve not in _RESOLVERS:
        _RESOLVERS.append(resolve)


def register_model(
    name: str,
    family: str,
    config: ModelConfig,
    build: BuildFn,
    *,
    tiny: bool = False,
    counterparts: Mapping[str, Counterpart] | None = None,
) -> ModelEntry:
    """Register ``name``; registering a name twice is an error."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered (family {_REGISTRY[name].family!r})")
    entry = ModelEntry(name, family, config, build, tiny, MappingProxyType(dict(counterparts or {})))
    _REGISTRY[name] = entry
    return entry


def get_entry(name: str) -> ModelEntry:
    """The entry for ``name``; an unknown name raises ValueError naming the closest registered names."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        for resolve in _RESOLVERS:
            entry = resolve(name)
            if entry is not None:
                return entry
        close = _closest(name, list(_REGISTRY))
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `convscale list`"
        raise ValueError(f"unknown model {name!r}{hint}") from None


def _closest(name: str, candidates: list[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The ``n`` most similar names; ties are broken alphabetically (so ``..._b0`` comes before ``..._b7``)."""
    scored = sorted((-difflib.SequenceMatcher(None, name, c).ratio(), c) for c in candidates)
    return [c for score, c in scored[:n] if -score >= cutoff]


def list_models(pattern: str = "*", *, family: str | None = None, include_tiny: bool = True) -> list[str]:
    """Registered names matching a shell-style ``pattern`` (e.g. ``"efficientnet*"``), sorted."""
    return sorted(
        name
        for name, entry in _REGISTRY.items()
        if fnmatch.fnmatchcase(name, pattern)
        and (family is None or entry.family == family)
        and (include_tiny or not entry.tiny)
    )


def counterpart(name: str, library: str) -> Counterpart | None:
    """Model ``name``'s counterpart in ``library`` (``"timm"``, ``"torchvision"``), or None."""
    return get_entry(name).counterparts.get(library)


def counterpart_of(model: nn.Module, library: str) -> Counterpart:
    """The ``library`` counterpart registered for ``model``'s class (every variant of a class shares its key rule)."""
    for entry in _REGISTRY.values():
        if entry.build is type(model) and library in entry.counterparts:
            return entry.counterparts[library]
    raise ValueError(f"no {library} key mapping for {type(model).__name__}")


def list_families() -> list[str]:
    return sorted({entry.family for entry in _REGISTRY.values()})
