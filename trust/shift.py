"""Has the population moved? Two-sample tests of a data set against its reference.

Per feature, a test suited to its type, with an effect size that does not grow with the
number of rows (the p-value of a large table is tiny for any difference) and reads the same
for both types, so features rank on one scale: a share of rows, 0 to 1.

- numeric: Kolmogorov-Smirnov on the values present; effect, its statistic (the largest
  gap between the two tables' shares of rows at or below a value); also the Wasserstein
  distance in reference standard deviations (for a pure shift of location, the shift);
- categorical, missing a category of its own: chi-squared on the 2 x k table of counts
  (categories too rare for it pooled); effect, the total variation distance (the share of
  rows that would have to change category to match).

And a classifier two-sample test: LightGBM trained to tell reference rows from new ones,
its AUC on held-out rows with a 95 % interval, a p-value from the Mann-Whitney null (AUC
0.5), and the features that tell the tables apart ranked by mean |tree SHAP| (LightGBM's
own TreeSHAP). All the tests are one family: Holm's correction keeps the chance that any
flags shift where there is none at `alpha`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats

from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.categories import names
from whybox.model_zoo.limits import available_cores
from whybox.model_zoo.performance import binary_auc

MIN_ROWS = 20
"""Fewer rows than this in either table is too few for the tests to mean anything."""
CLASSIFIER_ROWS = 50_000
"""At most this many rows of each table train and test the classifier (a seeded sample)."""
EXPLAINED_HELD_OUT = 5_000
"""At most this many held-out rows are explained to rank the features the classifier uses."""
HISTOGRAM_BINS = 20
MIN_EXPECTED = 5.0
"""Categories expected fewer times than this in either table are pooled for chi-squared."""


@dataclass(frozen=True)
class FeatureShift:
    """One feature's test. `histogram` has the bin edges (numeric: `edges`) or the category
    names (`categories`), and each table's share of its rows per bin (`reference`, `data`;
    numeric: of the rows with a value)."""

    feature: str
    kind: str
    test: str
    statistic: float
    p_value: float
    effect: float
    effect_name: str
    missing: dict[str, float]
    histogram: dict[str, list]
    shift_sd: float | None = None
    p_adjusted: float = float("nan")
    shifted: bool = False


@dataclass(frozen=True)
class ClassifierTest:
    """Whether a classifier tells the tables apart: held-out AUC (0.5: a coin's), its 95 %
    interval, and the mean |tree SHAP| of each feature on (up to `EXPLAINED_HELD_OUT`)
    held-out rows, largest first."""

    auc: float
    interval: tuple[float, float]
    p_value: float
    train_rows: int
    test_rows: int
    importance: dict[str, float]
    p_adjusted: float = float("nan")
    shifted: bool = False


@dataclass(frozen=True)
class ShiftReport:
    """A data set against its reference: every feature's test, largest effect first, and
    the classifier test; `shifted` where any test flags shift after Holm's correction."""

    reference_rows: int
    rows: int
    alpha: float
    shifted: bool
    features: list[FeatureShift]
    classifier: ClassifierTest | None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def shift_report(
    reference: Dataset,
    data: Dataset,
    alpha: float = 0.05,
    classifier: bool = True,
    seed: int = 0,
    coded: Mapping[str, Mapping[float, str]] | None = None,
) -> ShiftReport:
    """Test every feature of `data` against `reference` (as `load_reference` matched them)
    and, with `classifier`, the two tables as wholes. `coded` names the numeric columns
    that hold category codes (a data dictionary's coded values: code -> name), tested as
    categories."""
    for table, rows in (("reference", len(reference)), ("data", len(data))):
        if rows < MIN_ROWS:
            raise WhyboxError(
                f"the {table} has {rows} row(s); a shift test needs at least {MIN_ROWS} rows "
                "in each table"
            )
    features = [_feature_test(reference, data, name, coded or {}) for name in data.feature_names]
    found = _classifier_test(reference, data, seed) if classifier else None
    p_values = [f.p_value for f in features] + ([found.p_value] if found else [])
    adjusted = holm(np.array(p_values))
    features = [
        replace(f, p_adjusted=float(p), shifted=bool(p < alpha))
        for f, p in zip(features, adjusted, strict=False)
    ]
    if found:
        found = replace(found, p_adjusted=float(adjusted[-1]), shifted=bool(adjusted[-1] < alpha))
    return ShiftReport(
        reference_rows=len(reference),
        rows=len(data),
        alpha=alpha,
        shifted=bool((adjusted < alpha).any()),
        features=sorted(features, key=lambda f: -f.effect),
        classifier=found,
    )


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values: rejecting where they are below alpha keeps the
    chance of any false rejection at most alpha, whatever the tests' dependence."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p_values[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def _feature_test(
    reference: Dataset, data: Dataset, feature: str, coded: Mapping[str, Mapping[float, str]]
) -> FeatureShift:
    old = reference.frame[feature].to_numpy(dtype=np.float64)
    new = data.frame[feature].to_numpy(dtype=np.float64)
    missing = {"reference": float(np.isnan(old).mean()), "data": float(np.isnan(new).mean())}
    if feature in reference.categories:
        known = reference.categories[feature]
        return _categorical_test(feature, old, new, lambda c: names(known, c), missing)
    if feature in coded:
        named = coded[feature]
        return _categorical_test(
            feature, old, new, lambda c: [named.get(v, f"{v:g}") for v in c.tolist()], missing
        )
    return _numeric_test(feature, old, new, missing)


