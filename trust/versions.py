"""What changed between two versions of a model (A, the current one; B, the candidate) on
the same rows: their decisions, their performance and where B got worse, and their reasons.

- Decisions: the predicted class under each (flips per class pair, and for a favourable
  class how many rows lose and gain it), and the change in the predicted probability or
  value, with the rows that changed most.
- Performance, where the data has labels: each model's metrics and their difference with
  95 % intervals from a paired bootstrap (both models scored on the same resampled rows).
- Cohorts where B is worse than A: a shallow regression tree fitted to the change in each
  row's loss (0/1 error, or absolute error for a regressor) on a random half of the rows,
  each of its leaves read as a rule and tested on the other half (a one-sided sign test of
  rows B gets worse against rows B gets better, Holm's correction across the leaves). The
  rules are chosen on one half and tested on the other, so the test is honest; a rule is
  reported only where B is also worse by at least `MIN_GAP`, so noise and trivial
  differences are not reported as a regression.
- Reasons: both models explained by the same method, background rows, output space, class
  and seed, so the differences are the models'; each feature's mean |attribution| under
  both with standard errors, and for the rows that flipped or changed most, their top
  reasons side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.image_data import ImageSet
from whybox.trust.shift import holm
from whybox.trust.tree_rules import node_paths, tree_inputs, value_text

BOOTSTRAP = 200
"""Paired resamples of the rows for the performance intervals."""
LARGEST_CHANGES = 20
"""Rows with the largest change in prediction, listed."""
EXPLAINED_ROWS = 200
"""Rows (a seeded sample) whose attributions under both models give the importance change."""
COMPARED_ROWS = 10
"""Rows that flipped or changed most whose reasons are set side by side."""
REASONS = 3
REASONS_BUDGET = 2**25
"""Most model evaluations an exact method may spend on each model's rows when the method is
chosen automatically (about 10 s for a small network on 2 cores); past it, a sampled one."""
COHORT_DEPTH = 3
MIN_COHORT = 30
"""The fewest rows of the fitting half a cohort may hold."""
MIN_GAP = {"classification": 0.05, "regression": 0.10}
"""How much worse B must be in a cohort to report it: 5 points of error rate, or 10 % more
mean absolute error than A's there."""


@dataclass(frozen=True)
class Cohort:
    """Rows where B is worse than A, as a rule on the features. `a_loss`, `b_loss`: error
    rate (or mean absolute error) of each model on all the rule's rows; `worse` and `better`
    count the held-out rows B gets worse and better, whose sign test gives `p_value`;
    `gap_interval` is the 95 % interval of B's loss minus A's there (relative to A's for
    a regressor)."""

    rule: str
    conditions: list[str]
    rows: int
    a_loss: float
    b_loss: float
    held_out_rows: int
    worse: int
    better: int
    gap: float
    gap_interval: tuple[float, float]
    p_value: float
    p_adjusted: float
    performance: dict[str, dict[str, Any]]
    members: np.ndarray = field(repr=False, compare=False)
    """The positions of the rule's rows in the data."""


@dataclass(frozen=True)
class VersionDiff:
    """Everything `diff_models` found; `to_json` gives the record written and reported."""

    models: dict[str, dict[str, Any]]
    task: str
    rows: int
    seed: int
    alpha: float
    decisions: dict[str, Any]
    performance: dict[str, dict[str, Any]] | None
    cohorts: list[Cohort] | None
    cohort_search: dict[str, Any] | None
    reasons: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        for cohort in record["cohorts"] or ():
            cohort.pop("members")
        return record


