"""Recourse: for one row and the outcome a person wants, up to `k` small, diverse sets of
changes that the model answers with that outcome, keeping to the actionability rules
(`trust.constraints`) and to where the data is (`trust.typicality`).

The search is our own, a seeded beam search over the data's own values: each feature's
candidate values are its observed quantiles (a category: its observed categories), so a
counterfactual never asks for an income no one has; every candidate is built within the
constraints before the model sees it (immutable features have no candidates, monotone and
ranged ones only those on the allowed side, categories only the approved moves); one
change, then two, up to `max_changes`, each level expanding the closest-to-valid sets of
the last, many candidates per model call. Each valid set then has every change undone
that can be, and each numeric change made as small as the data's values between the two
allow, so nothing is asked that is not needed. What is shown was predicted by the model, kept
to the constraints and is at least `min_typicality` typical of the data: the candidates
are re-checked on exactly the rows returned, so 100 % of what is shown is valid by
construction. A row with none says so, with how near the closest came.

Why not DiCE (dice-ml, MIT), the maintained library for this: of these rules it takes
immutable features (`features_to_vary`) and ranges (`permitted_range`), and both hold in
its random, genetic and kdtree methods, a row already outside a range included. It has no
monotone one-way move, no maximum number of changed features and no approved category
transitions. Given only what it takes natively, every method returns debt raised where
debt may only fall and categories moved where no move is approved; a monotone rule can be
made a range from the row's own value, and transitions the categories open to the row's
own, one call per row, and those then hold, but nothing limits the number of changes: its
genetic and kdtree methods change four to six features where three are allowed. It is also
slower per row, its random method asks for values no one has (a debt of 5,433.3), and it
does not check typicality. The rules are therefore applied inside our own search, before
the model sees a candidate, not as filters after someone else's (benchmarks/recourse.py
measures both side by side; tests/trust/test_recourse.py checks DiCE's own handling).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.tables import name_list, number_text
from whybox.trust.constraints import Constraints, unchanged, unconstrained
from whybox.trust.typicality import Typicality

QUANTILES = 21
"""Candidate values per numeric feature: its 0, 5, ..., 100 % quantiles, observed values."""
BEAM = 24
"""Sets of changes carried to the next level: the nearest to the desired outcome."""
PER_SET = 3
"""Of those, at most this many per set of features, so the beam keeps several sets."""
BUDGET = 20_000
"""Model rows evaluated per searched row at most; beyond it, a seeded sample of a level."""
SCORED = 8
"""Valid candidates per set of features whose typicality is computed (the nearest)."""
CLOSER = 16
"""Observed values tried between a row's value and a counterfactual's, to make it smaller."""
MIN_TYPICALITY = 0.01


@dataclass(frozen=True)
class Counterfactual:
    """A changed row: `changes` maps each changed feature to (before, after) in the user's
    terms (category names, numbers), `row` the whole row in the model's codes."""

    changes: dict[str, tuple[Any, Any]]
    probability: float
    """The model's probability of the desired class for the changed row."""
    typicality: float | None
    """How typical of the data the changed row is (None where not computed)."""
    distance: float
    """Distance from the original row in the typicality's standardised space (spreads)."""
    sentence: str
    row: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return {
            "changes": {f: list(pair) for f, pair in self.changes.items()},
            "probability": self.probability,
            "typicality": self.typicality,
            "distance": self.distance,
            "sentence": self.sentence,
        }


@dataclass(frozen=True)
class Recourse:
    """The answer for one row: its counterfactuals, nearest first, or, where there is none,
    `message` saying so and `closest`, the candidate that came nearest (not valid)."""

    row: int | None
    desired: str
    threshold: float
    probability: float
    """The model's probability of the desired class for the row as it is."""
    counterfactuals: list[Counterfactual]
    message: str
    closest: Counterfactual | None = None
    evaluated: int = 0
    """Model rows evaluated in the search."""

    @property
    def found(self) -> bool:
        return bool(self.counterfactuals)

    def to_dict(self) -> dict:
        return {
            "row": self.row,
            "desired": self.desired,
            "threshold": self.threshold,
            "probability": self.probability,
            "counterfactuals": [c.to_dict() for c in self.counterfactuals],
            "message": self.message,
            "closest": None if self.closest is None else self.closest.to_dict(),
            "evaluated": self.evaluated,
        }


