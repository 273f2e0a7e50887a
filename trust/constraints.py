"""Actionability constraints for recourse: which features a person can change, and how.

The compliance team keeps them in a small YAML file beside the reason texts:

    max_changes: 3                    # at most this many features change (3 if absent)
    immutable: [Age, Marital]         # never change
    monotone: {Debt: decrease, Income: increase}   # may only move this way
    ranges: {Amount: [100, 5000]}     # a changed value must lie in [low, high]
    transitions:                      # categorical: the moves allowed from each category
      Home: {rent: [owner, parents], parents: [rent]}

A column not named may change freely (within `max_changes`). A categorical column named
under `transitions` may only make the moves listed there: a category that is not listed
as a source does not change, so the list is what compliance has approved, never what it
forgot to forbid. Ranges and monotone moves apply to numeric columns, transitions to
categorical ones (a data set's text columns, or numeric codes that the data dictionary
names, `coded` as for `Typicality`); a range bounds the value a feature is changed to,
not a value a person already has and keeps.

The file is checked against the data it will be used with: an unknown column, a
category the column does not have, or rules that contradict each other (immutable and
monotone, a range whose low is above its high, a move to a category the column lacks)
is a one-line `WhyboxError` naming the file and the line at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from whybox.model_zoo import Dataset, WhyboxError
from whybox.model_zoo.settings_files import compose_yaml, read_bytes, text_file
from whybox.model_zoo.tables import name_list, number_text

MAX_CHANGES = 3
DIRECTIONS = ("increase", "decrease")
KEYS = ("max_changes", "immutable", "monotone", "ranges", "transitions")
EXPECTED = (
    "YAML mapping with max_changes, immutable (a list of columns), monotone (column: "
    "increase or decrease), ranges (column: [low, high]) and transitions (column: {category: "
    "[categories]})"
)


@dataclass(frozen=True)
class Constraints:
    """What a counterfactual may change, bound to the columns of one data set.

    `features` are the data's columns in model order; `levels` names the codes of its
    categorical columns (code -> category), so that transitions, written with names, can
    be checked on rows of codes.
    """

    features: tuple[str, ...]
    levels: Mapping[str, Mapping[float, str]] = field(default_factory=dict)
    immutable: frozenset[str] = frozenset()
    monotone: Mapping[str, str] = field(default_factory=dict)
    """Column -> 'increase' or 'decrease': the only way it may move."""
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    transitions: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)
    """Column -> category -> the categories it may become; unlisted categories stay."""
    max_changes: int = MAX_CHANGES

    def allows(self, feature: str, before: float, after: float) -> bool:
        """Whether changing `feature` from `before` to `after` (codes for a categorical
        column) keeps to the rules for that one feature; no change is always allowed."""
        return unchanged(before, after) or len(self.moves(feature, before, np.array([after]))) > 0

    def moves(self, feature: str, before: float, candidates: np.ndarray) -> np.ndarray:
        """Of the `candidates` for `feature` (codes for a categorical column), in order,
        those that change it from `before` as the rules for that one feature allow."""
        after = np.asarray(candidates, dtype=np.float64)
        if feature in self.immutable:
            return after[:0]
        kept = ~np.isnan(after) & (after != before)
        direction = self.monotone.get(feature)
        if direction is not None:  # from a missing value neither holds: the way is unknown
            kept &= after > before if direction == "increase" else after < before
        if feature in self.ranges:
            low, high = self.ranges[feature]
            kept &= (low <= after) & (after <= high)
        if feature in self.transitions:
            named = self.levels[feature]
            allowed = self.transitions[feature].get(named.get(float(before)), frozenset())
            kept &= np.array([named.get(float(a)) in allowed for a in after], dtype=bool)
        return after[kept]

    def violations(self, before: np.ndarray, after: np.ndarray) -> list[str]:
        """Each rule that the change from row `before` to row `after` (codes, in
        `features` order) breaks, in words; empty where it keeps to them all."""
        broken = []
        changed = [
            j for j in range(len(self.features)) if not unchanged(float(before[j]), float(after[j]))
        ]
        if len(changed) > self.max_changes:
            broken.append(f"{len(changed)} features change, more than {self.max_changes}")
        for j in changed:
            feature, old, new = self.features[j], float(before[j]), float(after[j])
            if not self.allows(feature, old, new):
                broken.append(f"{feature}: {self.text(feature, old)} -> {self.text(feature, new)}")
        return broken

    def text(self, feature: str, value: float) -> str:
        """A value as a person reads it: a category's name, 'missing', or the number."""
        if np.isnan(value):
            return "missing"
        if feature in self.levels:
            return self.levels[feature].get(float(value), f"{value:g}")
        return number_text(value, 6)