def check_compatible(a: Model, b: Model) -> None:
    """Raise a one-line `WhyboxError` saying what differs where the models do not take the
    same inputs or predict the same thing; classes in another order are fine."""
    if a.modality != b.modality:
        raise WhyboxError(f"model A takes {a.modality} input and model B {b.modality} input")
    if a.modality == "image" and a.input_shape != b.input_shape:
        raise WhyboxError(
            f"model A takes images of shape {a.input_shape} and model B {b.input_shape}; "
            "compare models that take the same image size"
        )
    if a.task != b.task:
        raise WhyboxError(
            f"model A is a {_noun(a)} and model B a {_noun(b)}; they do not predict the same thing"
        )
    if a.task == "classification" and set(a.output_names) != set(b.output_names):
        raise WhyboxError(
            f"model A's classes are {', '.join(a.output_names)} and model B's "
            f"{', '.join(b.output_names)}; compare models with the same classes"
        )
    if a.modality == "tabular":
        if a.feature_names and b.feature_names:
            only_a = [f for f in a.feature_names if f not in b.feature_names]
            only_b = [f for f in b.feature_names if f not in a.feature_names]
            if only_a or only_b:
                differ = "; ".join(
                    f"only model {side} takes {', '.join(columns[:5])}"
                    + (f" and {len(columns) - 5} more" if len(columns) > 5 else "")
                    for side, columns in (("A", only_a), ("B", only_b))
                    if columns
                )
                raise WhyboxError(f"the models take different columns: {differ}")
        elif a.n_features != b.n_features:
            raise WhyboxError(f"model A takes {a.n_features} features and model B {b.n_features}")


def _noun(model: Model) -> str:
    return "classifier" if model.task == "classification" else "regressor"


