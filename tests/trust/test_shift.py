"""Per-data-set shift: calibrated where there is none, powerful where there is some, and
named in the feature that moved."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.trust.tables import mixed, pair
from whybox.model_zoo import WhyboxError, demos, load_data
from whybox.trust.shift import holm, shift_report

ALPHA = 0.05


def binomial_ceiling(rate: float, trials: int) -> float:
    """The most flags a calibrated test gives in `trials`, at 3 binomial SDs."""
    return rate + 3 * np.sqrt(rate * (1 - rate) / trials)


@pytest.mark.slow
def test_no_shift_over_200_random_splits_of_one_data_set_flags_at_most_5_percent() -> None:
    frame = pd.read_csv(demos.data_path("credit")).drop(columns="Status")
    whole = load_data(frame.to_csv(index=False).encode())
    flagged, classifier = [], []
    for seed in range(200):
        order = np.random.default_rng(seed).permutation(len(whole))
        half = [
            dataclasses.replace(whole, frame=whole.frame.iloc[rows].reset_index(drop=True))
            for rows in (order[:1000], order[1000:2000])
        ]
        report = shift_report(*half, alpha=ALPHA, seed=seed)
        flagged.append(report.shifted)
        classifier.append(report.classifier.p_value < ALPHA)
    assert np.mean(flagged) <= binomial_ceiling(ALPHA, 200), np.mean(flagged)
    assert np.mean(classifier) <= binomial_ceiling(ALPHA, 200), np.mean(classifier)


def test_on_continuous_data_the_feature_tests_are_calibrated_not_only_conservative() -> None:
    """Normal columns have no ties, so Kolmogorov-Smirnov's p-values are uniform: each
    feature's test flags about 5 % of 200 splits, and the family (Holm) at most 5 %."""
    raw, family = [], []
    for seed in range(200):
        reference, data = pair(mixed(500, 2 * seed), mixed(500, 2 * seed + 1))
        report = shift_report(reference, data, classifier=False)
        raw += [f.p_value < ALPHA for f in report.features if f.kind == "numeric"]
        family.append(report.shifted)
    assert 0.03 <= np.mean(raw) <= 0.07, np.mean(raw)
    assert np.mean(family) <= binomial_ceiling(ALPHA, 200)


@pytest.mark.parametrize("planted", ["mean", "category"])
def test_a_planted_shift_in_one_of_20_features_is_found_and_ranked_first(planted) -> None:
    """0.5 SD in one numeric feature, or one category from 10 % to 20 %, at 1,000 rows."""
    found, first = [], []
    for seed in range(50):
        old = mixed(1000, 2 * seed)
        if planted == "mean":
            new = mixed(1000, 2 * seed + 1)
            new["x7"] += 0.5
        else:
            new = mixed(1000, 2 * seed + 1, other=0.2)
        report = shift_report(*pair(old, new), classifier=False)
        found.append(report.shifted)
        first.append(report.features[0].feature == ("x7" if planted == "mean" else "home"))
    assert np.mean(found) >= 0.9 and np.mean(first) >= 0.9, (np.mean(found), np.mean(first))


def test_the_report_names_effects_histograms_and_the_classifiers_features() -> None:
    old, new = mixed(2000, 0), mixed(2000, 1, other=0.3)
    new["x3"] = new["x3"] * 2 + 1
    new.loc[::10, "x5"] = np.nan
    report = shift_report(*pair(old, new))
    by_name = {f.feature: f for f in report.features}
    x3, home, x5 = by_name["x3"], by_name["home"], by_name["x5"]
    assert report.shifted and x3.shifted and home.shifted
    # Wasserstein in SDs against scipy's own on the same columns
    expected = stats.wasserstein_distance(old["x3"], new["x3"]) / old["x3"].std(ddof=0)
    assert x3.shift_sd == pytest.approx(expected, rel=1e-9)
    assert x3.effect == pytest.approx(stats.ks_2samp(old["x3"], new["x3"]).statistic)
    assert home.effect == pytest.approx(
        0.5
        * np.abs(
            old["home"].value_counts(normalize=True) - new["home"].value_counts(normalize=True)
        ).sum(),
        rel=1e-9,
    )
    assert home.histogram["categories"] == sorted(["rent", "own", "mortgage", "other"])
    assert sum(home.histogram["data"]) == pytest.approx(1.0)
    assert x5.missing == {"reference": 0.0, "data": 0.1}
    assert len(x3.histogram["edges"]) == len(x3.histogram["reference"]) + 1
    test = report.classifier
    assert test.shifted and test.interval[0] < test.auc < test.interval[1]
    assert list(test.importance)[0] in {"x3", "home"}
    assert [f.feature for f in report.features][:2] in (["x3", "home"], ["home", "x3"])


def test_holm_against_its_definition() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, then running maximum
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])


def test_too_few_rows_say_how_many_are_needed() -> None:
    with pytest.raises(WhyboxError, match="the reference has 5 row\\(s\\); .* at least 20"):
        shift_report(*pair(mixed(5, 0), mixed(100, 1)))


def test_a_reference_inside_the_data_does_not_push_the_classifiers_auc_below_chance() -> None:
    """Rows in both tables are held out together: learnt from one copy and tested on the
    other, the classifier would call them the wrong table (AUC well below 0.5)."""
    frame = mixed(3000, 0)
    report = shift_report(*pair(frame.head(2000), frame))
    low, high = report.classifier.interval
    assert low <= 0.5 <= high + 0.01 and not report.classifier.shifted, (low, high)