def unconstrained(
    data: Dataset, coded: Mapping[str, Mapping[float, str]] | None = None
) -> Constraints:
    """No rule but the default maximum number of changes, for `data`'s columns."""
    return Constraints(tuple(data.feature_names), _levels(data, coded))


def load_constraints(
    path: str | Path, data: Dataset, coded: Mapping[str, Mapping[float, str]] | None = None
) -> Constraints:
    """Read a constraints file (YAML) and check it against `data` (see `parse_constraints`)."""
    raw = read_bytes(path, "constraints file")
    return parse_constraints(raw, data, Path(path).name, coded)


def parse_constraints(
    raw: bytes | str,
    data: Dataset,
    name: str = "constraints.yaml",
    coded: Mapping[str, Mapping[float, str]] | None = None,
) -> Constraints:
    """The constraints in `raw` (YAML text, e.g. an upload called `name`), checked against
    `data`'s columns and categories; `coded` names the codes of numeric columns that hold
    categories (as `dashboard.reports.dictionary.coded_values` reads them)."""
    what = f"constraints file {name}"
    text = raw if isinstance(raw, str) else text_file(raw, what, f"a {EXPECTED}")
    root = compose_yaml(text, what, EXPECTED)
    levels = _levels(data, coded)
    reader = _Reader(what, tuple(data.feature_names), levels)
    if not isinstance(root, yaml.MappingNode):
        raise reader.error(root, f"expected a {EXPECTED}")
    sections: dict[str, yaml.Node] = {}
    for key, value in reader.pairs(root):
        if key.value not in KEYS:
            raise reader.error(key, f"unknown key {key.value!r}; the keys are {name_list(KEYS)}")
        sections[key.value] = value
    immutable = reader.immutable(sections.get("immutable"))
    monotone = reader.monotone(sections.get("monotone"), immutable)
    ranges = reader.ranges(sections.get("ranges"), immutable, monotone)
    transitions = reader.transitions(sections.get("transitions"), immutable)
    max_changes = reader.max_changes(sections.get("max_changes"))
    return Constraints(
        features=tuple(data.feature_names),
        levels=levels,
        immutable=frozenset(immutable),
        monotone=monotone,
        ranges=ranges,
        transitions=transitions,
        max_changes=max_changes,
    )


def _levels(
    data: Dataset, coded: Mapping[str, Mapping[float, str]] | None
) -> dict[str, dict[float, str]]:
    """code -> category name for each categorical column of `data`."""
    levels = {
        column: {float(code): str(name) for code, name in enumerate(known)}
        for column, known in data.categories.items()
    }
    for column, named in (coded or {}).items():
        if column in data.feature_names and column not in levels:
            levels[column] = {float(code): str(name) for code, name in named.items()}
    return levels


def unchanged(a: float, b: float) -> bool:
    """Whether a value stays the same (a missing value stays missing)."""
    return a == b or (np.isnan(a) and np.isnan(b))


