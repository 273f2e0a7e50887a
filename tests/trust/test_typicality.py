"""Per-row typicality: uniform on held-out reference rows, low on rows unlike the
reference, and in words, the features that make a row unusual."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.trust.tables import mixed, pair
from whybox.model_zoo import WhyboxError
from whybox.trust.typicality import Typicality


@pytest.fixture(scope="module")
def reference_and_scorer():
    reference, held_out = pair(mixed(6000, 0), mixed(3000, 1))
    return reference, held_out, Typicality(reference)


def test_held_out_reference_rows_get_uniform_typicality(reference_and_scorer) -> None:
    """Rows drawn like the reference: about 1 % below 0.01, 10 % below 0.1, and their
    distribution indistinguishable from uniform."""
    _, held_out, scorer = reference_and_scorer
    typicality = np.array([row.typicality for row in scorer.score(held_out)])
    n = len(typicality)
    for level in (0.01, 0.05, 0.1, 0.5):
        spread = 3 * np.sqrt(level * (1 - level) / n)
        assert abs(np.mean(typicality <= level) - level) <= spread, level
    assert stats.kstest(typicality, "uniform").pvalue > 0.001


def test_rows_unlike_the_reference_are_flagged_and_explained(reference_and_scorer) -> None:
    reference, _, scorer = reference_and_scorer
    odd = mixed(5, 2)
    odd.loc[0, "x3"] = 40.0  # far beyond every reference value
    odd.loc[1, "home"] = "boat"  # a category the reference never had
    odd.loc[2, ["x0", "x1"]] = [2.5, -2.5]  # each common alone, never together (x1 ~ x0)
    odd.loc[3, "x5"] = np.nan  # the reference has no missing values
    reference = mixed(6000, 0)
    odd.loc[4, "x6"] = reference["x6"].min() - 0.5  # just beyond the range: an extrapolation
    _, data = pair(reference, odd)
    rows = Typicality(pair(reference, odd)[0]).score(data)
    assert all(row.typicality < 0.01 for row in rows), [r.typicality for r in rows]
    largest = [max(row.shares, key=row.shares.get) for row in rows]
    assert largest[0] == "x3" and largest[2] in {"x0", "x1"}
    assert {"x0", "x1"} <= {reason.split(" ")[0] for reason in rows[2].reasons}
    assert rows[0].reasons[0].startswith("x3 = 40 is above every reference value")
    assert rows[1].reasons[0] == "home = boat never appears in the reference"
    assert rows[3].reasons[0] == "x5 is missing, and no reference row is"
    assert largest[4] == "x6" and rows[4].reasons[0].startswith("x6 = -")
    assert "is below every reference value" in rows[4].reasons[0]
    assert all(sum(row.shares.values()) == pytest.approx(1.0) for row in rows)
    assert "10 nearest" in scorer.method and reference is not None


def test_a_reference_too_small_says_how_many_rows_it_needs() -> None:
    reference, _ = pair(mixed(30, 0), mixed(30, 1))
    with pytest.raises(WhyboxError, match="30 row\\(s\\); typicality needs at least 50"):
        Typicality(reference)


def test_scores_do_not_depend_on_how_rows_are_batched(reference_and_scorer) -> None:
    _, held_out, scorer = reference_and_scorer
    whole = [row.typicality for row in scorer.score(held_out)]
    import dataclasses

    part = dataclasses.replace(held_out, frame=held_out.frame.iloc[700:705])
    assert [row.typicality for row in scorer.score(part)] == whole[700:705]
    assert isinstance(held_out.frame, pd.DataFrame)
