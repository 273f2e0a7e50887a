"""Where does the model fail? A shallow tree over the user's columns fitted to each row's
error (0/1 for a classifier, absolute error for a regressor), read as cohorts in their
column and category names, ranked by their error.

The tree is fitted on a random half of the labelled rows and every cohort's error is
measured on the other half, with a 95 % interval (Wilson's for an error rate, the normal
one for a mean absolute error): a cohort chosen because its rows happened to be wrong would
otherwise look worse than it is. Each cohort also counts all its rows and their errors, and
holds their positions, so a view can go from a cohort to its explanations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats

from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.trust.tree_rules import node_paths, tree_inputs

DEPTH = 3
MIN_ROWS = 20
"""The fewest rows of the fitting half a cohort (a leaf of the tree) may hold."""
MIN_LABELLED = 4 * MIN_ROWS
METRIC = {"classification": "error rate", "regression": "mean absolute error"}


@dataclass(frozen=True)
class ErrorCohort:
    """A node of the error tree: the rows its `conditions` select (`rule` joins them),
    their count and error on every row (`rows`, `error`), the error on the held-out half
    with its 95 % `interval`, and where it sits in the tree (`node`, `parent`, `leaf`)."""

    node: int
    parent: int | None
    leaf: bool
    rule: str
    conditions: list[str]
    rows: int
    error: float
    held_out_rows: int
    held_out_error: float
    interval: tuple[float, float]
    members: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "rows": self.rows,
            "error": self.error,
            "held_out_rows": self.held_out_rows,
            "held_out_error": self.held_out_error,
            "interval": list(self.interval),
            "leaf": self.leaf,
        }


@dataclass(frozen=True)
class ErrorAnalysis:
    """The error tree's nodes (the root, every row, first) and the overall error."""

    metric: str
    nodes: list[ErrorCohort]
    fitted_rows: int
    held_out_rows: int
    seed: int

    @property
    def overall(self) -> ErrorCohort:
        return self.nodes[0]

    @property
    def ranked(self) -> list[ErrorCohort]:
        """The leaves (cohorts that do not overlap), highest held-out error first."""
        leaves = [n for n in self.nodes if n.leaf]
        return sorted(leaves, key=lambda n: (-n.held_out_error, -n.rows))

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "fitted_rows": self.fitted_rows,
            "held_out_rows": self.held_out_rows,
            "seed": self.seed,
            "overall": self.overall.to_dict(),
            "cohorts": [c.to_dict() for c in self.ranked],
        }


def error_analysis(
    model: Model,
    data: Dataset,
    depth: int = DEPTH,
    min_rows: int = MIN_ROWS,
    seed: int = 0,
    coded: Mapping[str, Mapping[float, str]] | None = None,
    scores: np.ndarray | None = None,
) -> ErrorAnalysis:
    """The cohorts of `data` (labelled) where `model` errs most; `scores` may pass the
    model's predictions in `performance.score_space(model)` when already made."""
    from sklearn.tree import DecisionTreeRegressor

    from whybox.model_zoo.performance import losses, score_space, truth

    if data.labels is None:
        raise WhyboxError("error analysis needs labels; name the data's label column")
    if len(data) < 2 * MIN_LABELLED:
        raise WhyboxError(
            f"error analysis needs at least {2 * MIN_LABELLED} labelled rows; the data has "
            f"{len(data)}"
        )
    if scores is None:
        scores = model.predict(data.values, score_space(model))
    loss = losses(model.task, truth(model, data.labels), scores)
    design, _ = tree_inputs(data, data.values, coded or {})
    features = design.inputs(data.values)
    shuffled = np.random.default_rng(seed).permutation(len(data))
    half = len(data) // 2
    fit, held_out = np.zeros(len(data), bool), np.zeros(len(data), bool)
    fit[shuffled[:half]], held_out[shuffled[half:]] = True, True
    tree = DecisionTreeRegressor(max_depth=depth, min_samples_leaf=min_rows, random_state=seed)
    tree.fit(features[fit], loss[fit])
    paths = tree.decision_path(features).tocsc()
    structure = tree.tree_
    parents = {
        int(child): node
        for node in range(structure.node_count)
        for child in (structure.children_left[node], structure.children_right[node])
        if child >= 0
    }
    nodes: dict[int, ErrorCohort] = {}
    for node, path in node_paths(tree).items():
        inside = paths[:, node].toarray().ravel() > 0
        conditions = [c.text for c in design.conditions(path)]
        tested = loss[inside & held_out]
        nodes[node] = ErrorCohort(
            node=node,
            parent=parents.get(node),
            leaf=structure.children_left[node] < 0,
            rule=" and ".join(conditions) or "every row",
            conditions=conditions,
            rows=int(inside.sum()),
            error=float(loss[inside].mean()),
            held_out_rows=len(tested),
            held_out_error=float(tested.mean()) if len(tested) else float("nan"),
            interval=_interval(model.task, tested),
            members=np.flatnonzero(inside),
        )
    kept = _supported(nodes, structure)
    return ErrorAnalysis(METRIC[model.task], kept, int(fit.sum()), int(held_out.sum()), seed)


def _supported(nodes: dict[int, ErrorCohort], structure: Any) -> list[ErrorCohort]:
    """The tree without the splits the held-out half does not support: two sibling leaves
    whose intervals overlap become their parent, a leaf, from the bottom up (a child's
    number is above its parent's), so a cohort is not cut in two on noise."""
    for node in sorted(nodes, reverse=True):
        left, right = structure.children_left[node], structure.children_right[node]
        if left < 0 or left not in nodes or right not in nodes:
            continue
        one, other = nodes[left], nodes[right]
        if one.leaf and other.leaf and _overlap(one.interval, other.interval):
            del nodes[left], nodes[right]
            nodes[node] = replace(nodes[node], leaf=True)
    return [nodes[node] for node in sorted(nodes)]


def _overlap(one: tuple[float, float], other: tuple[float, float]) -> bool:
    """Whether two intervals overlap (an empty one, NaN, overlaps everything)."""
    return not (one[0] > other[1] or other[0] > one[1])


def _interval(task: str, loss: np.ndarray) -> tuple[float, float]:
    """The 95 % interval of the mean of `loss`: Wilson's for 0/1 errors, else the normal."""
    if len(loss) == 0:
        return (float("nan"), float("nan"))
    if task == "classification":
        found = stats.binomtest(int(loss.sum()), len(loss)).proportion_ci(method="wilson")
        return (float(found.low), float(found.high))
    half = 1.96 * loss.std(ddof=1) / np.sqrt(len(loss)) if len(loss) > 1 else np.inf
    return (float(loss.mean() - half), float(loss.mean() + half))
