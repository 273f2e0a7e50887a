"""Attributions per raw column for models that take text columns, equal to interventional
Shapley values computed over the raw columns without whybox."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.model_zoo.categorical import (
    FEATURES,
    as_categories,
    booster_files,
    brute_shapley,
    explained_csv,
    raw_rows,
    skops_pipeline,
)
from whybox.explainers.sampling import PermutationShap
from whybox.explainers.shapley import ExactShapley, TreeShap
from whybox.model_zoo import load_data, load_model

ROWS = [0, 1, 2, 3, 7]  # plain, an empty cell, an NA, an unseen category, an empty text cell


def check_against_brute_force(model, f, space: str, target: int | None) -> None:
    data = load_data(explained_csv(), model, name="data.csv")
    explainer = ExactShapley(background=len(data), output_space=space)
    explanation = explainer.explain(model, data, rows=ROWS, target=target)
    assert explanation.feature_names == FEATURES
    assert explanation.additivity_gap < 1e-9
    background = raw_rows()
    for i, row in enumerate(ROWS):
        values, base = brute_shapley(f, background.iloc[[row]], background)
        np.testing.assert_allclose(explanation.values[i], values, atol=1e-6)
        np.testing.assert_allclose(explanation.base_values[i], base, atol=1e-6)


@pytest.mark.parametrize("name", ["one-hot", "ordinal", "target", "one-hot-trees"])
def test_exact_shapley_on_a_pipeline_is_shapley_over_the_raw_columns(name):
    raw, fitted = skops_pipeline(name)
    model = load_model(raw, name="pipeline.skops")
    if name == "target":
        check_against_brute_force(model, fitted.predict, "value", None)
    else:
        check_against_brute_force(model, lambda X: fitted.predict_proba(X)[:, 1], "probability", 1)


@pytest.mark.parametrize("name", ["xgboost-json", "xgboost-ubj", "lightgbm"])
def test_exact_shapley_on_a_categorical_booster(tmp_path, name):
    path, fitted = booster_files(tmp_path)[name]
    model = load_model(path)

    def f(X: pd.DataFrame) -> np.ndarray:
        return fitted.predict_proba(as_categories(X, model.categories))[:, 1]

    check_against_brute_force(model, f, "probability", 1)


@pytest.mark.parametrize("name", ["xgboost-json", "lightgbm"])
def test_tree_shap_on_a_categorical_booster_is_the_librarys(tmp_path, name):
    import xgboost

    path, fitted = booster_files(tmp_path)[name]
    model = load_model(path)
    data = load_data(explained_csv(), model, name="data.csv")
    explanation = TreeShap().explain(model, data, target=1)
    frame = as_categories(raw_rows(), model.categories)
    if name == "lightgbm":
        expected = fitted.booster_.predict(frame, pred_contrib=True)
    else:
        matrix = xgboost.DMatrix(frame, enable_categorical=True)
        expected = fitted.get_booster().predict(matrix, pred_contribs=True)
    np.testing.assert_allclose(explanation.values, expected[:, :-1], atol=1e-5)
    assert explanation.additivity_gap < 1e-5


@pytest.mark.parametrize("name", ["ordinal", "target", "one-hot-trees"])
def test_tree_shap_on_a_pipeline_sums_the_encoded_columns(name):
    import shap

    raw, fitted = skops_pipeline(name)
    model = load_model(raw, name="pipeline.skops")
    data = load_data(explained_csv(), model, name="data.csv")
    assert TreeShap().supports(model, data)
    target = None if name == "target" else 1
    explanation = TreeShap().explain(model, data, target=target)
    assert explanation.feature_names == FEATURES and explanation.values.shape == (8, 4)
    assert explanation.additivity_gap < 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoded = fitted[:-1].transform(raw_rows())
    per_encoded = np.asarray(shap.TreeExplainer(fitted[-1]).shap_values(encoded))
    if per_encoded.ndim == 3:
        per_encoded = per_encoded[:, :, 1]
    # The one-hot pipeline's columns: age, income, then one per category of home and status.
    widths = [1, 1, 3, 3] if name == "one-hot-trees" else [1, 1, 1, 1]
    starts = np.cumsum([0, *widths])
    summed = np.add.reduceat(per_encoded, starts[:-1], axis=1)
    np.testing.assert_allclose(explanation.values, summed, atol=1e-9)


def test_tree_shap_refuses_a_pipeline_that_mixes_columns():
    import skops.io as sio
    from sklearn.compose import make_column_transformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from tests.model_zoo.categorical import training_frame

    frame, label = training_frame()
    frame = frame.dropna()
    pipeline = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["home"]), (PCA(1), ["age", "income"])
        ),
        RandomForestRegressor(n_estimators=5, random_state=0),
    ).fit(frame[["age", "income", "home"]], label[frame.index])
    model = load_model(sio.dumps(pipeline), name="mixed.skops")
    support = TreeShap().supports(model)
    assert not support and "exact-shapley" in support.reason


def test_permutation_shap_perturbs_the_raw_columns():
    raw, _ = skops_pipeline("one-hot")
    model = load_model(raw, name="pipeline.skops")
    data = load_data(explained_csv(), model, name="data.csv")
    exact = ExactShapley(background=len(data), output_space="probability").explain(
        model, data, rows=ROWS, target=1
    )
    sampled = PermutationShap(background=len(data), output_space="probability")
    estimate = sampled.explain(model, data, rows=ROWS, target=1)
    assert estimate.feature_names == FEATURES
    np.testing.assert_allclose(estimate.values.sum(1), exact.values.sum(1), atol=1e-9)


def test_the_command_line_explains_a_pipeline_from_the_raw_csv(tmp_path):
    raw, _ = skops_pipeline("one-hot")
    (tmp_path / "model.skops").write_bytes(raw)
    (tmp_path / "data.csv").write_bytes(explained_csv())
    out = tmp_path / "run"
    whybox = str(Path(sys.executable).with_name("whybox"))
    command = [whybox, "explain", tmp_path / "model.skops", tmp_path / "data.csv"]
    command += ["--explainer", "exact-shapley", "--out", out]
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(out / "attributions.csv")
    assert list(frame.columns) == ["row", *FEATURES, "base_value", "prediction"]
    inputs = pd.read_csv(out / "inputs.csv")  # the values as given: categories by name
    pd.testing.assert_frame_equal(inputs[FEATURES], raw_rows(), check_dtype=False)
    features = frame[FEATURES]
    np.testing.assert_allclose(features.sum(1) + frame.base_value, frame.prediction, atol=1e-9)