def _numeric_test(
    feature: str, old: np.ndarray, new: np.ndarray, missing: dict[str, float]
) -> FeatureShift:
    old, new = old[~np.isnan(old)], new[~np.isnan(new)]
    if len(old) < 2 or len(new) < 2:  # nothing to compare: no evidence either way
        statistic, p_value, shift_sd = 0.0, 1.0, 0.0
    else:
        # the asymptotic p-value is accurate from ~100 rows a side, the exact one slow there
        result = stats.ks_2samp(
            old, new, method="auto" if min(len(old), len(new)) < 100 else "asymp"
        )
        statistic, p_value = float(result.statistic), float(result.pvalue)
        scale = float(np.std(old)) or 1.0
        shift_sd = float(stats.wasserstein_distance(old, new)) / scale
    both = np.concatenate([old, new])
    low, high = np.percentile(both, [0.5, 99.5]) if len(both) else (0.0, 1.0)
    edges = np.linspace(low, high if high > low else low + 1.0, HISTOGRAM_BINS + 1)
    return FeatureShift(
        feature=feature,
        kind="numeric",
        test="Kolmogorov-Smirnov",
        statistic=statistic,
        p_value=p_value,
        effect=statistic,
        effect_name="largest gap in the share of rows at or below a value",
        shift_sd=shift_sd,
        missing=missing,
        histogram={
            "edges": edges.tolist(),
            "reference": _shares(old, edges),
            "data": _shares(new, edges),
        },
    )


def _shares(values: np.ndarray, edges: np.ndarray) -> list[float]:
    """Each bin's share of `values`, those beyond the edges counted in the end bins."""
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), edges)
    return (counts / max(len(values), 1)).tolist()


def _categorical_test(
    feature: str,
    old: np.ndarray,
    new: np.ndarray,
    names_of: Callable[[np.ndarray], Sequence[str | None]],
    missing: dict[str, float],
) -> FeatureShift:
    """`names_of` turns codes (no NaN) into category names."""
    codes = np.unique(np.concatenate([old, new]))  # sorted, NaN last (one, as a category)
    codes = np.concatenate([codes[~np.isnan(codes)], [np.nan] if np.isnan(codes).any() else []])
    table = np.array([[_count(column, c) for c in codes] for column in (old, new)])
    shares = table / table.sum(axis=1, keepdims=True)
    pooled = _pool_rare(table)
    if pooled.shape[1] < 2:
        statistic, p_value = 0.0, 1.0
    else:
        result = stats.chi2_contingency(pooled, correction=False)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    present = codes[~np.isnan(codes)]
    labels = [str(c) for c in names_of(present)]
    labels += ["missing"] * (len(codes) - len(present))
    return FeatureShift(
        feature=feature,
        kind="categorical",
        test="chi-squared",
        statistic=statistic,
        p_value=p_value,
        effect=float(0.5 * np.abs(shares[0] - shares[1]).sum()),
        effect_name="share of rows in other categories (total variation distance)",
        missing=missing,
        histogram={
            "categories": labels,
            "reference": shares[0].tolist(),
            "data": shares[1].tolist(),
        },
    )


def _count(column: np.ndarray, code: float) -> int:
    return int(np.isnan(column).sum() if np.isnan(code) else (column == code).sum())


