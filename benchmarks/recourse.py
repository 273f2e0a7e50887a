"""Recourse: whybox's `RecourseSearch` against DiCE (dice-ml), the maintained library for
counterfactual explanations, on the same model, rows and rules.

The workload is the credit demo (model credit-xgboost), its first `rows` declined
applicants (the model predicts bad), three counterfactuals each toward good, under the
demo's constraints file (`model_zoo.demos.CREDIT_CONSTRAINTS`). Each DiCE method runs twice:
with the rules it takes natively, the same for every row (the immutable features left out
of `features_to_vary`, the file's ranges as `permitted_range`), and with every rule it can
be made to take, row by row: each monotone feature as a range from the row's own value,
and each category column under transitions limited to the row's category and the ones it
may move to. No configuration gives it a maximum number of changed features. Its methods:
`random` (seeded), `genetic` and `kdtree` (which picks rows of the data; it can take
minutes on one row, so it runs on the first `kdtree_rows` rows, each stopped after
`row_limit_s` seconds, counted as none found).

For each method: seconds per row, rows with at least one counterfactual, counterfactuals
shown, the share valid (the model, called again on the rows returned, predicts good), the
median number of changed features, the share breaking a rule (and which), the share
below typicality 0.01 against the data. `python -m benchmarks --only recourse`; timings
never gate a test.
"""

from __future__ import annotations

import contextlib
import signal
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchmarks.common import Record
from whybox.model_zoo import Dataset, Model, demos
from whybox.trust.constraints import Constraints, parse_constraints
from whybox.trust.recourse import MIN_TYPICALITY, RecourseSearch
from whybox.trust.typicality import Typicality

DESIRED = "good"
K = 3
OUTCOME = "Status"


@dataclass
class Outcome:
    """What one method showed on the rows: the original and changed rows (codes)."""

    method: str
    seconds: float
    rows: int
    shown: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    found_rows: int = 0
    stopped: int = 0


def credit_workload(rows: int) -> tuple[Model, Dataset, Constraints, dict, np.ndarray]:
    """The credit demo's model, data, constraints, codes and first `rows` declined rows."""
    model = demos.resolve_model("demo:credit-xgboost")
    data = demos.resolve_data("demo:credit", model)
    coded = {
        column: {float(code): name for code, name in enumerate(names)}
        for column, names in demos.CREDIT_CATEGORIES.items()
    }
    constraints = parse_constraints(demos.CREDIT_CONSTRAINTS, data, "credit.yaml", coded)
    good = model.output_names.index(DESIRED)
    declined = np.flatnonzero(model.predict(data.values, "probability")[:, good] < 0.5)
    return model, data, constraints, coded, declined[:rows]


def run_ours(model: Model, data: Dataset, constraints: Constraints, coded, rows) -> Outcome:
    start = time.perf_counter()
    search = RecourseSearch(model, data, constraints, k=K, coded=coded)
    answers = [search.find(int(r), DESIRED) for r in rows]
    outcome = Outcome("whybox RecourseSearch", time.perf_counter() - start, len(rows))
    for r, answer in zip(rows, answers, strict=True):
        outcome.shown += [(data.values[r], c.row) for c in answer.counterfactuals]
        outcome.found_rows += answer.found
    return outcome


class _Codes:
    """The model as DiCE's sklearn backend calls it: a frame with category names."""

    def __init__(self, model: Model, features: list[str], levels: dict) -> None:
        self.model, self.features = model, features
        self.codes = {
            c: {name: code for code, name in named.items()} for c, named in levels.items()
        }

    def rows(self, frame: pd.DataFrame) -> np.ndarray:
        frame = frame[self.features].copy()
        for column, codes in self.codes.items():
            frame[column] = frame[column].map(codes)
        return frame.to_numpy(np.float64)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict(self.rows(frame), "probability")

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(frame).argmax(axis=1)


def named_frame(values: np.ndarray, features: list[str], levels: dict) -> pd.DataFrame:
    frame = pd.DataFrame(values, columns=features)
    for column, named in levels.items():
        frame[column] = frame[column].map(named)
    return frame


