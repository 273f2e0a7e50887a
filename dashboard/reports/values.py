"""Features and their values as a person reads them: categories and coded values by name,
missing values said so, labels and units from the data dictionary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from whybox.dashboard.reports.dictionary import code_key
from whybox.explainers import Explanation
from whybox.model_zoo.categories import UNSEEN, names


def value_text(explanation: Explanation, feature: str, value: float) -> str:
    """A feature's value as a person reads it (plain text, not escaped): a categorical
    feature's category name, 'an unseen category' beyond the known ones, 'missing' for NaN,
    a coded value's name from the data dictionary, else the number to 4 significant digits
    and its unit."""
    if np.isnan(value):
        return "missing"
    entry = explanation.dictionary.get(feature, {})
    labels = entry.get("values", {})
    known = explanation.categories.get(feature)
    if known is not None:
        name = names(known, np.array([value]))[0]
        return "an unseen category" if name == UNSEEN else labels.get(str(name), str(name))
    if code_key(value) in labels:
        return labels[code_key(value)]
    unit = entry.get("unit")
    return f"{value:.4g} {unit}" if unit else f"{value:.4g}"


def value_texts(explanation: Explanation, feature: str, values: np.ndarray) -> list[str]:
    """`value_text` of each of `values`, fast enough for a chart's hover text over many
    rows (plain numbers formatted directly, coded ones looked up once per distinct value)."""
    values = np.asarray(values, dtype=np.float64)
    if feature not in explanation.categories and feature not in explanation.dictionary:
        return [f"{v:.4g}" if v == v else "missing" for v in values.tolist()]  # NaN != NaN
    distinct, index = np.unique(values, return_inverse=True)
    texts = [value_text(explanation, feature, float(v)) for v in distinct]
    return [texts[i] for i in index.reshape(-1)]


def feature_text(explanation: Explanation, feature: str) -> str:
    """A feature's label from the data dictionary, else its name (plain text, not escaped)."""
    return explanation.dictionary.get(feature, {}).get("label", feature)


def categorical(explanation: Explanation, feature: str) -> bool:
    """Whether `feature` is shown as categories: the data's or the dictionary's codes."""
    return feature in explanation.categories or bool(
        explanation.dictionary.get(feature, {}).get("values")
    )


def row_notes(
    explanation: Explanation,
    position: int,
    known: Mapping[str, Sequence[str]],
    unseen: Mapping[str, str | None],
) -> list[str]:
    """What the model made of this row's categories it never saw and its missing values
    (plain text, not escaped), one note per feature. `known` are the categories the model
    learned, `unseen` what it makes of another (a model's attributes of those names, or
    their copies in a run's record)."""
    notes = []
    for name, value in zip(explanation.feature_names, explanation.data[position], strict=True):
        shown = f"{feature_text(explanation, name)} = {value_text(explanation, name, value)}"
        if np.isnan(value):
            notes.append(f"{shown}: given to the model as a missing value")
        elif name in known and value >= len(known[name]) and unseen.get(name):
            notes.append(f"{shown}: a category the model never saw; it treats it as {unseen[name]}")
    return notes
