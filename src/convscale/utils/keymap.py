"""Key maps between our state dicts and another library's (timm, torchvision).

A family module says, for each registered variant, what the same network is called in another library and how the
two name their tensors: a :class:`Counterpart` on the variant's registry entry. Its rule lists ``(our module path,
their module path)`` pairs for the modules that own tensors; :func:`expand_keys` turns the pairs into one key per
tensor. Nothing here knows a family, so a new family brings its own rule and nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from torch import nn

__all__ = [
    "TIMM_SE_KEYS",
    "Counterpart",
    "KeyRule",
    "Pairs",
    "conv_norm_keys",
    "expand_keys",
    "same_names",
    "tensor_owners",
]

Pairs = Iterator[tuple[str, str]]
KeyRule = Callable[[nn.Module], Pairs]  # model -> (our module path, their module path) for each tensor owner


@dataclass(frozen=True)
class Counterpart:
    """The same network in another library. ``name``: its model name there (None: the same layout, but that library
    publishes no model of this name); ``keys``: the rule pairing module paths; ``form``: the ``create_model``
    overrides under which ours computes exactly what theirs does (empty where ours already does)."""

    name: str | None
    keys: KeyRule
    form: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    def fits(self, model: nn.Module) -> bool:
        """Whether ``model`` is built in this form, so that the other library's weights compute the same function."""
        cfg = getattr(model, "cfg", None)
        return all(getattr(cfg, key, None) == value for key, value in self.form.items())


#: timm's names for our SqueezeExcite's two convs (the MBConv and Ghost families share the block)
TIMM_SE_KEYS = (("se.reduce", "se.conv_reduce"), ("se.expand", "se.conv_expand"))


def tensor_owners(model: nn.Module) -> Iterator[str]:
    """Paths of the modules that hold parameters or buffers of their own."""
    for name, module in model.named_modules():
        has_param = next(module.parameters(recurse=False), None) is not None
        if has_param or next(module.buffers(recurse=False), None) is not None:
            yield name


def same_names(model: nn.Module) -> Pairs:
    """A rule for a library that names every tensor as we do."""
    for name in tensor_owners(model):
        yield name, name


def conv_norm_keys(ours: str, theirs: str, conv: int = 0) -> Pairs:
    """Our ConvNormAct ``ours`` and a ``Sequential(conv, bn, …)`` ``theirs``, torchvision's way of writing one (its conv
    and bn at indices ``conv`` and ``conv + 1``)."""
    yield f"{ours}.conv", f"{theirs}.{conv}"
    yield f"{ours}.bn", f"{theirs}.{conv + 1}"


def expand_keys(model: nn.Module, rule: KeyRule, library: str) -> dict[str, str]:
    """For every key of ``model.state_dict()``, the key ``library`` uses for the same tensor."""
    modules = dict(rule(model))
    out = {}
    for key in model.state_dict():
        owner, _, leaf = key.rpartition(".")
        if owner not in modules:
            raise ValueError(f"no {library} name for {key!r} in {type(model).__name__}")
        out[key] = f"{modules[owner]}.{leaf}".lstrip(".")
    return out
