"""A decision tree over the user's columns, read as rules in their words: numbers split
as they are (whole numbers as whole numbers, missing values placed), each category of a
categorical or coded column a 0/1 column so a rule reads `Home = rent`. The cohort trees of
`versions`, the surrogate `rules` and the error analysis all read their trees here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from whybox.model_zoo import Dataset
from whybox.model_zoo.categories import names


@dataclass(frozen=True)
class Reader:
    """How a column of the tree's features reads in a rule."""

    feature: str
    category: str | None = None
    whole: bool = False
    missing: bool = False
    """Whether the column has missing values (a numeric rule then says where they go)."""


def tree_features(
    data: Dataset, coded: Mapping[str, Mapping[float, str]]
) -> tuple[np.ndarray, list[Reader]]:
    """The features the cohort tree splits on: numbers as they are (missing values allowed),
    each category of a categorical (or coded) column as a 0/1 column, so rules read
    `Home = rent`."""
    columns, readers = [], []
    for name in data.feature_names:
        values = data.frame[name].to_numpy(dtype=np.float64)
        if name in data.categories or name in coded:
            labels = category_names(data, name, values, coded)
            for category in dict.fromkeys(labels[labels != None]):  # noqa: E711 (elementwise)
                columns.append((labels == category).astype(np.float64))
                readers.append(Reader(name, category))
        else:
            present = values[~np.isnan(values)]
            columns.append(values)
            whole = bool(len(present) and (present % 1 == 0).all())
            readers.append(Reader(name, whole=whole, missing=len(present) < len(values)))
    return np.column_stack(columns), readers


def path_conditions(tree: Any, leaf: int, readers: list[Reader]) -> list[str]:
    """The path to `leaf` as conditions, one per feature: bounds merged, categories named."""
    structure = tree.tree_
    parent = {}
    for node in range(structure.node_count):
        for child, left in (
            (structure.children_left[node], True),
            (structure.children_right[node], False),
        ):
            if child >= 0:
                parent[child] = (node, left)
    bounds: dict[str, list[float]] = {}
    equal: dict[str, str] = {}
    unequal: dict[str, list[str]] = {}
    with_missing: dict[str, bool] = {}
    node = leaf
    while node in parent:
        node, left = parent[node]
        reader = readers[structure.feature[node]]
        threshold = float(structure.threshold[node])
        if reader.category is not None:
            if left:
                unequal.setdefault(reader.feature, []).append(reader.category)
            else:
                equal[reader.feature] = reader.category
            continue
        goes_with = bool(structure.missing_go_to_left[node]) == left
        with_missing[reader.feature] = with_missing.get(reader.feature, True) and goes_with
        low, high = bounds.setdefault(reader.feature, [-np.inf, np.inf])
        bounds[reader.feature] = (
            [low, min(high, threshold)] if left else [max(low, threshold), high]
        )
    conditions = []
    for feature in dict.fromkeys(r.feature for r in readers):
        if feature in equal:
            conditions.append(f"{feature} = {equal[feature]}")
        elif feature in unequal:
            conditions.append(f"{feature} not {', '.join(sorted(unequal[feature]))}")
        if feature in bounds:
            column = next(r for r in readers if r.feature == feature)
            text = range_text(feature, *bounds[feature], column.whole)
            missing = column.missing and with_missing[feature]
            conditions.append(f"({text} or missing)" if missing else text)
    return conditions


def range_text(feature: str, low: float, high: float, whole: bool) -> str:
    """`low < feature <= high` in words; for whole numbers as whole numbers (Age ≤ 24)."""
    if whole:
        low, high = np.floor(low) + 1, np.floor(high)
        text = {"low": f"{low:.0f} ≤ ", "high": f" ≤ {high:.0f}", "above": " ≥ "}
    else:
        text = {"low": f"{low:.4g} < ", "high": f" ≤ {high:.4g}", "above": " > "}
    if low > -np.inf and high < np.inf:
        return f"{text['low']}{feature}{text['high']}"
    if low > -np.inf:
        return f"{feature}{text['above']}{low:.{'0f' if whole else '4g'}}"
    return f"{feature}{text['high']}"


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