def dice_rules(
    constraints: Constraints, row: pd.Series, data: Dataset, per_row: bool = True
) -> tuple[list, dict]:
    """`features_to_vary` and `permitted_range` for one row: every rule DiCE can take, or,
    not `per_row`, the rules it takes natively, the same for every row (the immutable
    features left out of those to vary, the ranges)."""
    values = dict(zip(data.feature_names, data.values.T, strict=True))
    vary, permitted = [], {}
    for feature in constraints.features:
        if feature in constraints.immutable:
            continue
        if not per_row:
            if feature in constraints.ranges:
                permitted[feature] = list(constraints.ranges[feature])
            vary.append(feature)
            continue
        if feature in constraints.transitions:
            allowed = sorted(constraints.transitions[feature].get(row[feature], frozenset()))
            if not allowed:
                continue  # an unlisted category stays
            permitted[feature] = [row[feature], *allowed]
        elif feature not in constraints.levels:
            low, high = constraints.ranges.get(
                feature, (np.nanmin(values[feature]), np.nanmax(values[feature]))
            )
            direction = constraints.monotone.get(feature)
            if direction == "increase":
                low = max(low, row[feature])
            elif direction == "decrease":
                high = min(high, row[feature])
            if low >= high:
                continue  # it cannot move the one way it may
            permitted[feature] = [float(low), float(high)]
        vary.append(feature)
    return vary, permitted


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in this (main) thread after `seconds`."""

    def stop(*_: object) -> None:
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_dice(
    method: str,
    model: Model,
    data: Dataset,
    constraints: Constraints,
    rows: np.ndarray,
    row_limit_s: float = 60.0,
    per_row: bool = True,
) -> Outcome:
    """DiCE's `method` on each row, with the rules `dice_rules` gives it (`per_row`)."""
    import dice_ml

    features, levels = data.feature_names, constraints.levels
    frame = named_frame(data.values, features, levels)
    frame[OUTCOME] = model.predict(data.values, "probability").argmax(axis=1)
    continuous = [f for f in features if f not in levels]
    wrapped = _Codes(model, features, levels)
    explainer = dice_ml.Dice(
        dice_ml.Data(dataframe=frame, continuous_features=continuous, outcome_name=OUTCOME),
        dice_ml.Model(model=wrapped, backend="sklearn", model_type="classifier"),
        method=method,
    )
    desired = model.output_names.index(DESIRED)
    how = "each rule it can take, per row" if per_row else "immutable and ranges only"
    outcome = Outcome(f"DiCE {method} ({how})", 0.0, len(rows))
    seeded = {"random_seed": 0} if method == "random" else {}
    for r in rows:
        query = frame.iloc[[int(r)]][features]
        vary, permitted = dice_rules(constraints, query.iloc[0], data, per_row)
        start = time.perf_counter()
        try:
            with time_limit(row_limit_s), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = explainer.generate_counterfactuals(
                    query, total_CFs=K, desired_class=desired, features_to_vary=vary,
                    permitted_range=permitted, verbose=False, **seeded,
                )  # fmt: skip
            cfs = found.cf_examples_list[0].final_cfs_df
        except TimeoutError:
            outcome.stopped += 1
            cfs = None
        except Exception as exc:  # noqa: BLE001  (DiCE raises bare Exceptions for "none found")
            if "No counterfactuals found" not in str(exc):
                raise
            cfs = None
        outcome.seconds += time.perf_counter() - start
        if cfs is not None and len(cfs):
            changed = wrapped.rows(cfs)
            outcome.shown += [(data.values[r], row) for row in changed]
            outcome.found_rows += 1
    return outcome


@dataclass
class Measures:
    method: str
    seconds_per_row: float
    rows: int
    found_rows: int
    shown: int
    valid: float
    median_changes: float
    violating: float
    broken: dict[str, int]
    atypical: float
    stopped: int


