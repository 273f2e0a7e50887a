"""Feature values as a person reads them: categories by name, missing values said so."""

from __future__ import annotations

import numpy as np

from whybox.explainers import Explanation
from whybox.model_zoo.categories import UNSEEN, names


def value_text(explanation: Explanation, feature: str, value: float) -> str:
    """A feature's value as a person reads it (plain text, not escaped): a categorical
    feature's category name, 'an unseen category' beyond the known ones, 'missing' for NaN,
    else the number to 4 significant digits."""
    if np.isnan(value):
        return "missing"
    known = explanation.categories.get(feature)
    if known is None:
        return f"{value:.4g}"
    name = names(known, np.array([value]))[0]
    return "an unseen category" if name == UNSEEN else str(name)
