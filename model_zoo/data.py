"""`Dataset` and `load_data`: tabular files checked against the model they will feed."""

from __future__ import annotations

import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from whybox.model_zoo.categories import encode
from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.limits import read_source
from whybox.model_zoo.model import Model, sha256_of
from whybox.model_zoo.tables import name_list, read_table, release_unused


@dataclass
class Dataset:
    """Feature rows (float64, in the model's feature order), an optional label and
    identifier column (kept out of the features), provenance and notes on how it was read."""

    frame: pd.DataFrame
    sha256: str
    name: str = "data"
    labels: pd.Series | None = None
    label_name: str | None = None
    ids: pd.Series | None = None
    id_name: str | None = None
    notes: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)
    """Categorical columns: their category names in code order; the frame holds the codes
    (see `model_zoo.categories`, whose `names` turns codes back into names)."""

    @property
    def feature_names(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    @property
    def values(self) -> np.ndarray:
        return self.frame.to_numpy(dtype=np.float64)

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, rows: Sequence[int]) -> Dataset:
        """The rows at positions `rows`, with their labels and identifiers, numbered anew."""
        rows = np.asarray(rows, dtype=np.int64)
        return replace(
            self,
            frame=self.frame.iloc[rows].reset_index(drop=True),
            labels=None if self.labels is None else self.labels.iloc[rows].reset_index(drop=True),
            ids=None if self.ids is None else self.ids.iloc[rows].reset_index(drop=True),
        )

    def background(self, n: int, seed: int = 0) -> np.ndarray:
        """A reproducible sample of `n` rows (all rows when there are fewer) as reference data."""
        values = self.values
        index = background_rows(len(values), n, seed)
        return values.copy() if index is None else values[index]

    def mean_row(self, n: int, seed: int = 0) -> np.ndarray:
        """The mean of `background(n, seed)` as one row (1, features), categorical columns at
        their most frequent category there: a mean of codes would name no category."""
        rows = self.background(n, seed)
        mean = rows.mean(axis=0, keepdims=True)
        for j, column in enumerate(self.feature_names):
            if column in self.categories:
                codes, counts = np.unique(rows[:, j][~np.isnan(rows[:, j])], return_counts=True)
                mean[0, j] = codes[np.argmax(counts)] if len(codes) else np.nan
        return mean

    def summary(self) -> dict:
        return {
            "name": self.name,
            "rows": len(self),
            "features": self.feature_names,
            "label": self.label_name,
            "id": self.id_name,
            "sha256": self.sha256,
            "notes": list(self.notes),
            "categories": {column: list(names) for column, names in self.categories.items()},
        }


def take_rows(values: np.ndarray, rows: np.ndarray | Sequence[int]) -> np.ndarray:
    """`values[rows]`: for consecutive rows (all of them, typically) a read-only view, so a
    million rows are used without a second copy of them in memory, and read-only so that
    no caller (a plugin's explainer too) changes the user's data through it; else a copy."""
    rows = np.asarray(rows)
    if not len(rows) or np.any(np.diff(rows) != 1):
        return values[rows]
    view = values[rows[0] : rows[-1] + 1].view()
    view.flags.writeable = False
    return view


def background_rows(n_rows: int, n: int, seed: int = 0) -> np.ndarray | None:
    """The sorted positions of `Dataset.background(n, seed)` in a table of `n_rows` rows;
    None where it takes every row."""
    if n <= 0:
        raise WhyboxError(f"the background size must be at least 1 (got {n})")
    if n >= n_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=n, replace=False))


def _numeric(
    frame: pd.DataFrame, model: Model | None, known: dict[str, list[str]] | None = None
) -> tuple[pd.DataFrame, dict[str, list[str]], list[str]]:
    """Every column as float64, the category names of categorical columns, and notes.

    A column the model takes as categories (with no model, a text column; with `known`,
    a column it names) becomes codes, the model's (or `known`) categories first; text in
    any other column is an error naming it.
    """
    text_is_category = model is None and known is None
    if known is None:
        known = model.categories if model is not None else {}
    bad, categories, notes = [], {}, []
    # Each column converted straight into its place in one block: the table is held once as
    # read and once converted, never a third time as converted columns waiting to be joined.
    values = np.empty(frame.shape, dtype=np.float64, order="F")
    for j, column in enumerate(frame.columns):
        series = frame[column]
        if column in known or (text_is_category and _is_text(series)):
            values[:, j], categories[column] = encode(series, known.get(column, ()))
            if model is not None:
                notes += _unseen(column, values[:, j], categories[column], model)
            continue
        if series.dtype == bool:
            series = series.astype(float)
        numbers = pd.to_numeric(series, errors="coerce")
        text = np.flatnonzero(numbers.isna() & series.notna())
        if len(text):
            first = reprlib.repr(str(series.iloc[text[0]]))  # one short line, however long
            bad.append(f"{column!r} ({first} in row {text[0]}, {len(text):,} row(s) in all)")
        values[:, j] = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise WhyboxError(
            f"non-numeric values in column(s) {shown}; encode them as numbers the way the "
            "model was trained, or leave a cell empty for a missing value"
        )
    converted = pd.DataFrame(values, index=frame.index, columns=frame.columns, copy=False)
    return converted, categories, notes