def measure(
    outcome: Outcome, model: Model, constraints: Constraints, typicality: Typicality
) -> Measures:
    """Each shown counterfactual checked again: the model, the rules, typicality."""
    broken: dict[str, int] = {}
    violating = valid = atypical = 0.0
    changes: list[int] = []
    if outcome.shown:
        before = np.vstack([b for b, _ in outcome.shown])
        after = np.vstack([a for _, a in outcome.shown])
        good = model.output_names.index(DESIRED)
        valid = float((model.predict(after, "probability")[:, good] >= 0.5).mean())
        frame = pd.DataFrame(after, columns=list(constraints.features))
        scores = typicality.score(Dataset(frame=frame, sha256=""))
        atypical = float(np.mean([s.typicality < MIN_TYPICALITY for s in scores]))
        for b, a in zip(before, after, strict=True):
            changes.append(int((~np.isclose(a, b, rtol=0, atol=1e-9)).sum()))
            found = constraints.violations(b, a)
            violating += bool(found)
            for kind in {_kind(text, constraints) for text in found}:
                broken[kind] = broken.get(kind, 0) + 1
        violating /= len(outcome.shown)
    return Measures(
        outcome.method, outcome.seconds / max(outcome.rows, 1), outcome.rows,
        outcome.found_rows, len(outcome.shown), valid,
        float(np.median(changes)) if changes else float("nan"), violating, broken, atypical,
        outcome.stopped,
    )  # fmt: skip


def _kind(text: str, constraints: Constraints) -> str:
    """Which rule a violation's words name."""
    if "more than" in text:
        return "max_changes"
    feature = text.split(":")[0]
    for kind in ("immutable", "monotone", "ranges", "transitions"):
        if feature in getattr(constraints, kind):
            return kind
    return "other"


def side_by_side(measures: list[Measures]) -> str:
    """The methods as a Markdown table, with each one's time per row over whybox's."""
    ours = measures[0].seconds_per_row
    lines = [
        "| method | rows | s/row | x whybox time | rows found | shown | valid | median changes "
        "| breaking a rule | rules broken | typicality < 0.01 | stopped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for m in measures:
        broken = ", ".join(f"{k} {v}" for k, v in sorted(m.broken.items())) or "none"
        lines.append(
            f"| {m.method} | {m.rows} | {m.seconds_per_row:.3f} | "
            f"{m.seconds_per_row / ours:.1f}x | {m.found_rows} | {m.shown} | "
            f"{f'{m.valid:.0%}' if m.shown else '-'} | "
            f"{m.median_changes:g} | {m.violating:.0%} | {broken} | {m.atypical:.0%} | "
            f"{m.stopped} |"
        )
    return "\n".join(lines)


def recourse_suite(
    rows: int = 200, kdtree_rows: int = 20, row_limit_s: float = 30.0
) -> list[Record]:
    """whybox against DiCE's random, genetic and kdtree methods, each given the rules it
    takes natively and, again, every rule it can take per row; prints the side-by-side
    table and returns one record per DiCE run (each side runs once: a DiCE method takes
    seconds to minutes a row)."""
    model, data, constraints, coded, declined = credit_workload(rows)
    typicality = Typicality(data, coded=coded)
    outcomes = [run_ours(model, data, constraints, coded, declined)]
    try:
        import dice_ml  # noqa: F401
    except ImportError:
        print("recourse: DiCE skipped, dice-ml is not installed (pip install dice-ml)")
    else:
        for method in ("random", "genetic", "kdtree"):
            chosen = declined[:kdtree_rows] if method == "kdtree" else declined
            for per_row in (False, True):
                if len(chosen):
                    outcomes.append(
                        run_dice(method, model, data, constraints, chosen, row_limit_s, per_row)
                    )
    measures = [measure(o, model, constraints, typicality) for o in outcomes]
    print(f"recourse on {rows} declined credit-demo rows, {K} counterfactuals each\n")
    print(side_by_side(measures))
    ours = measures[0]
    return [
        Record(
            f"recourse, credit-xgboost, per declined row ({m.rows} rows)",
            "RecourseSearch",
            m.method,
            ours.seconds_per_row,
            m.seconds_per_row,
            1 - ours.valid + ours.violating,
            1 - m.valid + m.violating,
            "cpu",
            note=(
                f"error: share invalid plus share breaking a rule; median changes "
                f"{ours.median_changes:g} vs {m.median_changes:g}"
            ),
        )
        for m in measures[1:]
    ]


if __name__ == "__main__":
    recourse_suite(rows=20, kdtree_rows=5, row_limit_s=20)