def _pool_rare(table: np.ndarray) -> np.ndarray:
    """The 2 x k table with the categories expected fewer than `MIN_EXPECTED` times in a
    table pooled into one column (itself dropped if still too rare), so chi-squared holds."""
    expected = table.sum(axis=0) * table.sum(axis=1).min() / table.sum()
    common = expected >= MIN_EXPECTED
    rare = table[:, ~common].sum(axis=1, keepdims=True)
    pooled = table[:, common]
    if rare.sum() * table.sum(axis=1).min() / table.sum() >= MIN_EXPECTED:
        pooled = np.concatenate([pooled, rare], axis=1)
    return pooled


def _classifier_test(reference: Dataset, data: Dataset, seed: int) -> ClassifierTest:
    import lightgbm

    rng = np.random.default_rng(seed)
    old, new = (_sample(table, rng) for table in (reference, data))
    X = np.concatenate([old, new])
    y = np.concatenate([np.zeros(len(old)), np.ones(len(new))])
    test = _held_out(X, rng)
    categorical = [j for j, f in enumerate(data.feature_names) if f in reference.categories]
    model = lightgbm.LGBMClassifier(
        n_estimators=100,
        learning_rate=0.1,
        num_leaves=15,
        min_child_samples=20,
        subsample=0.8,
        subsample_freq=1,
        random_state=seed,
        n_jobs=available_cores(),
        verbose=-1,
    )
    model.fit(X[~test], y[~test], categorical_feature=categorical or "auto")
    scores = model.predict_proba(X[test])[:, 1]
    auc, interval, p_value = _auc(scores, y[test])
    held = X[test]
    if len(held) > EXPLAINED_HELD_OUT:  # the ranking settles long before; SHAP is the cost
        held = held[np.sort(rng.choice(len(held), EXPLAINED_HELD_OUT, replace=False))]
    contributions = model.predict(held, pred_contrib=True)[:, :-1]
    importance = np.abs(contributions).mean(axis=0)
    order = np.argsort(-importance, kind="stable")
    return ClassifierTest(
        auc=auc,
        interval=interval,
        p_value=p_value,
        train_rows=int((~test).sum()),
        test_rows=int(test.sum()),
        importance={data.feature_names[j]: float(importance[j]) for j in order},
    )


