"""How typical is this input of the reference? A score per row, calibrated against
reference rows the scorer never saw, and the features that make it unusual.

The score is the mean distance to the `k` nearest reference rows in a standardised space:
numeric features centred on the reference median and divided by its spread (the IQR over
1.349, the SD where that is zero), so one unit is about one SD whatever the feature's
scale; a categorical feature one-hot coded so that two rows of different categories are
1 apart on it, and a missing value likewise 1 from any value present. Distance to the
neighbours handles any mix of features and shapes of distribution, needs no training, and
tells which features make a row far (each feature's share of the squared distance).
A value beyond the range of the searched reference rows adds `EXCESS_WEIGHT` times its
excess (in spreads) to the score: the model never saw such a value, so the row's answer is
an extrapolation however near its other values are (an applicant of 24 where every
reference applicant is 30 or more).

Calibration is conformal: a row's typicality is the share of held-out reference rows at
least as far from the reference as it is (plus one, over their number plus one). For a
row drawn like the reference it is uniform, so "typicality below 0.01" means fewer than
1 % of reference rows are this unusual. The neighbours are searched among at most
`index_rows` reference rows (a seeded sample), which keeps a million-row reference fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from whybox.model_zoo import Dataset, WhyboxError
from whybox.model_zoo.categories import names

INDEX_ROWS = 50_000
CALIBRATION_ROWS = 2_000
MIN_REFERENCE_ROWS = 50
NEIGHBOURS = 10
EXCESS_WEIGHT = 10.0
QUANTILES = 10_001


@dataclass(frozen=True)
class RowTypicality:
    """One row: `typicality` (the share of reference rows as unusual, 0..1), its `score`
    (distance plus range excess) and each feature's share of its square (summing to 1)."""

    typicality: float
    score: float
    shares: dict[str, float]
    reasons: list[str]


