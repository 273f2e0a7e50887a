"""`Dataset` and `load_data`: tabular files checked against the model they will feed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.limits import ROWS, read_source
from whybox.model_zoo.model import Model, sha256_of
from whybox.model_zoo.tables import name_list, read_table


@dataclass
class Dataset:
    """Feature rows (float64, in the model's feature order), an optional label, provenance."""

    frame: pd.DataFrame
    sha256: str
    name: str = "data"
    labels: pd.Series | None = None
    label_name: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def feature_names(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    @property
    def values(self) -> np.ndarray:
        return self.frame.to_numpy(dtype=np.float64)

    def __len__(self) -> int:
        return len(self.frame)

    def background(self, n: int, seed: int = 0) -> np.ndarray:
        """A reproducible sample of `n` rows (all rows when there are fewer) as reference data."""
        values = self.values
        if n <= 0:
            raise WhyboxError(f"the background size must be at least 1 (got {n})")
        if n >= len(values):
            return values.copy()
        index = np.random.default_rng(seed).choice(len(values), size=n, replace=False)
        return values[np.sort(index)]

    def summary(self) -> dict:
        return {
            "name": self.name,
            "rows": len(self),
            "features": self.feature_names,
            "label": self.label_name,
            "sha256": self.sha256,
            "notes": list(self.notes),
        }


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as float64, or a clear error naming the non-numeric columns."""
    bad, converted = [], {}
    for column in frame.columns:
        series = frame[column]
        if series.dtype == bool:
            series = series.astype(float)
        numbers = pd.to_numeric(series, errors="coerce")
        if (numbers.isna() & series.notna()).any():
            bad.append(column)
        converted[column] = numbers.astype(np.float64)
    if bad:
        raise WhyboxError(
            f"non-numeric values in column(s) {name_list(bad)}; encode them as numbers "
            "the way the model was trained"
        )
    return pd.DataFrame(converted, index=frame.index)


def load_data(
    source: bytes | str | Path,
    model: Model | None = None,
    label: str | None = None,
    name: str | None = None,
) -> Dataset:
    """Read a CSV/Parquet file and match its columns to `model`.

    By name where the model names its features (any order; other columns are left out with a
    note), by position otherwise. Missing, non-numeric, infinite or empty data is a
    `WhyboxError` naming the columns; NaN passes only to models that handle missing values.
    """
    raw, name = read_source(source, name, "data", "data")
    frame = read_table(raw, name)
    if len(frame) > ROWS.value():
        raise ROWS.exceeded(
            f"the data file {name!r} has {len(frame):,} rows", "explain a sample of them"
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    labels = None
    if label is not None:
        if label not in frame.columns:
            raise WhyboxError(
                f"label column {label!r} is not in the data; "
                f"its columns are {name_list(list(frame.columns))}"
            )
        labels = frame.pop(label)
    if frame.shape[1] == 0:
        raise WhyboxError(f"the data file {name!r} has no feature columns")
    if len(frame) == 0:
        raise WhyboxError(f"the data file {name!r} has a header but no data rows")
    frame, notes = _match_columns(frame, model)
    frame = _numeric(frame)
    _check_values(frame, model)
    return Dataset(
        frame=frame,
        sha256=sha256_of(raw),
        name=name,
        labels=labels,
        label_name=label,
        notes=notes,
    )


def _match_columns(frame: pd.DataFrame, model: Model | None) -> tuple[pd.DataFrame, list[str]]:
    """The model's feature columns in its order (by name, or by position where it names
    none), and notes on columns left out."""
    if model is None:
        return frame, []
    columns = list(frame.columns)
    if model.feature_names:
        wanted = list(model.feature_names)
        missing = [c for c in wanted if c not in columns]
        extra = [c for c in columns if c not in wanted]
        if missing:
            others = f"; its other columns are {name_list(extra)}" if extra else ""
            raise WhyboxError(
                f"the data lacks the model's feature column(s) {name_list(missing)}{others}"
            )
        notes = [f"ignored column(s) the model does not use: {name_list(extra)}"] if extra else []
        return frame[wanted], notes
    if len(columns) != model.n_features:
        advice = (
            "name the label column with --label"
            if len(columns) > model.n_features
            else "add the missing columns"
        )
        raise WhyboxError(
            f"the model takes {model.n_features} features by position but the data has "
            f"{len(columns)} columns ({name_list(columns)}); {advice}"
        )
    return frame, []


def _check_values(frame: pd.DataFrame, model: Model | None) -> None:
    values = frame.to_numpy()
    infinite = [
        c for c, bad in zip(frame.columns, np.isinf(values).any(axis=0), strict=True) if bad
    ]
    if infinite:
        raise WhyboxError(
            f"infinite values in column(s) {name_list(infinite)}; replace them with finite numbers"
        )
    empty = [c for c in frame.columns if frame[c].isna().all()]
    if empty:
        raise WhyboxError(f"column(s) {name_list(empty)} are empty; fill them or remove them")
    missing = [c for c, bad in zip(frame.columns, np.isnan(values).any(axis=0), strict=True) if bad]
    if missing and model is not None and not model.handles_missing:
        raise WhyboxError(
            f"missing values in column(s) {name_list(missing)} and this {model.format} model "
            "cannot handle them; impute them first or use a tree model"
        )
