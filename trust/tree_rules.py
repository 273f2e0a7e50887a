"""A decision tree over the user's columns, read as rules in their words. The surrogate
`rules`, the error analysis and the cohorts of `versions` all read their trees here.

- a categorical (or coded) column is one-hot coded for the tree (a column for each of its
  `MAX_LEVELS` most frequent categories), so a split reads "Home is rent" or "Home is
  not rent", and a rule merges them ("Home is neither rent nor owner");
- a numeric column's conditions along a path merge into the tightest bounds
  ("30 ≤ Age ≤ 44"); a whole-number column reads in whole numbers ("Age ≥ 30" for the
  tree's 29.5, the same for every whole number), another shows the shortest number that
  splits the data's rows exactly as the tree's threshold does;
- a missing value (NaN) follows the branch scikit-learn's tree learned for it (where no
  fitted row had one, the branch with more rows); a condition that missing values also
  meet says "or missing" where the column has any.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from whybox.model_zoo import Dataset
from whybox.model_zoo.categories import names
from whybox.model_zoo.tables import number_text

MAX_LEVELS = 30
"""A categorical column gives the tree a column for each of this many of its most frequent
categories: a rule names no rarer one (they follow the "is not" branches)."""


@dataclass(frozen=True)
class Condition:
    """What a rule asks of one feature: `text` in words, and the same as data.

    `low` < value ≤ `high` (the tree's exact thresholds, None where unbounded) for a
    numeric feature; `categories` (those that meet it, where the text names them) or
    `excluded` (those that do not) of the data's for a categorical one; `missing` says
    whether a missing value meets it (as the tree sends one, also where the data has none):
    "included", "excluded", or "only" (the condition is "is missing").
    """

    feature: str
    text: str
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    missing: str = "excluded"


@dataclass(frozen=True)
class TreeInputs:
    """The tree's input columns and how they read: a numeric feature as it is, a
    categorical one as a 0/1 column per category (NaN where missing)."""

    feature_names: list[str]
    categories: dict[str, list[str]]
    coded: dict[str, dict[float, str]]
    columns: tuple[tuple[int, float | None], ...]
    """Each input column: its feature's position, and the category code it tests or None."""
    whole: tuple[bool, ...]
    missing: tuple[bool, ...]
    observed: dict[int, np.ndarray]
    """Each feature's distinct values (codes) in the data, sorted."""

    @property
    def column_names(self) -> list[str]:
        return [
            name if code is None else f"{name} = {self.category(name, code)}"
            for name, code in ((self.feature_names[j], code) for j, code in self.columns)
        ]

    def category(self, feature: str, code: float) -> str:
        if feature in self.categories:
            return str(names(self.categories[feature], [code])[0])
        return str(self.coded[feature].get(code, f"{code:g}"))

    def inputs(self, values: np.ndarray) -> np.ndarray:
        X = np.empty((len(values), len(self.columns)), dtype=np.float32)
        for i, (j, code) in enumerate(self.columns):
            column = values[:, j]
            X[:, i] = column if code is None else np.where(np.isnan(column), np.nan, column == code)
        return X

    def conditions(self, path: list[tuple[int, float, bool, bool]]) -> tuple[Condition, ...]:
        """A path's splits (`node_paths`) as conditions, one per feature, in the order the
        tree first asks of each."""
        by_feature: dict[int, list[tuple[int, float, bool, bool]]] = {}
        for split in path:
            by_feature.setdefault(self.columns[split[0]][0], []).append(split)
        return tuple(self.condition(j, splits) for j, splits in by_feature.items())

    def condition(self, j: int, splits: list[tuple[int, float, bool, bool]]) -> Condition:
        """Feature `j`'s splits along a rule (input column, threshold, whether the rule takes
        the branch above it, whether missing values take the rule's branch) as one condition."""
        name = self.feature_names[j]
        if any(above and math.isinf(t) for _, t, above, _ in splits):  # missing against present
            return Condition(name, f"{name} is missing", missing="only")
        missing = "included" if all(follows for *_, follows in splits) else "excluded"
        tail = " or missing" if missing == "included" and self.missing[j] else ""
        finite = [(c, t, above) for c, t, above, _ in splits if not math.isinf(t)]
        if name in self.categories or name in self.coded:
            level = {c: self.category(name, self.columns[c][1]) for c, _, _ in finite}
            chosen = tuple(level[c] for c, _, above in finite if above)
            excluded = tuple(dict.fromkeys(level[c] for c, _, above in finite if not above))
            others = tuple(
                category
                for category in (self.category(name, code) for code in self.observed[j])
                if category not in excluded
            )
            every = len(self.observed[j]) <= MAX_LEVELS  # each of its categories has a column
            if chosen:
                text, excluded = f"{name} is {chosen[0]}", ()
            elif excluded and every and 0 < len(others) < max(2, len(excluded)):
                # the same rows of the data in fewer words: "is no" for "is not yes"
                text, chosen = f"{name} is {_either(others)}", others
            else:
                text = f"{name} is {_neither(excluded)}" if excluded else ""
            text = (text or f"{name} is not missing") + tail
            return Condition(name, text, None, None, chosen, excluded, missing)
        low = max((t for _, t, above in finite if above), default=None)
        high = min((t for _, t, above in finite if not above), default=None)
        text = self._bounds(j, low, high) or f"{name} is not missing"
        return Condition(name, text + tail, low, high, missing=missing)

    def _bounds(self, j: int, low: float | None, high: float | None) -> str:
        """`low` < value ≤ `high` in words, in whole numbers where the feature has only those."""
        name = self.feature_names[j]
        if self.whole[j]:  # value > 29.5 is value ≥ 30, value ≤ 44.5 is value ≤ 44
            least = None if low is None else f"{math.floor(low) + 1:,d}"
            most = None if high is None else f"{math.floor(high):,d}"
            if least is not None and most is not None:
                return f"{name} = {least}" if least == most else f"{least} ≤ {name} ≤ {most}"
            return f"{name} ≥ {least}" if least is not None else f"{name} ≤ {most}"
        low_text, high_text = (None if t is None else self._threshold(j, t) for t in (low, high))
        if low_text is not None and high_text is not None:
            return f"{low_text} < {name} ≤ {high_text}"
        if low_text is not None:
            return f"{name} > {low_text}"
        return f"{name} ≤ {high_text}" if high_text is not None else ""

    def _threshold(self, j: int, threshold: float) -> str:
        """The shortest number between the data's values either side of `threshold`: the
        same rows lie on each side of it, and it reads better than the midpoint. The tree
        compares values cast to float32; the words compare the data's own values."""
        observed = self.observed[j]
        at = int(np.searchsorted(observed.astype(np.float32), threshold, side="right"))
        below = observed[at - 1] if at > 0 else -np.inf
        above = observed[at] if at < len(observed) else np.inf
        middle = threshold if math.isinf(below - above) else (below + above) / 2
        for digits in range(1, 18):
            shown = float(f"{middle:.{digits}g}")
            if below <= shown < above:
                return number_text(shown, digits)
        return number_text(middle, 17)


def tree_inputs(
    data: Dataset, values: np.ndarray, coded: Mapping[str, Mapping[float, str]]
) -> tuple[TreeInputs, list[str]]:
    """The tree's input columns for `data`'s features, and notes on categories left out."""
    columns: list[tuple[int, float | None]] = []
    whole, missing, observed, notes = [], [], {}, []
    for j, name in enumerate(data.feature_names):
        column = values[:, j]
        present = column[~np.isnan(column)]
        missing.append(bool(np.isnan(column).any()))
        if name in data.categories or name in coded:
            codes, counts = np.unique(present, return_counts=True)
            kept = np.sort(codes[np.argsort(-counts, kind="stable")][:MAX_LEVELS])
            observed[j] = codes
            if len(codes) > MAX_LEVELS:
                notes.append(
                    f"{name}: the rules can name its {MAX_LEVELS} most frequent categories of "
                    f"{len(codes)}"
                )
            columns += [(j, float(code)) for code in kept]
            whole.append(False)
            continue
        columns.append((j, None))
        observed[j] = np.unique(present)
        whole.append(bool(np.all(observed[j] == np.round(observed[j]))))
    named = {name: {float(c): str(v) for c, v in coded[name].items()} for name in coded}
    design = TreeInputs(
        data.feature_names,
        dict(data.categories),
        {name: codes for name, codes in named.items() if name not in data.categories},
        tuple(columns),
        tuple(whole),
        tuple(missing),
        observed,
    )
    return design, notes


def node_paths(tree: Any) -> dict[int, list[tuple[int, float, bool, bool]]]:
    """Each node's splits from the root: (input column, threshold, whether the path takes
    the branch above the threshold, whether missing values take it too)."""
    nodes = tree.tree_
    paths, stack = {}, [(0, [])]
    while stack:
        node, path = stack.pop()
        paths[node] = path
        left, right = int(nodes.children_left[node]), int(nodes.children_right[node])
        if left == right:  # a leaf: both are -1
            continue
        column, threshold = int(nodes.feature[node]), float(nodes.threshold[node])
        missing_left = bool(nodes.missing_go_to_left[node])
        stack.append((right, [*path, (column, threshold, True, not missing_left)]))
        stack.append((left, [*path, (column, threshold, False, missing_left)]))
    return paths


def leaf_paths(tree: Any) -> dict[int, list[tuple[int, float, bool, bool]]]:
    """`node_paths` of the leaves only."""
    left = tree.tree_.children_left
    return {node: path for node, path in node_paths(tree).items() if left[node] < 0}


def _either(categories: Sequence[str]) -> str:
    if len(categories) <= 2:
        return " or ".join(categories)
    return f"one of {', '.join(categories)}"


def _neither(excluded: Sequence[str]) -> str:
    if len(excluded) == 1:
        return f"not {excluded[0]}"
    if len(excluded) == 2:
        return f"neither {excluded[0]} nor {excluded[1]}"
    return f"none of {', '.join(excluded)}"


def category_names(
    data: Dataset, feature: str, codes: np.ndarray, coded: Mapping[str, Mapping[float, str]]
) -> np.ndarray:
    """A categorical or coded column's names (None where missing)."""
    if feature in data.categories:
        return names(data.categories[feature], codes)
    named = coded[feature]
    return np.array(
        [None if np.isnan(c) else named.get(c, f"{c:g}") for c in codes.tolist()], dtype=object
    )


def value_text(
    data: Dataset, feature: str, value: float, coded: Mapping[str, Mapping[float, str]]
) -> str:
    if feature in data.categories or feature in coded:
        return str(category_names(data, feature, np.array([value]), coded)[0])
    return "missing" if np.isnan(value) else f"{value:.4g}"