class RecourseSearch:
    """Searches recourse for rows of `data` (the user's data: the source of candidate
    values and the reference for typicality); fit once, search any number of rows."""

    def __init__(
        self,
        model: Model,
        data: Dataset,
        constraints: Constraints | None = None,
        *,
        k: int = 3,
        threshold: float = 0.5,
        min_typicality: float = MIN_TYPICALITY,
        typicality: Typicality | None = None,
        budget: int = BUDGET,
        seed: int = 0,
        coded: Mapping[str, Mapping[float, str]] | None = None,
    ) -> None:
        """`constraints`: the rules (`load_constraints` on this data; None for only the
        default maximum of changes); `k`: counterfactuals per row at most, each a different
        set of features; `threshold`: the desired class's probability a counterfactual
        reaches (with more than two classes, it must also be the predicted class);
        `min_typicality`: how typical of `data` it must be; `typicality`: a scorer fitted
        on `data` or another reference (by default fitted here, with `coded`); `budget`:
        model rows per searched row; `seed`: for the sample taken where a level exceeds
        the budget."""
        if model.task != "classification":
            raise WhyboxError("recourse needs a classifier; this model is a regressor")
        if k < 1 or budget < 1 or not 0 < threshold < 1:
            raise WhyboxError(
                f"recourse needs k >= 1, budget >= 1 and 0 < threshold < 1 (got k={k}, "
                f"budget={budget}, threshold={threshold})"
            )
        constraints = constraints or unconstrained(data, coded)
        if list(constraints.features) != data.feature_names:
            raise WhyboxError(
                "the constraints were read for other columns; read them against this data"
            )
        self.model, self.data, self.constraints = model, data, constraints
        self.k, self.threshold, self.min_typicality = k, threshold, min_typicality
        self.budget, self.seed = budget, seed
        self.typicality = typicality or Typicality(data, coded=coded)
        self.grids = [self._grid(j) for j in range(len(data.feature_names))]
        values = data.values
        self.observed = [
            np.unique(values[:, j][~np.isnan(values[:, j])]) for j in range(values.shape[1])
        ]

    def _grid(self, j: int) -> np.ndarray:
        """Feature j's candidate values: observed categories, or observed quantiles."""
        name = self.data.feature_names[j]
        column = self.data.values[:, j]
        column = column[~np.isnan(column)]
        if not len(column) or name in self.constraints.immutable:
            return np.zeros(0)
        if name in self.constraints.levels or name in self.data.categories:
            codes = np.unique(column)
            known = self.model.categories.get(name)
            return codes[codes < len(known)] if known else codes
        levels = np.linspace(0, 1, QUANTILES)
        return np.unique(np.quantile(column, levels, method="nearest"))

    def _probability(self, X: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
        """The desired class's probability for each row, and whether the row is valid."""
        p = self.model.predict(X, "probability")
        valid = p[:, target] >= self.threshold
        if p.shape[1] > 2:
            valid &= p.argmax(axis=1) == target
        return p[:, target], valid

    def find(self, row: int | Dataset, desired: str) -> Recourse:
        """Recourse for `row` (a position in `data`, or a one-row Dataset with its
        columns) toward the class `desired`."""
        target = self.model.resolve_target(desired)
        desired = self.model.output_names[target]
        position, x0 = self._row(row)
        p0, valid0 = self._probability(x0[None], target)
        if valid0[0]:
            return Recourse(
                position, desired, self.threshold, float(p0[0]), [],
                f"the model already predicts {desired} for this row ({p0[0]:.2f})",
            )  # fmt: skip
        rng = np.random.default_rng(self.seed)
        features = self.constraints.features
        # the allowed candidates of each feature for this row: the rules hold before the
        # model sees any candidate
        options = {
            j: values
            for j, grid in enumerate(self.grids)
            if len(values := self.constraints.moves(features[j], x0[j], grid))
        }
        # a candidate change is an index into (pair_feature, pair_value), in feature then value
        # order; a set of changes is a row of such indices, sorted, so a set made twice
        # (from two states of the beam) is one row
        pair_feature = np.repeat(
            np.array(list(options), dtype=np.intp), [len(v) for v in options.values()]
        )
        pair_value = np.concatenate([np.zeros(0), *options.values()])
        frontier = np.zeros((1, 0), dtype=np.intp)
        valid_found: list[tuple] = []
        best = (-1.0, ())
        evaluated, chosen = 0, None
        for _ in range(self.constraints.max_changes):
            # each state of the frontier, in order, with each change of a feature it keeps
            free = (pair_feature[None, None, :] != pair_feature[frontier][:, :, None]).all(axis=1)
            state, pair = np.nonzero(free)
            sets = np.sort(np.column_stack([frontier[state], pair]), axis=1)
            sets = sets[_first_of_each(sets, len(pair_feature))]
            if not len(sets) or evaluated >= self.budget:
                break
            if len(sets) > self.budget - evaluated:
                keep = rng.choice(len(sets), self.budget - evaluated, replace=False)
                sets = sets[np.sort(keep)]
            X = np.repeat(x0[None], len(sets), axis=0)
            X[np.arange(len(sets))[:, None], pair_feature[sets]] = pair_value[sets]
            p, valid = self._probability(X, target)
            evaluated += len(X)
            invalid = np.flatnonzero(~valid)
            if len(invalid) and p[invalid].max() > best[0]:
                (nearest,) = _states(
                    sets[[invalid[np.argmax(p[invalid])]]], pair_feature, pair_value
                )
                best = (float(p[invalid].max()), nearest)
            valid_found += _states(sets[valid], pair_feature, pair_value)
            chosen = None
            if len({_features(s) for s in valid_found}) >= self.k:
                chosen = self._select(x0, valid_found, target)  # typicality may drop some
                if len(chosen) >= self.k:
                    break
            frontier = sets[invalid[self._beam(pair_feature[sets[invalid]], p[invalid])]]
        if chosen is None:
            chosen = self._select(x0, valid_found, target)
        chosen = self._closer(x0, chosen, target)
        return self._answer(
            position, x0, desired, target, float(p0[0]), chosen, bool(valid_found), best, evaluated
        )

    def _row(self, row: int | Dataset) -> tuple[int | None, np.ndarray]:
        if isinstance(row, Dataset):
            if len(row) != 1:
                raise WhyboxError(f"recourse is for one row at a time; got {len(row)} rows")
            missing = [f for f in self.data.feature_names if f not in row.frame.columns]
            if missing:
                raise WhyboxError(f"the row lacks the data's column(s) {name_list(missing)}")
            return None, row.frame[self.data.feature_names].to_numpy(np.float64)[0]
        if not 0 <= int(row) < len(self.data):
            raise WhyboxError(f"row {row} is not in the data (it has {len(self.data):,} rows)")
        return int(row), self.data.values[int(row)]

    @staticmethod
    def _rows(x0: np.ndarray, states: list[tuple]) -> np.ndarray:
        X = np.repeat(x0[None], len(states), axis=0)
        for i, state in enumerate(states):
            for j, v in state:
                X[i, j] = v
        return X

    @staticmethod
    def _beam(features: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Of states changing `features` (a row each) with the desired class's probability `p`,
        the nearest to the desired outcome, at most PER_SET per set of features: their
        positions."""
        kept, per_set = [], {}
        for i in np.argsort(-p, kind="stable"):
            changed = tuple(features[i])
            if per_set.get(changed, 0) < PER_SET:
                per_set[changed] = per_set.get(changed, 0) + 1
                kept.append(i)
                if len(kept) == BEAM:
                    break
        return np.array(kept, dtype=np.intp)

    def _distance(self, x0: np.ndarray, X: np.ndarray) -> np.ndarray:
        space = self.typicality._space(np.vstack([x0[None], X]))  # the one standardisation
        return np.sqrt(((space[1:] - space[0]) ** 2).sum(axis=1))

    def _select(self, x0: np.ndarray, states: list[tuple], target: int) -> list[tuple]:
        """Up to k (state, row, p, typicality, distance), each a different set of features,
        fewest changes then nearest first, each minimal (no change can be undone), valid,
        within the constraints and at least `min_typicality` typical."""
        if not states:
            return []
        states = self._minimal(x0, list(dict.fromkeys(states)), target)
        X = self._rows(x0, states)
        distance = self._distance(x0, X)
        order = sorted(range(len(states)), key=lambda i: (len(states[i]), distance[i]))
        by_set: dict[tuple, list[int]] = {}
        for i in order:
            group = by_set.setdefault(_features(states[i]), [])
            if len(group) < SCORED:
                group.append(i)
        # scored in order, a few at a time, until k sets have a typical counterfactual:
        # typicality is the costly check, and most rows need only the first few
        candidates = sorted(
            (i for group in by_set.values() for i in group),
            key=lambda i: (len(states[i]), distance[i]),
        )
        chosen, sets = [], set()
        while candidates and len(chosen) < self.k:
            batch = [i for i in candidates if _features(states[i]) not in sets][: 2 * self.k]
            if not batch:
                break
            candidates = [i for i in candidates if i not in batch]
            for i, t in zip(batch, self._typical(X[batch]), strict=True):
                features = _features(states[i])
                if t >= self.min_typicality and features not in sets and len(chosen) < self.k:
                    sets.add(features)
                    chosen.append((states[i], X[i], t, float(distance[i])))
        return sorted(chosen, key=lambda c: (len(c[0]), c[3]))

    def _closer(self, x0: np.ndarray, chosen: list[tuple], target: int) -> list[tuple]:
        """Each chosen counterfactual with each numeric change made as small as the data's
        own values allow while it stays valid (the grid steps are coarse): one model call
        per round, the r-th numeric change of every counterfactual in round r; kept where
        the smaller changes are still typical, then ordered again."""
        rows = [row.copy() for _, row, _, _ in chosen]
        numeric = [
            [
                j
                for j in _features(state)
                if self.constraints.features[j] not in self.constraints.levels
            ]
            for state, _, _, _ in chosen
        ]
        for r in range(max((len(n) for n in numeric), default=0)):
            tried, owners = [], []
            for i, features in enumerate(numeric):
                if r >= len(features):
                    continue
                j = features[r]
                low, high = sorted((x0[j], rows[i][j]))
                between = self.observed[j][(self.observed[j] > low) & (self.observed[j] < high)]
                for v in (
                    between[np.unique(np.linspace(0, len(between) - 1, CLOSER).round().astype(int))]
                    if len(between)
                    else []
                ):
                    if self.constraints.allows(self.constraints.features[j], x0[j], v):
                        candidate = rows[i].copy()
                        candidate[j] = v
                        tried.append(candidate)
                        owners.append((i, j))
            if not tried:
                continue
            _, valid = self._probability(np.vstack(tried), target)
            for candidate, (i, j), ok in zip(tried, owners, valid, strict=True):
                if ok and abs(candidate[j] - x0[j]) < abs(rows[i][j] - x0[j]):
                    rows[i] = candidate
        moved = [i for i in range(len(chosen)) if not np.array_equal(rows[i], chosen[i][1])]
        if not moved:
            return chosen
        typicality = self._typical(np.vstack([rows[i] for i in moved]))
        distance = self._distance(x0, np.vstack([rows[i] for i in moved]))
        closer = list(chosen)
        for i, t, d in zip(moved, typicality, distance, strict=True):
            if t >= self.min_typicality:
                closer[i] = (chosen[i][0], rows[i], t, float(d))
        return sorted(closer, key=lambda c: (len(c[0]), c[3]))

    def _typical(self, X: np.ndarray) -> list[float]:
        rows = Dataset(frame=pd.DataFrame(X, columns=self.data.feature_names), sha256="")
        return [r.typicality for r in self.typicality.score(rows)]

    def _minimal(self, x0: np.ndarray, states: list[tuple], target: int) -> list[tuple]:
        """Each valid state with every change undone that can be while it stays valid."""
        result = []
        pending = states
        while pending:
            undone = [
                (i, tuple(c for c in s if c != change))
                for i, s in enumerate(pending)
                if len(s) > 1
                for change in s
            ]
            if not undone:
                result += pending
                break
            _, valid = self._probability(self._rows(x0, [u for _, u in undone]), target)
            reduced: dict[int, tuple] = {}
            for (i, smaller), ok in zip(undone, valid, strict=True):
                if ok and i not in reduced:
                    reduced[i] = smaller
            result += [s for i, s in enumerate(pending) if i not in reduced]
            pending = list(dict.fromkeys(reduced.values()))
        return list(dict.fromkeys(result))

    def _answer(
        self,
        position: int | None,
        x0: np.ndarray,
        desired: str,
        target: int,
        p0: float,
        chosen: list[tuple],
        any_valid: bool,
        best: tuple[float, tuple],
        evaluated: int,
    ) -> Recourse:
        shown = []
        if chosen:  # the final check, on exactly the rows returned
            X = np.vstack([row for _, row, _, _ in chosen])
            p, valid = self._probability(X, target)
            for (_, row, t, d), pi, ok in zip(chosen, p, valid, strict=True):
                if ok and t >= self.min_typicality and not self.constraints.violations(x0, row):
                    shown.append(self._counterfactual(x0, row, float(pi), t, d, desired))
        if shown:
            return Recourse(position, desired, self.threshold, p0, shown, "", None, evaluated)
        closest, message = None, "none found within these constraints"
        if evaluated >= self.budget:
            message += f" and a budget of {self.budget:,} model rows"
        if any_valid:  # the model's outcome is reached, only where no one in the data is
            message += (
                f" that is typical of the data (typicality of at least {self.min_typicality:g})"
            )
        elif best[1]:
            row = self._rows(x0, [best[1]])[0]
            distance = float(self._distance(x0, row[None])[0])
            closest = self._counterfactual(x0, row, best[0], None, distance, desired)
            message += f"; the closest reaches {best[0]:.2f} of the {self.threshold:g} threshold"
        else:
            message += "; they let no feature change"
        return Recourse(position, desired, self.threshold, p0, [], message, closest, evaluated)

    def _counterfactual(
        self,
        x0: np.ndarray,
        row: np.ndarray,
        p: float,
        typicality: float | None,
        distance: float,
        desired: str,
    ) -> Counterfactual:
        constraints = self.constraints
        changes, parts = {}, []
        for j, feature in enumerate(constraints.features):
            if unchanged(x0[j], row[j]):
                continue
            before, after = (
                _user_value(constraints, feature, x0[j]),
                _user_value(constraints, feature, row[j]),
            )
            changes[feature] = (before, after)
            if feature in constraints.levels or np.isnan(x0[j]):
                parts.append(f"{feature} were {constraints.text(feature, row[j])} instead of "
                             f"{constraints.text(feature, x0[j])}")  # fmt: skip
            else:
                way = "higher" if row[j] > x0[j] else "lower"
                parts.append(
                    f"{feature} were {number_text(abs(row[j] - x0[j]), 4)} {way} "
                    f"({constraints.text(feature, row[j])})"
                )
        said = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        sentence = f"If {said}, the model would predict {desired} (probability {p:.2f})"
        return Counterfactual(changes, p, typicality, distance, sentence, row.copy())


def find_recourse(
    model: Model,
    data: Dataset,
    row: int | Dataset,
    desired: str,
    constraints: Constraints | None = None,
    **options: Any,
) -> Recourse:
    """Recourse for one row: `RecourseSearch(model, data, constraints, **options)
    .find(row, desired)`; to search many rows, make the search once."""
    return RecourseSearch(model, data, constraints, **options).find(row, desired)


def _first_of_each(sets: np.ndarray, pairs: int) -> np.ndarray:
    """The positions of the first of each distinct row of `sets` (indices below `pairs`),
    in order. A row is read as one number in base `pairs` where that fits in 63 bits: a
    one-dimensional unique is several times faster than a unique of rows."""
    if pairs ** sets.shape[1] < 2**63:
        keys = sets @ pairs ** np.arange(sets.shape[1] - 1, -1, -1, dtype=np.int64)
        _, first = np.unique(keys, return_index=True)
    else:
        _, first = np.unique(sets, axis=0, return_index=True)
    return np.sort(first)


def _states(sets: np.ndarray, pair_feature: np.ndarray, pair_value: np.ndarray) -> list[tuple]:
    """Sets of changes as rows of indices into (pair_feature, pair_value), as states: tuples
    of (feature, value) pairs in feature order."""
    return [
        tuple(zip(row_features.tolist(), row_values.tolist(), strict=True))
        for row_features, row_values in zip(pair_feature[sets], pair_value[sets], strict=True)
    ]


def _features(state: tuple) -> tuple[int, ...]:
    """The features a state changes (its (feature, value) pairs are sorted by feature)."""
    return tuple(j for j, _ in state)


def _user_value(constraints: Constraints, feature: str, value: float) -> Any:
    if np.isnan(value):
        return None
    if feature in constraints.levels:
        return constraints.text(feature, value)
    return int(value) if value == int(value) else float(value)