def diff_models(
    a: Model,
    data_a: Dataset | ImageSet,
    b: Model,
    data_b: Dataset | ImageSet,
    favourable: str | None = None,
    method: str = "auto",
    seed: int = 0,
    alpha: float = 0.05,
    explain: bool = True,
    coded: Mapping[str, Mapping[float, str]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> VersionDiff:
    """Compare model `a` with model `b` on the same rows: `data_a` and `data_b` are one data
    file read for each model (each in its model's column order and category codes).

    `favourable` names the class that is good news for the row (approved, healthy): flips
    into and out of it are counted. `method` names the explainer both models are explained
    by (`auto`: the best one that supports both). `coded` names the numeric columns that
    hold category codes (a data dictionary's coded values: code -> name), read as
    categories in rules and reasons.
    """
    check_compatible(a, b)
    if len(data_a) != len(data_b):
        raise WhyboxError(
            f"the data has {len(data_a)} rows for model A and {len(data_b)} for model B; "
            "give one data file for both"
        )
    if favourable is not None and (a.task != "classification" or favourable not in a.output_names):
        raise WhyboxError(
            f"favourable class {favourable!r} is not among the model's classes "
            f"({', '.join(a.output_names)})"
        )
    say = progress or (lambda stage: None)
    say("predicting")
    space = _common_space(a, b, ("probability", "margin", "value"))
    scores_a = a.predict(data_a.values, space)
    scores_b = b.predict(data_b.values, space)[:, _alignment(a, b)]
    decisions = _decisions(a, data_a, scores_a, scores_b, space, favourable)
    notes = []
    performance = cohorts = search = None
    if data_a.labels is None:
        notes.append("The data has no labels: performance and cohorts need them.")
    else:
        from whybox.model_zoo.performance import truth

        say("measuring performance")
        labels = truth(a, data_a.labels)
        rng = np.random.default_rng(seed)
        performance = paired_performance(a.task, labels, scores_a, scores_b, space, rng)
        if isinstance(data_a, Dataset):
            say("looking for cohorts where B is worse")
            cohorts, search = _cohorts(
                a.task, data_a, labels, scores_a, scores_b, space, alpha, seed, coded or {}
            )
    reasons = None
    if explain and isinstance(data_a, Dataset):
        say("explaining both models")
        target = _target(a, scores_a, favourable)
        reasons = _reasons(a, data_a, b, data_b, decisions, target, method, seed, coded or {})
    elif explain:
        notes.append("Reasons are compared for tables; image models are compared by decisions.")
    return VersionDiff(
        models={"A": _identity(a), "B": _identity(b)},
        task=a.task,
        rows=len(data_a),
        seed=seed,
        alpha=alpha,
        decisions=decisions,
        performance=performance,
        cohorts=cohorts,
        cohort_search=search,
        reasons=reasons,
        notes=notes,
    )


def _identity(model: Model) -> dict[str, Any]:
    return {"name": model.name, "format": model.format, "kind": model.kind, "sha256": model.sha256}


def _common_space(a: Model, b: Model, preference: tuple[str, ...]) -> str:
    for space in preference:
        if space in a.output_spaces and space in b.output_spaces:
            return space
    raise WhyboxError(
        f"the models share no output space (A: {', '.join(a.output_spaces)}; "
        f"B: {', '.join(b.output_spaces)})"
    )


def _alignment(a: Model, b: Model) -> list[int]:
    """B's output columns in A's class order."""
    return [b.output_names.index(name) for name in a.output_names]


def _target(a: Model, scores_a: np.ndarray, favourable: str | None) -> str | None:
    """The class both models' reasons are given for: the favourable one, a binary model's
    second, else the class A predicts most often (None for a regressor)."""
    if a.task == "regression":
        return None
    if favourable is not None:
        return favourable
    if a.n_outputs == 2:
        return a.output_names[1]
    return a.output_names[int(np.bincount(scores_a.argmax(axis=1)).argmax())]


def _explained_column(a: Model, favourable: str | None) -> int:
    if a.task == "regression":
        return 0
    if favourable is not None:
        return a.output_names.index(favourable)
    return 1 if a.n_outputs == 2 else -1


def _decisions(
    a: Model,
    data: Dataset | ImageSet,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    space: str,
    favourable: str | None,
) -> dict[str, Any]:
    column = _explained_column(a, favourable)
    if column >= 0:
        output = "value" if a.task == "regression" else f"{space} of {a.output_names[column]!r}"
        change = scores_b[:, column] - scores_a[:, column]
    else:  # several classes: how much B's probability of A's predicted class moved
        output = f"{space} of the class A predicts"
        chosen = scores_a.argmax(axis=1)[:, None]
        change = (
            np.take_along_axis(scores_b, chosen, 1)[:, 0]
            - np.take_along_axis(scores_a, chosen, 1)[:, 0]
        )
    decisions: dict[str, Any] = {"space": space, "output": output, "change": _spread(change)}
    order = np.argsort(-np.abs(change), kind="stable")
    if a.task == "classification":
        class_a, class_b = scores_a.argmax(axis=1), scores_b.argmax(axis=1)
        flipped = class_a != class_b
        pairs = pd.crosstab(class_a[flipped], class_b[flipped]) if flipped.any() else None
        decisions["flips"] = {
            "rows": int(flipped.sum()),
            "share": float(flipped.mean()),
            "pairs": []
            if pairs is None
            else [
                {"a": a.output_names[i], "b": a.output_names[j], "rows": int(pairs.loc[i, j])}
                for i in pairs.index
                for j in pairs.columns
                if pairs.loc[i, j]
            ],
        }
        if favourable is not None:
            good = a.output_names.index(favourable)
            decisions["favourable"] = {
                "class": favourable,
                "lost": int(((class_a == good) & (class_b != good)).sum()),
                "gained": int(((class_a != good) & (class_b == good)).sum()),
            }
        # Flipped rows first, then by the size of the change.
        order = np.lexsort((np.argsort(order, kind="stable"), ~flipped))
    ids = getattr(data, "ids", None)
    decisions["largest"] = [
        {
            "row": int(i),
            "id": None if ids is None else str(ids.iloc[i]),
            "a": float(scores_a[i, column]) if column >= 0 else None,
            "b": float(scores_b[i, column]) if column >= 0 else None,
            "change": float(change[i]),
            **(
                {
                    "class_a": a.output_names[int(scores_a[i].argmax())],
                    "class_b": a.output_names[int(scores_b[i].argmax())],
                }
                if a.task == "classification"
                else {}
            ),
        }
        for i in order[:LARGEST_CHANGES]
    ]
    return decisions


def _spread(change: np.ndarray) -> dict[str, Any]:
    """A histogram of the change and its quantiles."""
    counts, edges = np.histogram(change, bins=30)
    quantiles = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    return {
        "mean": float(change.mean()),
        "mean_absolute": float(np.abs(change).mean()),
        "quantiles": {
            str(q): float(v) for q, v in zip(quantiles, np.quantile(change, quantiles), strict=True)
        },
        "edges": edges.tolist(),
        "counts": counts.tolist(),
    }


def paired_performance(
    task: str,
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    space: str,
    rng: np.random.Generator,
) -> dict[str, dict[str, Any]]:
    """Each metric for A and B and B minus A, with 95 % intervals from `BOOTSTRAP` paired
    resamples (the same rows for both models, so what the two share cancels)."""
    from whybox.model_zoo.performance import metrics

    measured = [metrics(task, labels, s, space) for s in (scores_a, scores_b)]
    draws: dict[str, list[tuple[float, float]]] = {m: [] for m in measured[0] if m != "rows"}
    for _ in range(BOOTSTRAP):
        drawn = np.bincount(rng.integers(0, len(labels), len(labels)), minlength=len(labels))
        resampled = [metrics(task, labels, s, space, drawn) for s in (scores_a, scores_b)]
        for metric in draws:
            if metric in resampled[0]:
                draws[metric].append((resampled[0][metric], resampled[1][metric]))
    result = {}
    for metric, pairs in draws.items():
        values = np.array(pairs).reshape(-1, 2)
        result[metric] = {
            "a": measured[0][metric],
            "b": measured[1][metric],
            "change": measured[1][metric] - measured[0][metric],
            **{
                f"{name}_interval": _interval(column) if len(values) else None
                for name, column in (
                    ("a", values[:, 0]),
                    ("b", values[:, 1]),
                    ("change", values[:, 1] - values[:, 0]),
                )
            },
        }
    return result


def _interval(draws: np.ndarray) -> list[float]:
    return [float(q) for q in np.percentile(draws, [2.5, 97.5])]


def _cohorts(
    task: str,
    data: Dataset,
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    space: str,
    alpha: float,
    seed: int,
    coded: Mapping[str, Mapping[float, str]],
) -> tuple[list[Cohort], dict[str, Any]]:
    """The rules where B is worse than A (see the module's docstring), most rows first."""
    from sklearn.tree import DecisionTreeRegressor

    from whybox.model_zoo.performance import losses

    loss_a, loss_b = losses(task, labels, scores_a), losses(task, labels, scores_b)
    design, _ = tree_inputs(data, data.values, coded)
    features = design.inputs(data.values)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(data))
    fit, held_out = np.sort(shuffled[: len(data) // 2]), np.sort(shuffled[len(data) // 2 :])
    search = {
        "depth": COHORT_DEPTH,
        "min_rows": MIN_COHORT,
        "min_gap": MIN_GAP[task],
        "fitted_rows": len(fit),
        "tested_rows": len(held_out),
        "candidates": 0,
    }
    if len(fit) < 2 * MIN_COHORT:
        return [], search
    tree = DecisionTreeRegressor(
        max_depth=COHORT_DEPTH, min_samples_leaf=max(MIN_COHORT, len(fit) // 50), random_state=seed
    ).fit(features[fit], (loss_b - loss_a)[fit])
    leaves = tree.apply(features)
    candidates = [
        leaf
        for leaf in np.unique(leaves[fit])
        if tree.tree_.value[leaf, 0, 0] > 0 and (leaves[held_out] == leaf).any()
    ]
    search["candidates"] = len(candidates)
    tests = [
        _sign_test(task, loss_a, loss_b, held_out[leaves[held_out] == leaf]) for leaf in candidates
    ]
    adjusted = holm(np.array([t["p_value"] for t in tests])) if tests else []
    found = {
        leaf: {**test, "p_adjusted": float(p)}
        for leaf, test, p in zip(candidates, tests, adjusted, strict=True)
        if p < alpha and test["gap"] >= MIN_GAP[task]
    }
    paths = tree.decision_path(features).tocsc()
    found = _merged(
        tree,
        found,
        lambda node: paths[:, node].toarray().ravel() > 0,
        lambda rows: _sign_test(task, loss_a, loss_b, held_out[rows[held_out]]),
        MIN_GAP[task],
    )
    cohorts = []
    paths_from_root = node_paths(tree)
    for node, test in found.items():
        members = np.flatnonzero(paths[:, node].toarray().ravel())
        conditions = [c.text for c in design.conditions(paths_from_root[node])]
        cohorts.append(
            Cohort(
                rule=" and ".join(conditions) or "every row",
                conditions=conditions,
                rows=len(members),
                a_loss=float(loss_a[members].mean()),
                b_loss=float(loss_b[members].mean()),
                **test,
                performance=paired_performance(
                    task, labels[members], scores_a[members], scores_b[members], space, rng
                ),
                members=members,
            )
        )
    return sorted(cohorts, key=lambda c: -c.rows), search


def _merged(
    tree: Any,
    found: dict[int, dict],
    rows_of: Callable[[int], np.ndarray],
    test: Callable[[np.ndarray], dict],
    min_gap: float,
) -> dict[int, dict]:
    """Two sibling leaves both reported, whose gaps the held-out rows cannot tell apart
    (their intervals overlap), become their parent: one rule instead of two split on noise,
    where B is worse by `min_gap` too. B worse on each part means B worse on the union, so
    the parent's claim holds at the larger of the parts' adjusted p-values (closed testing):
    no new test enters the family."""
    structure = tree.tree_
    merged = True
    while merged:
        merged = False
        for node in range(structure.node_count):
            left, right = structure.children_left[node], structure.children_right[node]
            if left in found and right in found and _overlap(found[left], found[right]):
                union = test(rows_of(node))
                if union["gap"] >= min_gap:
                    p_adjusted = max(found.pop(left)["p_adjusted"], found.pop(right)["p_adjusted"])
                    found[node] = {**union, "p_adjusted": p_adjusted}
                    merged = True
    return found


def _overlap(one: dict, other: dict) -> bool:
    (low, high), (other_low, other_high) = one["gap_interval"], other["gap_interval"]
    return low <= other_high and other_low <= high


def _sign_test(task: str, loss_a: np.ndarray, loss_b: np.ndarray, rows: np.ndarray) -> dict:
    """Whether B is worse than A on `rows` (held out from the tree): a one-sided sign test
    of the rows B gets worse against those it gets better, and the gap with its interval."""
    worse = int((loss_b[rows] > loss_a[rows]).sum())
    better = int((loss_b[rows] < loss_a[rows]).sum())
    p_value = (
        stats.binomtest(worse, worse + better, 0.5, alternative="greater").pvalue
        if worse + better
        else 1.0
    )
    difference = loss_b[rows] - loss_a[rows]
    scale = 1.0 if task == "classification" else max(float(loss_a[rows].mean()), 1e-12)
    half_width = 1.96 * difference.std(ddof=1) / np.sqrt(len(rows)) if len(rows) > 1 else np.inf
    gap = float(difference.mean() / scale)
    return {
        "held_out_rows": len(rows),
        "worse": worse,
        "better": better,
        "gap": gap,
        "gap_interval": (float(gap - half_width / scale), float(gap + half_width / scale)),
        "p_value": float(p_value),
    }


def _explainer(
    a: Model, data_a: Dataset, b: Model, data_b: Dataset, method: str, seed: int, rows: int
):
    """One explainer for both models: `method`, or the first of Auto's choices for A that
    supports B too, an exact method only within `REASONS_BUDGET` evaluations for the `rows`
    (else the sampled one after it); in the output space both have, preferring margins
    (additive)."""
    from whybox.explainers import registry
    from whybox.explainers.auto import Auto

    space = _common_space(a, b, ("margin", "probability", "value"))
    classes = (
        [registry.get(method)]
        if method != "auto"
        else [c for c in Auto._candidates(a) if c in Auto._candidates(b)]
    )
    refusals = []
    for cls in classes:
        given = {"seed": seed, "output_space": space}
        if method == "auto":
            given["max_cost"] = max(1, REASONS_BUDGET // rows)
        declared = {p.name for p in cls.params}
        explainer = cls(**{k: v for k, v in given.items() if k in declared})
        for model, data, side in ((a, data_a, "A"), (b, data_b, "B")):
            support = explainer.supports(model, data)
            if not support:
                refusals.append(f"{cls.name} cannot explain model {side}: {support.reason}")
                break
        else:
            return explainer
    raise WhyboxError("; ".join(refusals) or f"no explainer supports both models ({method})")


def _reasons(
    a: Model,
    data_a: Dataset,
    b: Model,
    data_b: Dataset,
    decisions: dict[str, Any],
    target: str | None,
    method: str,
    seed: int,
    coded: Mapping[str, Mapping[float, str]],
) -> dict[str, Any]:
    """Mean |attribution| per feature under both models on `EXPLAINED_ROWS` sampled rows
    (and the rows compared), and the compared rows' top reasons side by side."""
    compared = [entry["row"] for entry in decisions["largest"][:COMPARED_ROWS]]
    rng = np.random.default_rng(seed)
    sampled = np.sort(rng.choice(len(data_a), min(EXPLAINED_ROWS, len(data_a)), replace=False))
    rows = np.array(sorted(set(sampled.tolist()) | set(compared)))
    explainer = _explainer(a, data_a, b, data_b, method, seed, len(rows))
    explained = {
        side: explainer.explain(model, data, rows, target=target)
        for side, model, data in (("A", a, data_a), ("B", b, data_b))
    }
    order_b = [b.feature_names.index(f) for f in a.feature_names] if b.feature_names else None
    values_a = explained["A"].values
    values_b = explained["B"].values if order_b is None else explained["B"].values[:, order_b]
    in_sample = np.isin(rows, sampled)
    magnitude_a, magnitude_b = np.abs(values_a[in_sample]), np.abs(values_b[in_sample])
    features = _importance_change(data_a.feature_names, magnitude_a, magnitude_b)
    position = {row: i for i, row in enumerate(rows.tolist())}
    return {
        "method": explained["A"].method,
        "output_space": explained["A"].output_space,
        "target": target,
        "seed": seed,
        "params": explained["A"].params,
        "rows_explained": int(in_sample.sum()),
        "features": features,
        "rows": [
            _side_by_side(data_a, row, values_a[position[row]], values_b[position[row]], coded)
            for row in compared
        ],
    }


def _importance_change(
    feature_names: list[str], magnitude_a: np.ndarray, magnitude_b: np.ndarray
) -> list[dict[str, Any]]:
    """Per feature: mean |attribution| under A and B with standard errors, the change with
    its (paired) standard error, and the rank under each; largest change first."""
    n = len(magnitude_a)
    mean_a, mean_b = magnitude_a.mean(axis=0), magnitude_b.mean(axis=0)
    difference = magnitude_b - magnitude_a
    error = (
        (lambda x: x.std(axis=0, ddof=1) / np.sqrt(n))
        if n > 1
        else (lambda x: np.zeros(x.shape[1]))
    )
    rank_a = np.argsort(np.argsort(-mean_a, kind="stable"), kind="stable") + 1
    rank_b = np.argsort(np.argsort(-mean_b, kind="stable"), kind="stable") + 1
    rows = [
        {
            "feature": name,
            "a": float(mean_a[j]),
            "a_se": float(error(magnitude_a)[j]),
            "b": float(mean_b[j]),
            "b_se": float(error(magnitude_b)[j]),
            "change": float(mean_b[j] - mean_a[j]),
            "change_se": float(error(difference)[j]),
            "rank_a": int(rank_a[j]),
            "rank_b": int(rank_b[j]),
        }
        for j, name in enumerate(feature_names)
    ]
    return sorted(rows, key=lambda r: -abs(r["change"]))


def _side_by_side(
    data: Dataset,
    row: int,
    values_a: np.ndarray,
    values_b: np.ndarray,
    coded: Mapping[str, Mapping[float, str]],
) -> dict:
    """One row's top reasons under each model, and those that appeared, disappeared or
    changed sign between them."""
    shown = data.frame.iloc[row]

    def top(values: np.ndarray) -> list[dict[str, Any]]:
        order = np.argsort(-np.abs(values), kind="stable")[:REASONS]
        return [
            {
                "feature": data.feature_names[j],
                "value": value_text(data, data.feature_names[j], shown.iloc[j], coded),
                "attribution": float(values[j]),
            }
            for j in order
            if values[j] != 0
        ]

    top_a, top_b = top(values_a), top(values_b)
    named_a, named_b = [r["feature"] for r in top_a], [r["feature"] for r in top_b]
    index = {name: j for j, name in enumerate(data.feature_names)}
    return {
        "row": row,
        "id": None if data.ids is None else str(data.ids.iloc[row]),
        "a": top_a,
        "b": top_b,
        "appeared": [f for f in named_b if f not in named_a],
        "disappeared": [f for f in named_a if f not in named_b],
        "changed_sign": [
            f
            for f in dict.fromkeys(named_a + named_b)
            if np.sign(values_a[index[f]]) * np.sign(values_b[index[f]]) < 0
        ],
    }
