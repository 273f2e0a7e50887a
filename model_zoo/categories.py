"""Categorical columns as numbers: a text column is held as float codes (0..k-1 in the order
of its category names, NaN where missing), so that every explainer works on float rows, and
is turned back into names where a model or a person needs them.

A model that knows its categories lists them first, in its own order; categories it never
saw follow, in sorted order, so their codes lie beyond the model's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

UNSEEN = "<whybox: a category the model never saw>"
"""What a model is given for a code beyond its categories: encoders treat every unseen
category alike, so one stand-in gives the model's answer for all of them."""


def as_text(series: pd.Series) -> pd.Series:
    """Values as category names, NaN where missing: whole numbers without a decimal point,
    so a column of codes read as numbers matches names such as '1'."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        numbers = pd.to_numeric(series, errors="coerce")
        whole = numbers.dropna().mod(1).eq(0).all()
        text = numbers.astype("Int64" if whole else "Float64").astype(str)
        return text.where(numbers.notna(), np.nan).astype(object)
    return (
        series.astype(object)
        .where(series.notna(), np.nan)
        .map(lambda v: v if isinstance(v, float) and np.isnan(v) else str(v).strip())
    )


def encode(series: pd.Series, known: Sequence[str] = ()) -> tuple[np.ndarray, list[str]]:
    """Float codes for a column, and its category names in code order: `known` first, then
    the column's other values, sorted."""
    position, distinct = pd.factorize(series)  # each distinct value read once, not each row
    text = as_text(pd.Series(distinct, dtype=series.dtype))
    present = text.dropna().unique().tolist()
    categories = list(known) + sorted(set(present) - set(known))
    index = {name: float(code) for code, name in enumerate(categories)}
    by_distinct = np.append(text.map(index).to_numpy(dtype=np.float64, na_value=np.nan), np.nan)
    return by_distinct[position], categories  # position -1 (missing) takes the NaN at the end


def names(categories: Sequence[str], codes: np.ndarray) -> np.ndarray:
    """Category names for float codes (an object array; None where missing, `UNSEEN` for a
    code beyond `categories`), e.g. a column of `Explanation.data` with its
    `Dataset.categories` list."""
    codes = np.asarray(codes, dtype=np.float64)
    table = np.array([*categories, UNSEEN, None], dtype=object)
    index = np.where(np.isnan(codes), len(table) - 1, np.minimum(codes, len(categories)))
    return table[index.astype(np.int64)]


def decode(
    X: np.ndarray, feature_names: Sequence[str], categories: dict[str, list[str]]
) -> pd.DataFrame:
    """Float rows as the frame a model trained on raw columns takes: categorical columns as
    names (object, NaN where missing), the others as float64."""
    columns = {}
    for j, name in enumerate(feature_names):
        if name in categories:
            decoded = names(categories[name], X[:, j])
            decoded[pd.isna(decoded)] = np.nan
            columns[name] = decoded
        else:
            columns[name] = X[:, j]
    return pd.DataFrame(columns, columns=list(feature_names))