class _Reader:
    """Reads each section from its nodes; every error names the file and the node's line."""

    def __init__(
        self, what: str, features: tuple[str, ...], levels: dict[str, dict[float, str]]
    ) -> None:
        self.what, self.features, self.levels = what, features, levels

    def error(self, node: yaml.Node, problem: str) -> WhyboxError:
        return WhyboxError(f"{self.what}, line {node.start_mark.line + 1}: {problem}")

    def pairs(self, node: yaml.MappingNode) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
        """The mapping's (key, value) nodes; a key that is not a plain name or is given
        twice is an error."""
        seen: set[str] = set()
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise self.error(key, "a key must be a plain name")
            if key.value in seen:
                raise self.error(key, f"{key.value!r} is given twice")
            seen.add(key.value)
        return list(node.value)

    def mapping(self, node: yaml.Node | None, section: str, expected: str) -> list:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.value in ("", "null")):
            return []
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{section} must be a mapping of {expected}")
        return self.pairs(node)

    def names(self, node: yaml.Node, section: str) -> list[yaml.ScalarNode]:
        """A list of plain names (a single name is a list of one)."""
        if isinstance(node, yaml.ScalarNode):
            return [] if node.value in ("", "null") else [node]
        items = node.value if isinstance(node, yaml.SequenceNode) else None
        if items is None or not all(isinstance(item, yaml.ScalarNode) for item in items):
            raise self.error(node, f"{section} must be a list of names, e.g. [Age, Marital]")
        return items

    def column(self, node: yaml.ScalarNode, kind: str | None = None) -> str:
        """A column of the data (of `kind` 'numeric' or 'categorical' where given)."""
        name = node.value
        if name not in self.features:
            shown = name_list(list(self.features))
            raise self.error(node, f"unknown column {name!r}; the data's columns are {shown}")
        if kind == "numeric" and name in self.levels:
            raise self.error(
                node, f"{name!r} is categorical; give it transitions, not a direction or range"
            )
        if kind == "categorical" and name not in self.levels:
            raise self.error(
                node,
                f"{name!r} is numeric; transitions apply to categorical columns (name its "
                "codes in the data dictionary to treat it as one)",
            )
        return name

    def number(self, node: yaml.Node, what: str) -> float:
        value = _scalar(node)
        if isinstance(value, bool) or not isinstance(value, int | float) or np.isnan(value):
            raise self.error(node, f"{what} must be a number, got {getattr(node, 'value', '')!r}")
        return float(value)

    def category(self, node: yaml.Node, column: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, f"a category of {column!r} must be a plain name")
        known = list(self.levels[column].values())
        if node.value not in known:
            raise self.error(
                node,
                f"{column!r} has no category {node.value!r}; its categories are {name_list(known)}",
            )
        return node.value

    def immutable(self, node: yaml.Node | None) -> dict[str, yaml.Node]:
        if node is None:
            return {}
        found: dict[str, yaml.Node] = {}
        for item in self.names(node, "immutable"):
            column = self.column(item)
            if column in found:
                raise self.error(item, f"{column!r} is listed twice")
            found[column] = item
        return found

    def contradiction(self, node: yaml.Node, column: str, immutable: dict, rule: str) -> None:
        if column in immutable:
            first = immutable[column].start_mark.line + 1
            raise self.error(
                node,
                f"{column!r} is immutable (line {first}) and cannot also have {rule}; "
                "remove one of the two",
            )

    def monotone(self, node: yaml.Node | None, immutable: dict) -> dict[str, str]:
        found = {}
        for key, value in self.mapping(node, "monotone", "columns to increase or decrease"):
            column = self.column(key, "numeric")
            self.contradiction(key, column, immutable, "a direction")
            if not isinstance(value, yaml.ScalarNode) or value.value not in DIRECTIONS:
                shown = getattr(value, "value", "")
                raise self.error(value, f"{column!r} must be increase or decrease, got {shown!r}")
            found[column] = value.value
        return found

    def ranges(
        self, node: yaml.Node | None, immutable: dict, monotone: dict[str, str]
    ) -> dict[str, tuple[float, float]]:
        found = {}
        for key, value in self.mapping(node, "ranges", "columns to [low, high]"):
            column = self.column(key, "numeric")
            self.contradiction(key, column, immutable, "a range")
            if not isinstance(value, yaml.SequenceNode) or len(value.value) != 2:
                raise self.error(value, f"the range of {column!r} must be [low, high]")
            low, high = (self.number(v, f"the range of {column!r}") for v in value.value)
            if low > high:
                raise self.error(
                    value, f"the range of {column!r} has low {low:g} above high {high:g}"
                )
            found[column] = (low, high)
        return found

    def transitions(
        self, node: yaml.Node | None, immutable: dict
    ) -> dict[str, dict[str, frozenset[str]]]:
        found = {}
        expected = "columns to {category: [categories it may become]}"
        for key, value in self.mapping(node, "transitions", expected):
            column = self.column(key, "categorical")
            self.contradiction(key, column, immutable, "transitions")
            moves: dict[str, frozenset[str]] = {}
            for source, targets in self.mapping(value, f"the transitions of {column!r}", ""):
                start = self.category(source, column)
                ends = [self.category(t, column) for t in self.names(targets, start)]
                if start in ends:
                    raise self.error(source, f"{column!r}: {start!r} may not move to itself")
                moves[start] = frozenset(ends)
            found[column] = moves
        return found

    def max_changes(self, node: yaml.Node | None) -> int:
        if node is None:
            return MAX_CHANGES
        value = self.number(node, "max_changes")
        if value != int(value) or value < 1:
            raise self.error(node, f"max_changes must be a whole number of at least 1: {value:g}")
        return int(value)


def _scalar(node: yaml.Node) -> Any:
    """The value of a scalar node as the safe loader reads it (numbers as numbers)."""
    if not isinstance(node, yaml.ScalarNode):
        return None
    return yaml.constructor.SafeConstructor().construct_object(node)
