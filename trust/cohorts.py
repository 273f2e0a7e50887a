"""Cohorts: groups of rows named by the user and defined by filters on their columns, in
their own column and category names ("Age >= 30 and Home in rent, parents").

A filter is one condition on one column:

- a number compared: `Income > 100`, `Age >= 30` (also `≥`, `≤`, `=`, `!=`), or a range as
  the rules of `tree_rules` write it: `30 ≤ Age ≤ 40`, `2 < Debt ≤ 5`;
- categories: `Home = rent`, `Home != rent`, `Home in rent, parents`, `Home not rent, owner`
  (also `not in`), or as the rules of `tree_rules` write them: `Home is rent`, `Home is not
  rent`, `Home is rent or parents`, `Home is neither rent nor owner`, `Home is one of ...`,
  `Home is none of ...`;
- missing values: `Income is missing`, `Income is not missing`.

A missing value satisfies no comparison (only `is missing`). Conditions are joined by
`and` (or given one per line); a cohort's rows are those that satisfy every one. Filters
are checked against the data when parsed: an unknown column, a category the column does not
have, or a number where the column holds categories is a one-line error naming it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from whybox.model_zoo import Dataset, WhyboxError
from whybox.trust.tree_rules import category_names

COMPARISONS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "<=": operator.le,
    "≤": operator.le,
    ">=": operator.ge,
    "≥": operator.ge,
    "!=": operator.ne,
    "≠": operator.ne,
    "==": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
    "=": operator.eq,
}
_OPERATOR = "|".join(re.escape(o) for o in COMPARISONS)  # two-character operators first
_RANGE = re.compile(
    r"^(?P<low>\S+)\s*(?P<a><=|≤|<)\s*(?P<name>.+?)\s*(?P<b><=|≤|<)\s*(?P<high>\S+)$"
)
_CATEGORY_WORDS = re.compile(
    r"^(?P<op>not in|in|not|is not|is neither|is none of|is one of|is)\s+(?P<values>.+)$"
)
_EXCLUDING = ("not in", "not", "is not", "is neither", "is none of")
EXAMPLE = "Age >= 30 and Home in rent, parents"


@dataclass(frozen=True)
class Condition:
    """One filter: `feature`, an `operator` (a comparison, `in`, `not in`, `missing` or
    `present`) and the `values` it compares with (numbers, or category names)."""

    feature: str
    operator: str
    values: tuple = ()

    @property
    def text(self) -> str:
        if self.operator in ("missing", "present"):
            return f"{self.feature} is {'missing' if self.operator == 'missing' else 'not missing'}"
        shown = ", ".join(v if isinstance(v, str) else f"{v:g}" for v in self.values)
        single = {"in": "=", "not in": "!="}.get(self.operator) if len(self.values) == 1 else None
        return f"{self.feature} {single or self.operator} {shown}"

    def mask(self, data: Dataset, coded: Mapping[str, Mapping[float, str]]) -> np.ndarray:
        """Which rows of `data` satisfy it."""
        values = data.frame[self.feature].to_numpy(dtype=np.float64)
        present = ~np.isnan(values)
        if self.operator in ("missing", "present"):
            return present if self.operator == "present" else ~present
        if self.operator in ("in", "not in"):
            inside = np.isin(category_names(data, self.feature, values, coded), self.values)
            return present & (inside if self.operator == "in" else ~inside)
        with np.errstate(invalid="ignore"):
            return present & COMPARISONS[self.operator](values, self.values[0])


@dataclass(frozen=True)
class Cohort:
    """A named group of rows: those satisfying every one of its `conditions`."""

    name: str
    conditions: tuple[Condition, ...]
    coded: Mapping[str, Mapping[float, str]] = field(default_factory=dict, compare=False)

    @property
    def text(self) -> str:
        return " and ".join(c.text for c in self.conditions) or "every row"

    def mask(self, data: Dataset) -> np.ndarray:
        chosen = np.ones(len(data), dtype=bool)
        for condition in self.conditions:
            chosen &= condition.mask(data, self.coded)
        return chosen

    def members(self, data: Dataset) -> np.ndarray:
        """The positions of its rows in `data`."""
        return np.flatnonzero(self.mask(data))

    def to_dict(self) -> dict:
        return {"name": self.name, "filter": self.text}


def cohort(
    name: str,
    text: str,
    data: Dataset,
    coded: Mapping[str, Mapping[float, str]] | None = None,
) -> Cohort:
    """The cohort `name` of `text`'s conditions (joined by `and`, or one per line) on
    `data`'s columns. `coded` names the numeric columns holding category codes (a data
    dictionary's): their filters take the codes' names."""
    name = name.strip()
    if not name:
        raise WhyboxError("a cohort needs a name; give it one, e.g. 'under 30'")
    parts = [p.strip() for p in re.split(r"\s+and\s+|\n|;", text.strip()) if p.strip()]
    coded = dict(coded or {})
    conditions = [c for part in parts for c in parse_conditions(part, data, coded)]
    return Cohort(name, tuple(conditions), coded)


def parse_conditions(
    text: str, data: Dataset, coded: Mapping[str, Mapping[float, str]] | None = None
) -> list[Condition]:
    """One filter (see the module's docstring) checked against `data`'s columns: one
    condition, or a range's two."""
    coded = coded or {}
    text = text.strip().strip("()")
    ranged = _RANGE.match(text)
    if ranged and ranged["name"] in data.feature_names:
        feature = ranged["name"]
        _refuse_categories(feature, text, data, coded)
        above = {"<": ">", "<=": ">=", "≤": ">="}[ranged["a"]]
        return [
            Condition(feature, above, (_number(ranged["low"], text),)),
            Condition(feature, ranged["b"], (_number(ranged["high"], text),)),
        ]
    return [_condition(text, data, coded)]


def _condition(text: str, data: Dataset, coded: Mapping[str, Mapping[float, str]]) -> Condition:
    feature = _feature(text, data)
    rest = text[len(feature) :].strip()
    if rest in ("is missing", "is not missing"):
        return Condition(feature, "missing" if rest == "is missing" else "present")
    categorical = feature in data.categories or feature in coded
    words = _CATEGORY_WORDS.match(rest)
    compared = re.match(rf"^({_OPERATOR})\s*(.+)$", rest)
    if categorical and (words or (compared and compared[1] in ("=", "==", "!=", "≠"))):
        op = words["op"] if words else compared[1]
        listed = words["values"] if words else compared[2]
        # the tree's words: "is neither a nor b", "is a or b"
        named = [v.strip() for v in re.split(r",|\s+nor\s+|\s+or\s+", listed)]
        known = _categories(feature, data, coded)
        unknown = [v for v in named if v not in known]
        if unknown:
            raise WhyboxError(
                f"filter {text!r}: {feature} has no category {unknown[0]!r}; its categories "
                f"are {', '.join(known)}"
            )
        excluding = op in _EXCLUDING or op in ("!=", "≠")
        return Condition(feature, "not in" if excluding else "in", tuple(named))
    if compared is None:
        raise WhyboxError(
            f"filter {text!r} is not a condition; write one like {EXAMPLE!r} or "
            f"'{feature} is missing'"
        )
    _refuse_categories(feature, text, data, coded)
    return Condition(feature, compared[1], (_number(compared[2], text),))


def _refuse_categories(
    feature: str, text: str, data: Dataset, coded: Mapping[str, Mapping[float, str]]
) -> None:
    if feature in data.categories or feature in coded:
        known = _categories(feature, data, coded)
        raise WhyboxError(
            f"filter {text!r}: {feature} holds categories ({', '.join(known[:6])}); compare "
            f"it with = or in, e.g. '{feature} in {known[0]}'"
        )


def _categories(feature: str, data: Dataset, coded: Mapping[str, Mapping[float, str]]) -> list[str]:
    if feature in data.categories:
        return list(data.categories[feature])
    return [str(name) for name in coded[feature].values()]


def _feature(text: str, data: Dataset) -> str:
    """The column `text` starts with (the longest that fits, as names may hold spaces)."""
    for name in sorted(data.feature_names, key=len, reverse=True):
        if text.startswith(name) and (len(text) == len(name) or not text[len(name)].isalnum()):
            return name
    first = re.split(rf"\s|{_OPERATOR}", text, maxsplit=1)[0]
    raise WhyboxError(
        f"filter {text!r}: no column {first!r} in the data; its columns are "
        f"{', '.join(data.feature_names[:8])}{', ...' if len(data.feature_names) > 8 else ''}"
    )


def _number(text: str, condition: str) -> float:
    try:
        return float(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise WhyboxError(f"filter {condition!r}: {text!r} is not a number") from None
