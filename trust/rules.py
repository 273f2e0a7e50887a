"""Readable rules that mimic a model: a global surrogate, and how far to trust it.

A shallow decision tree is fitted to the model's own answers on the user's data (its
predicted class, or its value for a regressor); each leaf is one rule, written in the
data's column and category names: "Income > 120.5 and Debt ≤ 2,000 and Home is neither
rent nor owner → bad". The tree is scikit-learn's (`DecisionTreeClassifier`,
`DecisionTreeRegressor`, grown best-first to `max_rules` leaves): maintained, already a
dependency, and its thresholds are exact numbers the rules can print; imodels' rule lists
would bring matplotlib, mlxtend and requests for little more.

Fidelity is measured on held-out rows the tree never saw: for a classifier the share of
them where the rules give the model's answer, with a Wilson interval (scipy's); for a
regressor R² of the rules' values against the model's, with the project's percentile
bootstrap interval (`explainers.quality`). Each rule says how many held-out rows it
covers and how well it agrees with the model there, and `curve` gives fidelity for each
number of rules (a tree refitted per size), so the user picks how much to read for how
close a likeness. Below `ROUGH` the surrogate says in words that it is a sketch, not the
model's logic; a classifier's rules that do no better than always giving its most
frequent answer say that instead, however high their agreement.

How a rule reads the data (categories, bounds, whole numbers, missing values) is
`tree_rules`': one reading for every tree whybox shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.tables import number_text
from whybox.trust.tree_rules import (
    Condition,
    TreeInputs,
    leaf_paths,
    tree_inputs,
)
from whybox.trust.typicality import _percent

MAX_ROWS = 200_000
"""At most this many rows are predicted, fitted and measured (a seeded sample)."""
MIN_ROWS = 100
CONFIDENCE = 0.95
CLOSE = 0.95
"""Fidelity (agreement or R²) from which the rules mimic the model closely."""
ROUGH = 0.8
"""Fidelity from which they mimic it roughly; below it they are a poor likeness."""
VERDICTS = {
    "close": "the rules mimic the model closely",
    "rough": "the rules mimic the model roughly: where a row matters, check the model's own "
    "explanation of it",
    "poor": "the rules are a poor likeness of this model: read them as a rough sketch, not as "
    "its logic",
    "trivial": "the rules do no better than answering {outcome} for every row: they tell "
    "little of how this model decides",
}


@dataclass(frozen=True)
class Rule:
    """One leaf of the surrogate: its conditions (all must hold) and the `outcome` it gives
    (a class name, or a value for a regressor), measured on the held-out rows it covers:
    `rows`, their share `coverage`, and how well the model agrees there: `agreement` (a
    classifier: the share of those rows where the model's class is `outcome`, with its
    Wilson `interval`) or `mean_error` (a regressor: the mean absolute difference between
    the model's value and `outcome`; R² within one rule would compare against the rule's
    own mean and say little). None where the rule covers no held-out row."""

    conditions: tuple[Condition, ...]
    outcome: str | float
    rows: int
    coverage: float
    agreement: float | None = None
    interval: tuple[float, float] | None = None
    mean_error: float | None = None

    @property
    def text(self) -> str:
        outcome = self.outcome if isinstance(self.outcome, str) else number_text(self.outcome)
        if not self.conditions:
            return f"every row → {outcome}"
        return " and ".join(c.text for c in self.conditions) + f" → {outcome}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "conditions": [asdict(c) for c in self.conditions],
            "outcome": self.outcome,
            "rows": self.rows,
            "coverage": self.coverage,
            "agreement": self.agreement,
            "interval": None if self.interval is None else list(self.interval),
            "mean_error": self.mean_error,
        }


@dataclass(frozen=True)
class CurvePoint:
    """Fidelity on the held-out rows of a surrogate of `rules` rules, with its interval."""

    rules: int
    fidelity: float
    interval: tuple[float, float]


@dataclass(frozen=True)
class RuleSurrogate:
    """Rules that mimic a model on a data set, and how closely (see the module's words).

    `fidelity` (`measure`: "agreement" for a classifier, "r2" for a regressor) on
    `held_out_rows` rows the tree never saw, with its `interval`; `baseline`: for a
    classifier, the agreement of always answering `baseline_outcome` (its most frequent
    class), which the rules should beat by a margin. `curve` has the fidelity of each
    smaller surrogate up to this one. `tree` is the fitted scikit-learn estimator,
    `columns` its inputs' names, `inputs` makes its inputs from a table's rows and
    `held_out` holds the positions of the held-out rows in the data.
    """

    task: str
    rules: tuple[Rule, ...]
    measure: str
    fidelity: float
    interval: tuple[float, float]
    held_out_rows: int
    fitted_rows: int
    curve: tuple[CurvePoint, ...]
    max_rules: int
    seed: int
    baseline: float | None = None
    baseline_outcome: str | None = None
    notes: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    tree: Any = field(default=None, repr=False, compare=False)
    held_out: np.ndarray = field(default=None, repr=False, compare=False)
    design: TreeInputs = field(default=None, repr=False, compare=False)

    @property
    def verdict(self) -> str:
        """In words, how far the rules are a likeness of the model (`CLOSE`, `ROUGH`); a
        classifier's rules whose interval reaches down to `baseline` add nothing to always
        giving its most frequent answer, however high their agreement."""
        if self.baseline is not None and self.interval[0] <= self.baseline:
            return VERDICTS["trivial"].format(outcome=self.baseline_outcome)
        if self.fidelity >= CLOSE:
            return VERDICTS["close"]
        return VERDICTS["rough"] if self.fidelity >= ROUGH else VERDICTS["poor"]

    @property
    def method(self) -> str:
        answer = "predicted class" if self.task == "classification" else "predicted value"
        return (
            f"a decision tree of at most {self.max_rules} leaves (scikit-learn) fitted to the "
            f"model's {answer} on {self.fitted_rows:,} rows, measured on {self.held_out_rows:,} "
            f"held-out rows (seed {self.seed})"
        )

    @property
    def summary(self) -> str:
        low, high = self.interval
        count = f"{len(self.rules)} rule{'s' if len(self.rules) != 1 else ''}"
        if self.measure == "agreement":
            said = (
                f"{count} agree with the model on {_percent(self.fidelity)} of "
                f"{self.held_out_rows:,} held-out rows ({100 * CONFIDENCE:.0f} % interval "
                f"{_percent(low)} to {_percent(high)}; answering {self.baseline_outcome} for "
                f"every row would agree on {_percent(self.baseline)})"
            )
        else:
            said = (
                f"{count} match the model's values with R² {self.fidelity:.3f} on "
                f"{self.held_out_rows:,} held-out rows ({100 * CONFIDENCE:.0f} % interval "
                f"{low:.3f} to {high:.3f})"
            )
        verdict = self.verdict
        return f"{said}. {verdict[0].upper()}{verdict[1:]}."

    def inputs(self, values: np.ndarray) -> np.ndarray:
        """The tree's inputs (float32, `columns`) for rows in the data's feature order."""
        return self.design.inputs(np.asarray(values, dtype=np.float64))

    def to_dict(self) -> dict[str, Any]:
        """Everything the report and run.json show, as JSON types."""
        return {
            "method": self.method,
            "task": self.task,
            "measure": self.measure,
            "fidelity": self.fidelity,
            "interval": list(self.interval),
            "confidence": CONFIDENCE,
            "verdict": self.verdict,
            "summary": self.summary,
            "held_out_rows": self.held_out_rows,
            "fitted_rows": self.fitted_rows,
            "baseline": self.baseline,
            "baseline_outcome": self.baseline_outcome,
            "max_rules": self.max_rules,
            "seed": self.seed,
            "rules": [rule.to_dict() for rule in self.rules],
            "curve": [
                {"rules": p.rules, "fidelity": p.fidelity, "interval": list(p.interval)}
                for p in self.curve
            ],
            "columns": list(self.columns),
            "notes": list(self.notes),
        }


def fit_rules(
    model: Model,
    data: Dataset,
    max_rules: int = 8,
    held_out: float = 0.3,
    seed: int = 0,
    max_rows: int = MAX_ROWS,
    coded: Mapping[str, Mapping[float, str]] | None = None,
) -> RuleSurrogate:
    """At most `max_rules` rules that mimic `model` on `data`, fitted to its answers on all
    but a seeded `held_out` share of the rows (of at most `max_rows`, a seeded sample) and
    measured on those. A classifier's answer is its predicted class (the same in every
    output space), a regressor's its value, so the rules need no output space.

    `coded` names the numeric columns that hold category codes (a data dictionary's coded
    values: code -> name): the rules treat them as categories and name them.
    """
    _check(model, data, max_rules, held_out, max_rows)
    rng = np.random.default_rng(seed)
    notes = []
    positions = np.arange(len(data))
    if len(data) > max_rows:
        positions = np.sort(rng.choice(len(data), max_rows, replace=False))
        notes.append(
            f"fitted and measured on a seeded sample of {max_rows:,} of the data's "
            f"{len(data):,} rows"
        )
    values = data.frame.iloc[positions].to_numpy(dtype=np.float64)
    answers = model.predict(values)
    classifier = model.task == "classification"
    answers = answers.argmax(axis=1) if classifier else answers[:, 0]
    held = min(len(values) - 1, max(1, round(held_out * len(values))))
    order = rng.permutation(len(values))
    held_rows, fit_rows = np.sort(order[:held]), np.sort(order[held:])
    design, design_notes = tree_inputs(data, values, coded or {})
    X = design.inputs(values)
    X_fit, y_fit, X_held, y_held = X[fit_rows], answers[fit_rows], X[held_rows], answers[held_rows]

    tree = _fit(classifier, X_fit, y_fit, max_rules, seed)
    curve: list[CurvePoint] = []
    for size in range(2, max_rules + 1):
        fitted = tree if size == max_rules else _fit(classifier, X_fit, y_fit, size, seed)
        leaves = int(fitted.get_n_leaves())
        if curve and leaves == curve[-1].rules:  # the tree stopped growing: leaves are pure
            break
        curve.append(CurvePoint(leaves, *_fidelity(classifier, fitted, X_held, y_held, seed)))
    fidelity, interval = _fidelity(classifier, tree, X_held, y_held, seed)
    baseline = baseline_outcome = None
    if classifier:
        common = int(np.bincount(y_fit.astype(np.int64)).argmax())
        baseline, baseline_outcome = float(np.mean(y_held == common)), model.class_names[common]
    if any(design.missing):
        notes.append(
            "a missing value follows the branch the tree learned for it; a condition that "
            "missing values also meet says 'or missing'"
        )
    return RuleSurrogate(
        task=model.task,
        rules=_rules(model, design, tree, X_held, y_held),
        measure="agreement" if classifier else "r2",
        fidelity=fidelity,
        interval=interval,
        held_out_rows=len(held_rows),
        fitted_rows=len(fit_rows),
        curve=tuple(curve),
        max_rules=max_rules,
        seed=seed,
        baseline=baseline,
        baseline_outcome=baseline_outcome,
        notes=tuple(notes + design_notes),
        columns=tuple(design.column_names),
        tree=tree,
        held_out=positions[held_rows],
        design=design,
    )


def _check(model: Model, data: Dataset, max_rules: int, held_out: float, max_rows: int) -> None:
    if model.modality != "tabular":
        raise WhyboxError(
            f"rules describe models of tables; this model takes {model.modality} input"
        )
    if not isinstance(data, Dataset):
        raise WhyboxError("rules are fitted on a table of rows; give tabular data")
    if max_rules < 2:
        raise WhyboxError(
            f"the rules need max_rules of at least 2 (got {max_rules}): one rule would give "
            "every row the same answer"
        )
    if not 0 < held_out < 1:
        raise WhyboxError(
            f"held_out is the share of rows kept back to measure the rules: between 0 and 1 "
            f"(got {held_out})"
        )
    if min(len(data), max_rows) < MIN_ROWS:
        raise WhyboxError(
            f"the rules need at least {MIN_ROWS} rows, to fit them and to measure them on "
            f"held-out ones; {'the data has' if len(data) < max_rows else 'max_rows is'} "
            f"{min(len(data), max_rows)}"
        )
    if data.frame.shape[1] != model.n_features:
        raise WhyboxError(
            f"the data has {data.frame.shape[1]} feature columns but the model takes "
            f"{model.n_features}; load the data for this model"
        )


def _fit(classifier: bool, X: np.ndarray, y: np.ndarray, leaves: int, seed: int) -> Any:
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    tree = DecisionTreeClassifier if classifier else DecisionTreeRegressor
    return tree(max_leaf_nodes=leaves, random_state=seed).fit(X, y)


def _fidelity(
    classifier: bool, tree: Any, X: np.ndarray, y: np.ndarray, seed: int
) -> tuple[float, tuple[float, float]]:
    """Agreement with its Wilson interval, or R² with its bootstrap interval."""
    predicted = tree.predict(X)
    if classifier:
        agreeing = int(np.sum(predicted == y))
        return agreeing / len(y), wilson_interval(agreeing, len(y))
    from sklearn.metrics import r2_score

    from whybox.explainers.quality import _bootstrap

    interval = _bootstrap([y, predicted], r2_score, seed)
    r2 = float(r2_score(y, predicted))
    return r2, (r2, r2) if interval is None else interval


def wilson_interval(
    successes: int, trials: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The Wilson score interval of a share `successes / trials` (scipy's): it stays within
    0..1 and keeps its coverage near 0 and 1, where the normal approximation fails."""
    found = stats.binomtest(successes, trials).proportion_ci(confidence, method="wilson")
    return float(found.low), float(found.high)


def _rules(
    model: Model, design: TreeInputs, tree: Any, X_held: np.ndarray, y_held: np.ndarray
) -> tuple[Rule, ...]:
    """Each leaf as a rule, measured on the held-out rows; most rows first."""
    nodes = tree.tree_
    leaf_of = tree.apply(X_held)
    rules = []
    for leaf, splits in leaf_paths(tree).items():
        conditions = design.conditions(splits)
        covered = y_held[leaf_of == leaf]
        measured = {}
        if model.task == "classification":
            answer = int(tree.classes_[int(np.argmax(nodes.value[leaf][0]))])
            outcome: str | float = model.class_names[answer]
            if len(covered):
                agreeing = int(np.sum(covered == answer))
                measured = {
                    "agreement": agreeing / len(covered),
                    "interval": wilson_interval(agreeing, len(covered)),
                }
        else:
            outcome = float(nodes.value[leaf][0][0])
            if len(covered):
                measured = {"mean_error": float(np.mean(np.abs(covered - outcome)))}
        rules.append(
            (
                -len(covered),
                leaf,
                Rule(conditions, outcome, len(covered), len(covered) / len(y_held), **measured),
            )
        )
    return tuple(rule for *_, rule in sorted(rules, key=lambda r: r[:2]))
