"""Explainers come from the entry-point group `whybox.explainers`, the built-ins too."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from whybox.explainers.base import Explainer
from whybox.model_zoo import WhyboxError

GROUP = "whybox.explainers"


@dataclass(frozen=True)
class Entry:
    """A registered explainer: its class once imported, or the error that stopped the import."""

    name: str
    target: str
    explainer: type[Explainer] | None = None
    error: str | None = None

    @property
    def summary(self) -> str:
        if self.explainer is None:
            return f"unavailable: {self.error}"
        return self.explainer.summary


@cache
def _entry_points() -> tuple:
    return tuple(sorted(entry_points(group=GROUP), key=lambda ep: ep.name))


def _load(entry_point) -> Entry:
    try:
        cls = entry_point.load()
        if not (isinstance(cls, type) and issubclass(cls, Explainer)):
            raise TypeError(f"{entry_point.value} is not an Explainer subclass")
    except Exception as exc:  # a broken plugin is listed with its error, never fatal
        message = " ".join(str(exc).split()) or type(exc).__name__
        return Entry(entry_point.name, entry_point.value, error=f"{type(exc).__name__}: {message}")
    return Entry(entry_point.name, entry_point.value, explainer=cls)


@cache
def _load_cached(name: str, value: str) -> Entry:
    for entry_point in _entry_points():
        if entry_point.name == name and entry_point.value == value:
            return _load(entry_point)
    raise KeyError(name)


def entries() -> list[Entry]:
    """Every registered explainer, imported lazily and once per process."""
    return [_load_cached(ep.name, ep.value) for ep in _entry_points()]


def get(name: str) -> type[Explainer]:
    """The explainer class registered as `name`, or a clear error listing the names there are."""
    for entry in entries():
        if entry.name == name:
            if entry.explainer is None:
                raise WhyboxError(f"explainer {name!r} failed to load: {entry.error}")
            return entry.explainer
    names = ", ".join(e.name for e in entries())
    raise WhyboxError(f"unknown explainer {name!r}; the registered ones are {names}")


def refresh() -> None:
    """Forget what was discovered (after installing a plugin in a running process)."""
    _entry_points.cache_clear()
    _load_cached.cache_clear()