def _is_text(series: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    distinct = pd.Series(series.dropna().unique())  # a column of categories has few
    return bool(pd.to_numeric(distinct, errors="coerce").isna().any())


def _unseen(column: str, codes: np.ndarray, names: list[str], model: Model) -> list[str]:
    """A note on categories of `column` the model never saw, or an error where it refuses
    them."""
    known = len(model.categories[column])
    if len(names) == known:
        return []
    rows = int((codes >= known).sum())
    unseen = name_list(names[known:])
    found = f"column {column!r}: {rows:,} row(s) have a category the model never saw ({unseen})"
    treated = model.unseen.get(column)
    if treated is None:
        raise WhyboxError(
            f"{found} and the model refuses unseen categories; map them to one of its "
            f"categories ({name_list(names[:known])}) or remove those rows"
        )
    return [f"{found}; the model treats it as {treated}"]


def load_data(
    source: bytes | str | Path,
    model: Model | None = None,
    label: str | None = None,
    name: str | None = None,
    id: str | None = None,
    limited: bool = True,
) -> Dataset:
    """Read a table (see `tables.read_table`) and match its columns to `model`; `label` and
    `id` name columns kept out of the features (the truth, an identifier per row);
    `limited=False`: no upload size limit (the operator's own files), the row limit holds.

    By name where the model names its features (any order; other columns are left out with a
    note), by position otherwise. Missing, non-numeric, infinite or empty data is a
    `WhyboxError` naming the columns; NaN passes only to models that handle missing values.
    """
    raw, name = read_source(source, name, "data", "data", limited)
    sha256 = sha256_of(raw)
    frame, notes = read_table(raw, name)
    del raw, source  # before the table is converted: a large file is not held three times
    release_unused()
    data = table_dataset(frame, model, label, id, name, sha256, notes)
    del frame  # the table as read; the dataset holds its own copy
    release_unused()
    return data


def table_dataset(
    frame: pd.DataFrame,
    model: Model | None,
    label: str | None,
    id: str | None,
    name: str,
    sha256: str,
    notes: list[str] | None = None,
    part: bool = False,
) -> Dataset:
    """A table already read, checked and matched to `model` as `load_data` does; `part`:
    the frame is one partition of a larger table (`dashboard.jobs.partitions`), where a
    column may well be empty."""
    notes = list(notes or [])
    frame.columns = [str(c).strip() for c in frame.columns]
    if label is not None and label == id:
        raise WhyboxError(f"column {label!r} cannot be both the label and the identifier")
    labels = _take(frame, label, "label")
    ids = _take(frame, id, "identifier")
    if ids is not None and not ids.is_unique:
        repeated = ids[ids.duplicated()].iloc[0]
        notes.append(f"the identifier column {id!r} repeats values (e.g. {str(repeated)!r})")
    if frame.shape[1] == 0:
        raise WhyboxError(f"the data file {name!r} has no feature columns")
    if len(frame) == 0:
        raise WhyboxError(f"the data file {name!r} has a header but no data rows")
    frame, matched = _match_columns(frame, model)
    frame, categories, encoded = _numeric(frame, model)
    _check_values(frame, model, part)
    return Dataset(
        frame=frame,
        sha256=sha256,
        name=name,
        labels=labels,
        label_name=label,
        ids=ids,
        id_name=id,
        notes=notes + matched + encoded,
        categories=categories,
    )


def load_reference(source: bytes | str | Path, data: Dataset, name: str | None = None) -> Dataset:
    """The reference table (what the model learned from, or an earlier population) matched
    to `data` by column name: `data`'s features in its order, its label and identifier
    columns taken out where the reference has them, other columns left out with a note.
    A categorical column is coded with `data`'s categories first, so a code means the same
    category in both; its categories list holds the reference's others after them."""
    raw, name = read_source(source, name, "reference", "reference data")
    frame, notes = read_table(raw, name)
    frame.columns = [str(c).strip() for c in frame.columns]
    labels = _take(frame, data.label_name, "label") if data.label_name in frame else None
    ids = _take(frame, data.id_name, "identifier") if data.id_name in frame else None
    wanted = data.feature_names
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise WhyboxError(
            f"the reference {name!r} lacks the data's column(s) {name_list(missing)}; give "
            "a reference with the same columns as the data"
        )
    extra = [c for c in frame.columns if c not in wanted]
    if extra:
        notes.append(f"ignored reference column(s) the data does not have: {name_list(extra)}")
    if len(frame) == 0:
        raise WhyboxError(f"the reference {name!r} has a header but no data rows")
    try:
        frame, categories, encoded = _numeric(frame[wanted], None, known=data.categories)
        _check_values(frame, None)
    except WhyboxError as exc:  # the same checks as the data's; say which file failed them
        raise WhyboxError(f"in the reference {name!r}: {exc}") from None
    return Dataset(
        frame=frame,
        sha256=sha256_of(raw),
        name=name,
        labels=labels,
        label_name=data.label_name if labels is not None else None,
        ids=ids,
        id_name=data.id_name if ids is not None else None,
        notes=notes + encoded,
        categories=categories,
    )


def _take(frame: pd.DataFrame, column: str | None, what: str) -> pd.Series | None:
    """Remove the `what` column (label or identifier) from `frame` and return it."""
    if column is None:
        return None
    if column not in frame.columns:
        raise WhyboxError(
            f"{what} column {column!r} is not in the data; "
            f"its columns are {name_list(list(frame.columns))}"
        )
    return frame.pop(column)


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
        notes += [
            f"{_id_advice(c)} to carry it into the results" for c in _identifiers(frame[extra])
        ]
        return frame[wanted], notes
    if len(columns) != model.n_features:
        ids = _identifiers(frame)
        if len(columns) < model.n_features:
            advice = "add the missing columns"
        elif ids:
            advice = _id_advice(ids[0])
            if len(columns) - 1 > model.n_features:
                advice += ", and the label column with --label"
        else:
            advice = "name the label column with --label"
        raise WhyboxError(
            f"the model takes {model.n_features} features by position but the data has "
            f"{len(columns)} columns ({name_list(columns)}); {advice}"
        )
    return frame, []


ID_NAME = re.compile(r"(?i)(?:^|[\W_])(?:id|identifier|key|number|num|no)\.?$|[a-z](?:ID|Id)$")


def _identifiers(frame: pd.DataFrame) -> list[str]:
    """Columns that look like row identifiers: a distinct value on every row, either text
    codes or whole numbers under an identifier's name (id, *_id, customerID, number...)."""
    found = []
    for column in frame.columns:
        values = frame[column]
        if values.isna().any() or not values.is_unique or len(values) < 2:
            continue
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        whole = numeric and bool((values == values.round()).all())
        named = bool(ID_NAME.search(str(column)))
        if (named and (whole or not numeric)) or (not numeric and not named and _codes(values)):
            found.append(str(column))
    return found


def _codes(values: pd.Series) -> bool:
    """Text that names rows rather than describing them: short codes containing a digit."""
    text = values.astype(str)
    return bool((text.str.len() <= 40).all() and text.str.contains(r"\d").all())


def _id_advice(column: str) -> str:
    return f"{column!r} looks like an identifier: name it with --id {column}"


def _check_values(frame: pd.DataFrame, model: Model | None, part: bool = False) -> None:
    values = frame.to_numpy()
    infinite = [
        c for c, bad in zip(frame.columns, np.isinf(values).any(axis=0), strict=True) if bad
    ]
    if infinite:
        raise WhyboxError(
            f"infinite values in column(s) {name_list(infinite)}; replace them with finite numbers"
        )
    empty = [] if part else [c for c in frame.columns if frame[c].isna().all()]
    if empty:
        raise WhyboxError(f"column(s) {name_list(empty)} are empty; fill them or remove them")
    missing = [c for c, bad in zip(frame.columns, np.isnan(values).any(axis=0), strict=True) if bad]
    if model is not None:
        missing = [c for c in missing if not model.takes_missing(c)]
    if missing and model is not None:
        raise WhyboxError(
            f"missing values in column(s) {name_list(missing)} and this {model.format} model "
            "cannot handle them; impute them first or use a tree model"
        )
