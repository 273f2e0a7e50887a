"""Performance metrics against scikit-learn's own."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from whybox.model_zoo.performance import binary_auc, metrics


@pytest.mark.parametrize("decimals", [1, 6])  # many ties, and almost none
def test_binary_auc_is_scikit_learns(decimals):
    rng = np.random.default_rng(decimals)
    truth = rng.integers(0, 2, 2000)
    scores = np.round(rng.random(2000) + 0.3 * truth, decimals)
    assert binary_auc(truth, scores) == pytest.approx(sk.roc_auc_score(truth, scores), abs=1e-12)


def test_metrics_of_a_classifier_and_a_regressor():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 500)
    scores = rng.dirichlet([1, 1, 1], 500)
    found = metrics("classification", truth, scores, "probability")
    assert found["accuracy"] == (scores.argmax(axis=1) == truth).mean()
    assert found["auc"] == pytest.approx(sk.roc_auc_score(truth, scores, multi_class="ovr"))
    values = rng.normal(size=500)
    predicted = values[:, None] + rng.normal(scale=0.5, size=(500, 1))
    found = metrics("regression", values, predicted, "value")
    assert found["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(values, predicted[:, 0])))
    assert found["r2"] == pytest.approx(sk.r2_score(values, predicted[:, 0]))


def test_weights_count_rows_as_a_resample_does():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 300)
    scores = np.round(rng.random((300, 1)), 2)
    scores = np.hstack([1 - scores, scores])
    pick = rng.integers(0, 300, 300)
    drawn = np.bincount(pick, minlength=300)
    weighted = metrics("classification", truth, scores, "probability", drawn)
    assert weighted == pytest.approx(
        metrics("classification", truth[pick], scores[pick], "probability")
    )
    values = rng.normal(size=300)
    weighted = metrics("regression", values, scores[:, :1], "value", drawn)
    assert weighted == pytest.approx(metrics("regression", values[pick], scores[pick, :1], "value"))
