"""Tables for the trust tests: mixed numeric and categorical columns drawn from one
distribution, to split (no shift) or to shift by a planted amount."""

from __future__ import annotations

import numpy as np
import pandas as pd

from whybox.model_zoo import Dataset, load_data
from whybox.model_zoo.data import load_reference

CATEGORIES = ["rent", "own", "mortgage", "other"]
FREQUENCIES = [0.5, 0.2, 0.2, 0.1]


def mixed(n: int, seed: int, numeric: int = 19, other: float = 0.1) -> pd.DataFrame:
    """`numeric` standard normal columns x0.. (x1 correlated with x0) and a categorical
    `home` whose category 'other' has frequency `other`."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((n, numeric))
    values[:, 1] = 0.6 * values[:, 0] + 0.8 * values[:, 1]
    frame = pd.DataFrame(values, columns=[f"x{j}" for j in range(numeric)])
    rest = (1 - other) / (1 - FREQUENCIES[-1])
    frequencies = [f * rest for f in FREQUENCIES[:-1]] + [other]
    frame["home"] = rng.choice(CATEGORIES, size=n, p=frequencies)
    return frame


def pair(reference: pd.DataFrame, data: pd.DataFrame) -> tuple[Dataset, Dataset]:
    """The two tables as whybox reads them: the data, and the reference matched to it."""
    new = load_data(data.to_csv(index=False).encode(), name="data.csv")
    return load_reference(reference.to_csv(index=False).encode(), new, "reference.csv"), new