class Typicality:
    """Scores rows against a reference; fit once, score any number of rows."""

    def __init__(
        self,
        reference: Dataset,
        neighbours: int = NEIGHBOURS,
        index_rows: int = INDEX_ROWS,
        calibration_rows: int = CALIBRATION_ROWS,
        seed: int = 0,
        coded: Mapping[str, Mapping[float, str]] | None = None,
    ) -> None:
        """`coded` names the numeric columns that hold category codes (a data dictionary's
        coded values: code -> name): they are compared as categories, and named."""
        if len(reference) < MIN_REFERENCE_ROWS:
            raise WhyboxError(
                f"the reference has {len(reference)} row(s); typicality needs at least "
                f"{MIN_REFERENCE_ROWS} (more make it finer: one in a hundred needs 100)"
            )
        self.reference = reference
        self.feature_names = reference.feature_names
        values = reference.values
        # the codes of each categorical feature (a category's, or a named numeric code),
        # each a one-hot column, and how each reads as a name
        self._levels: dict[str, np.ndarray] = {}
        self._names: dict[str, Callable[[float], str]] = {}
        for j, name in enumerate(self.feature_names):
            if name in reference.categories:
                known = reference.categories[name]
                self._levels[name] = np.arange(len(known), dtype=np.float64)
                self._names[name] = lambda code, known=known: str(names(known, [code])[0])
            elif coded and name in coded:
                named = dict(coded[name])
                present = np.unique(values[:, j][~np.isnan(values[:, j])])
                self._levels[name] = np.union1d(present, list(named))
                self._names[name] = lambda code, named=named: named.get(code, f"{code:g}")
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(values))
        held = min(calibration_rows, len(values) // 5)
        calibration, indexed = order[:held], order[held:][:index_rows]
        self._fit_scale(values[indexed])
        self.index = self._space(values[np.sort(indexed)])
        self._index_norms = squared_norms(self.index)  # once, not at every score
        self.neighbours = min(neighbours, len(self.index))
        self.calibration = np.sort(self._scores(values[calibration])[0])
        self._missing = np.isnan(values).mean(axis=0)
        self._quantiles = {j: _quantiles(values[:, j]) for j in self._numeric}
        self._frequencies = {
            name: _frequencies(values[:, j])
            for j, name in enumerate(self.feature_names)
            if name in self._levels
        }

    @property
    def method(self) -> str:
        return (
            f"mean distance to the {self.neighbours} nearest of {len(self.index):,} reference "
            f"rows, standardised; calibrated on {len(self.calibration):,} held-out reference rows"
        )

    def _fit_scale(self, values: np.ndarray) -> None:
        """The numeric features' centre, spread and range, from the index rows."""
        self._numeric = [j for j, f in enumerate(self.feature_names) if f not in self._levels]
        columns = values[:, self._numeric]
        if not self._numeric:
            self._centre = self._spread = self._low = self._high = np.zeros(0)
            return
        with warnings.catch_warnings():  # a column with no value here: no range, no excess
            warnings.simplefilter("ignore", RuntimeWarning)
            self._centre = np.nanmedian(columns, axis=0)
            q1, q3 = np.nanpercentile(columns, [25, 75], axis=0)
            sd = np.nanstd(columns, axis=0)
            self._low, self._high = np.nanmin(columns, axis=0), np.nanmax(columns, axis=0)
        spread = (q3 - q1) / 1.349
        self._spread = np.where(spread > 0, spread, np.where(sd > 0, sd, 1.0))

    def _space(self, values: np.ndarray) -> np.ndarray:
        """Rows in the standardised space (float32), each feature's columns at `_columns`."""
        blocks = []
        for j, name in enumerate(self.feature_names):
            column = values[:, j]
            if name in self._levels:
                levels = self._levels[name]  # then a column for any other code, one for NaN
                k = len(levels)
                at = np.minimum(np.searchsorted(levels, column), k - 1)
                codes = np.where(levels[at] == column, at, k)
                codes = np.where(np.isnan(column), k + 1, codes)
                block = np.zeros((len(column), k + 2), dtype=np.float32)
                block[np.arange(len(column)), codes] = np.sqrt(0.5)
            else:
                i = self._numeric.index(j)
                scaled = (column - self._centre[i]) / self._spread[i]
                # missing: at the median, and 1 away from any value present on a column of its own
                block = np.column_stack([np.nan_to_num(scaled), np.isnan(column)])
            blocks.append(block.astype(np.float32))
        return np.concatenate(blocks, axis=1)

    @property
    def _columns(self) -> list[slice]:
        widths = [
            len(self._levels[name]) + 2 if name in self._levels else 2
            for name in self.feature_names
        ]
        ends = np.cumsum(widths)
        return [slice(int(e - w), int(e)) for e, w in zip(ends, widths, strict=True)]

    def _scores(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's score and each feature's part of its square: the mean distance to
        the nearest index rows, plus `EXCESS_WEIGHT` times how far its values lie beyond
        the index rows' range (in spreads)."""
        starts = [c.start for c in self._columns]
        distances, parts = nearest(
            self._space(values), self.index, self.neighbours, starts, self._index_norms
        )
        numeric = values[:, self._numeric]
        with np.errstate(invalid="ignore"):
            beyond = np.maximum(numeric - self._high, self._low - numeric)
        excess = EXCESS_WEIGHT * np.nan_to_num(np.maximum(beyond, 0.0)) / self._spread
        parts[:, self._numeric] += excess**2
        return distances + excess.sum(axis=1), parts

    def score(self, data: Dataset) -> list[RowTypicality]:
        """Every row of `data` (matched to the reference by `load_reference`). A row with a
        value the reference never has (a category, or a missing value where it has none)
        is as unusual as any: the lowest typicality, that value its first reason."""
        values = data.frame[self.feature_names].to_numpy(dtype=np.float64)
        scores, parts = self._scores(values)
        typicality = calibrated(self.calibration, scores)
        novel = self._novel(values)
        typicality[novel.any(axis=1)] = 1 / (len(self.calibration) + 1)
        totals = parts.sum(axis=1, keepdims=True)
        shares = np.divide(parts, totals, out=np.zeros_like(parts), where=totals > 0)
        return [
            RowTypicality(
                typicality=float(typicality[i]),
                score=float(scores[i]),
                shares=dict(zip(self.feature_names, shares[i].tolist(), strict=True)),
                reasons=self._reasons(values[i], shares[i], novel[i]),
            )
            for i in range(len(values))
        ]

    def _novel(self, values: np.ndarray) -> np.ndarray:
        """Where a row has a value no reference row has: a category, or a missing value."""
        novel = np.isnan(values) & (self._missing == 0)
        for j, name in enumerate(self.feature_names):
            if name in self._levels:
                seen = np.array(list(self._frequencies[name]))
                novel[:, j] |= ~np.isnan(values[:, j]) & ~np.isin(values[:, j], seen)
        return novel

    def _reasons(
        self, row: np.ndarray, shares: np.ndarray, novel: np.ndarray, top: int = 3
    ) -> list[str]:
        """In words, what sets the row apart: values the reference never has, then the
        features with the largest shares of its distance (at least a tenth of it)."""
        order = np.lexsort((-shares, ~novel))
        chosen = [j for j in order if novel[j] or shares[j] >= 0.1][:top]
        return [self._reason(j, row[j]) for j in chosen]

    def _reason(self, j: int, value: float) -> str:
        name = self.feature_names[j]
        if np.isnan(value):
            share = float(self._missing[j])
            if share == 0:
                return f"{name} is missing, and no reference row is"
            return f"{name} is missing, as in {_percent(share)} of reference rows"
        if name in self._levels:
            category = self._names[name](float(value))
            share = self._frequencies[name].get(float(value), 0.0)
            if share == 0:
                return f"{name} = {category} never appears in the reference"
            return f"{name} = {category} appears in {_percent(share)} of reference rows"
        known = self._quantiles[j]
        shown = f"{name} = {value:.4g}"
        if value > known[-1]:
            return f"{shown} is above every reference value (the largest is {known[-1]:.4g})"
        if value < known[0]:
            return f"{shown} is below every reference value (the smallest is {known[0]:.4g})"
        below = np.searchsorted(known, value, side="left") / (len(known) - 1)
        if below >= 0.5:
            return f"{shown} is above {_percent(below)} of reference values"
        above = 1 - (np.searchsorted(known, value, side="right") - 1) / (len(known) - 1)
        return f"{shown} is below {_percent(above)} of reference values"


def squared_norms(rows: np.ndarray) -> np.ndarray:
    """Each row's squared Euclidean norm: what `nearest` needs of its index, which a scorer
    computes once."""
    return np.einsum("ij,ij->i", rows, rows)


def nearest(
    points: np.ndarray,
    index: np.ndarray,
    k: int,
    starts: list[int] | None = None,
    index_norms: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each point's mean distance to its `k` nearest `index` rows and, where `starts` gives
    the first column of each feature, each feature's part of the squared distances to them
    (else an empty array). Searched by blocks of points with BLAS, as brute force is fastest
    in this many dimensions; the distances to the rows found are then computed exactly.
    `index_norms`: each index row's squared norm, where the caller keeps them."""
    chunk = 512
    squared_index = squared_norms(index) if index_norms is None else index_norms
    means = np.empty(len(points))
    parts = np.empty((len(points), len(starts) if starts else 0))
    for start in range(0, len(points), chunk):
        block = points[start : start + chunk]
        squared = squared_norms(block)[:, None] + squared_index
        squared -= 2 * block @ index.T
        found = np.argpartition(squared, k - 1, axis=1)[:, :k]
        gaps = (block[:, None, :] - index[found]).astype(np.float64) ** 2
        means[start : start + chunk] = np.sqrt(gaps.sum(axis=2)).mean(axis=1)
        if starts:
            parts[start : start + chunk] = np.add.reduceat(gaps.sum(axis=1), starts, axis=1)
    return means, parts


def calibrated(calibration: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Conformal typicality: (1 + held-out reference points at least as far) / (their
    number + 1), `calibration` their sorted distances."""
    beyond = len(calibration) - np.searchsorted(calibration, distances, side="left")
    return (beyond + 1) / (len(calibration) + 1)


def _quantiles(column: np.ndarray) -> np.ndarray:
    """`QUANTILES` values of the column, from its smallest to its largest, evenly spaced in
    rank (0.01 % apart: the words need no finer): one sort, not a quantile search each."""
    present = np.sort(column[~np.isnan(column)])
    ranks = np.linspace(0, len(present) - 1, min(len(present), QUANTILES))
    return present[np.round(ranks).astype(np.int64)]


def _frequencies(codes: np.ndarray) -> dict[float, float]:
    present, counts = np.unique(codes[~np.isnan(codes)], return_counts=True)
    return {float(c): n / len(codes) for c, n in zip(present, counts, strict=True)}


def _percent(share: float) -> str:
    """A share as a person reads it: 0.4 %, 12 %, 99.7 %, 99.95 %; never 0 % or 100 % for a
    share that is neither."""
    if 0 < share < 0.001:
        return "under 0.1 %"
    if 0.999 < share < 1:
        return f"{np.floor(10_000 * share) / 100:.2f} %"
    return f"{100 * share:.1f} %" if share < 0.1 or share > 0.9 else f"{100 * share:.0f} %"
