"""Explainers come from the entry-point group `whybox.explainers`, the built-ins too.

Listing them reads installed metadata only: a plugin's module is imported when its entry is
first used (`Entry.explainer`, `Entry.error`, `get`), once per process. A broken plugin, or
a name that two distributions claim, is listed with its error and never stops the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib.metadata import EntryPoint, entry_points

from whybox.explainers.base import Explainer
from whybox.model_zoo import WhyboxError

GROUP = "whybox.explainers"


@dataclass(frozen=True)
class Entry:
    """A registered explainer name and the entry point(s) behind it.

    More than one entry point means that several distributions claim the name: the entry
    is then a conflict, never loaded, and `target` and `distribution` list them all,
    comma-separated.
    """

    name: str
    sources: tuple[EntryPoint, ...] = field(repr=False)

    @property
    def target(self) -> str:
        """The entry point's value, `module:Class`."""
        return ", ".join(ep.value for ep in self.sources)

    @property
    def distribution(self) -> str | None:
        """The distribution that registered the name, where the metadata says."""
        return ", ".join(filter(None, map(_distribution, self.sources))) or None

    @property
    def explainer(self) -> type[Explainer] | None:
        """The class, imported on first access; None when it cannot be used (see `error`)."""
        return self._loaded[0]

    @property
    def error(self) -> str | None:
        """Why the class cannot be used, in one line (imports it to find out), or None."""
        return self._loaded[1]

    @property
    def summary(self) -> str:
        if self.explainer is None:
            return f"unavailable: {self.error}"
        return self.explainer.summary

    @cached_property
    def _loaded(self) -> tuple[type[Explainer] | None, str | None]:
        if len(self.sources) > 1:
            claims = " and ".join(
                f"{_distribution(ep) or 'an unnamed distribution'} ({ep.value})"
                for ep in self.sources
            )
            return None, (
                f"explainer name {self.name!r} is registered by {claims}; "
                "uninstall all but one of them"
            )
        (entry_point,) = self.sources
        try:
            cls = entry_point.load()
        except Exception as exc:  # a broken plugin is listed with its error, never fatal
            message = " ".join(str(exc).split()) or type(exc).__name__
            return None, f"{type(exc).__name__}: {message}"
        if not (isinstance(cls, type) and issubclass(cls, Explainer)):
            return None, f"{entry_point.value} is not an Explainer subclass"
        if cls.name != self.name:
            return None, (
                f"{entry_point.value} declares name {cls.name!r} but is registered as {self.name!r}"
            )
        return cls, None


def _distribution(entry_point: EntryPoint) -> str | None:
    dist = getattr(entry_point, "dist", None)
    return dist.name if dist is not None else None


def _normalized(distribution: str | None) -> str:
    return re.sub(r"[-_.]+", "-", distribution or "").lower()


@cache
def _discover() -> dict[str, Entry]:
    """Every registered name, sorted, without importing anything. An entry point seen twice
    from one distribution (a duplicate path entry, say) counts once."""
    found: dict[str, dict[tuple[str, str], EntryPoint]] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, {}).setdefault((_normalized(_distribution(ep)), ep.value), ep)
    return {
        name: Entry(name, tuple(ep for _, ep in sorted(claims.items())))
        for name, claims in sorted(found.items())
    }


def entries() -> list[Entry]:
    """Every registered explainer, sorted by name; nothing is imported until it is used."""
    return list(_discover().values())


def names() -> list[str]:
    """The registered names, sorted, without importing any explainer."""
    return list(_discover())


def get(name: str) -> type[Explainer]:
    """The explainer class registered as `name` (importing that one only), or a one-line
    error: the registered names for an unknown one, the reason for one that cannot load."""
    entry = _discover().get(name)
    if entry is None:
        registered = ", ".join(names())
        raise WhyboxError(f"unknown explainer {name!r}; the registered ones are {registered}")
    if entry.explainer is None:
        raise WhyboxError(f"explainer {name!r} cannot be used: {entry.error}")
    return entry.explainer


def refresh() -> None:
    """Forget what was discovered and loaded (after installing a plugin in a running process)."""
    _discover.cache_clear()