def _held_out(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half the rows, to test on: identical rows all on one side, so a row in both tables
    (a reference that overlaps the data) cannot be learnt from its copy and tested on the
    other, which would push the AUC below 0.5."""
    rows = np.ascontiguousarray(np.nan_to_num(X, nan=np.inf))
    _, group = np.unique(
        rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))), return_inverse=True
    )
    return rng.random(group.max() + 1)[group.ravel()] < 0.5


def _sample(table: Dataset, rng: np.random.Generator) -> np.ndarray:
    """At most `CLASSIFIER_ROWS` rows of `table` (a seeded sample), taken before they are
    copied out of the frame."""
    if len(table) <= CLASSIFIER_ROWS:
        return table.values
    keep = np.sort(rng.choice(len(table), CLASSIFIER_ROWS, replace=False))
    return table.frame.iloc[keep].to_numpy(dtype=np.float64)


def _auc(scores: np.ndarray, y: np.ndarray) -> tuple[float, tuple[float, float], float]:
    """AUC, its 95 % interval (Hanley and McNeil's standard error) and the one-sided
    p-value of AUC > 0.5 under the Mann-Whitney null (ties make it conservative)."""
    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    auc = binary_auc(y, scores)
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)) / (n1 * n0)
    half = 1.96 * np.sqrt(max(variance, 0.0))
    null_sd = np.sqrt((n0 + n1 + 1) / (12 * n0 * n1))
    p_value = float(stats.norm.sf((auc - 0.5) / null_sd))
    return auc, (float(max(0.0, auc - half)), float(min(1.0, auc + half))), p_value


PREDICTION_ROWS = 200_000
"""At most this many rows of each table are predicted (a seeded sample)."""
EXPLAINED_ROWS = 200
"""Rows of each table explained to compare mean |attribution| (a seeded sample)."""
BOOTSTRAP = 200


@dataclass(frozen=True)
class ModelShift:
    """The model's view of a shift: its predictions' distribution (`predictions`, tested as
    a feature named for the output), its performance where both tables have labels
    (each metric's value in both, the change and a 95 % bootstrap interval of the change),
    and each feature's mean |attribution| in both (explanation drift), largest change first."""

    output: str
    predictions: FeatureShift
    performance: dict[str, dict[str, Any]] | None
    attributions: dict[str, Any] | None


def model_shift(
    model: Model, reference: Dataset, data: Dataset, seed: int = 0, explain: bool = True
) -> ModelShift:
    """How `model`'s predictions, performance and explanations differ between the tables."""
    from whybox.model_zoo.performance import score_space

    rng = np.random.default_rng(seed)
    space = score_space(model)
    old, new = (_rows(table, PREDICTION_ROWS, rng) for table in (reference, data))
    scores = [model.predict(table.values, space) for table in (old, new)]
    if model.task == "regression" or scores[0].shape[1] == 2:
        column = scores[0].shape[1] - 1
        output = (
            "predicted value"
            if model.task == "regression"
            else f"{space} of class {model.output_names[column]!r}"
        )
        predictions = _numeric_test(output, scores[0][:, column], scores[1][:, column], {})
    else:
        output = "predicted class"
        classes = [s.argmax(axis=1).astype(np.float64) for s in scores]
        predictions = _categorical_test(
            output, *classes, lambda c: names(model.output_names, c), {}
        )
    both_labelled = reference.labels is not None and data.labels is not None
    return ModelShift(
        output=output,
        predictions=predictions,
        performance=_performance_change(model, old, new, scores, rng) if both_labelled else None,
        attributions=_attribution_change(model, reference, data, seed) if explain else None,
    )


def _rows(table: Dataset, most: int, rng: np.random.Generator) -> Dataset:
    if len(table) <= most:
        return table
    return table.subset(np.sort(rng.choice(len(table), most, replace=False)))


def _performance_change(
    model: Model,
    old: Dataset,
    new: Dataset,
    scores: list[np.ndarray],
    rng: np.random.Generator,
) -> dict[str, dict[str, Any]]:
    """Each metric in both tables, the change (data minus reference) and its 95 % interval
    from `BOOTSTRAP` resamples of both tables' rows."""
    from whybox.model_zoo.performance import performance

    measured = [performance(model, table, s) for table, s in zip((old, new), scores, strict=True)]
    draws: dict[str, list[float]] = {metric: [] for metric in measured[0] if metric != "rows"}
    for _ in range(BOOTSTRAP):
        resampled = []
        for table, s in zip((old, new), scores, strict=True):
            pick = rng.integers(0, len(table), len(table))
            labels = table.labels.iloc[pick].reset_index(drop=True)
            resampled.append(performance(model, replace(table, labels=labels), s[pick]))
        for metric in draws:
            if metric in resampled[0] and metric in resampled[1]:
                draws[metric].append(resampled[1][metric] - resampled[0][metric])
    return {
        metric: {
            "reference": measured[0][metric],
            "data": measured[1].get(metric),
            "change": measured[1][metric] - measured[0][metric] if metric in measured[1] else None,
            "interval": [float(q) for q in np.percentile(values, [2.5, 97.5])] if values else None,
        }
        for metric, values in draws.items()
    }


def _attribution_change(
    model: Model, reference: Dataset, data: Dataset, seed: int
) -> dict[str, Any]:
    """Mean |attribution| of each feature over `EXPLAINED_ROWS` rows of each table, by the
    automatic explainer, the two samples explained together (one background for both)."""
    import pandas as pd

    from whybox.explainers.auto import Auto

    rng = np.random.default_rng(seed)
    samples = [_rows(table, EXPLAINED_ROWS, rng) for table in (reference, data)]
    both = pd.concat([s.frame for s in samples], ignore_index=True)
    combined = replace(data, frame=both, labels=None, ids=None, categories=reference.categories)
    explanation = Auto(seed=seed).explain(model, combined)
    magnitude = np.abs(explanation.values)
    split = len(samples[0])
    old, new = magnitude[:split].mean(axis=0), magnitude[split:].mean(axis=0)
    order = np.argsort(-np.abs(new - old), kind="stable")
    return {
        "method": explanation.method,
        "output_space": explanation.output_space,
        "rows": [split, len(both) - split],
        "features": {
            data.feature_names[j]: {
                "reference": float(old[j]),
                "data": float(new[j]),
                "change": float(new[j] - old[j]),
            }
            for j in order
        },
    }
