"""Exact methods against independent references: brute-force Shapley and the libraries' own values."""

import dataclasses
import itertools
import json
import math

import lightgbm
import numpy as np
import pytest
import shap
import torch
import xgboost
from sklearn.base import is_regressor
from sklearn.ensemble import (
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from skops.io import dumps as skops_dumps

from tests.conftest import FEATURES, N_FEATURES, make_dataset, synthetic_frame
from whybox.explainers.shapley import ExactShapley, TreeShap, differing_features, shapley_weights
from whybox.model_zoo import WhyboxError, load_model
from whybox.model_zoo.wrap import wrap_torch


def brute_force_shapley(model, x, background, space, target):
    """Shapley values by the textbook formula, one coalition at a time."""
    d = len(x)

    def value(coalition):
        mixed = background.copy()
        mixed[:, list(coalition)] = x[list(coalition)]
        return model.predict(mixed, space)[:, target].mean()

    phi = np.zeros(d)
    for i in range(d):
        others = [j for j in range(d) if j != i]
        for size in range(d):
            weight = math.factorial(size) * math.factorial(d - size - 1) / math.factorial(d)
            for coalition in itertools.combinations(others, size):
                phi[i] += weight * (value(coalition + (i,)) - value(coalition))
    return phi


@pytest.mark.parametrize(
    ("model_name", "space", "target"),
    [
        ("binary_mlp", "margin", None),
        ("binary_mlp", "probability", "0"),
        ("multiclass_mlp", "probability", 2),
        ("regression_mlp", "value", None),
    ],
)
def test_exact_shapley_equals_brute_force(request, dataset, model_name, space, target):
    model = request.getfixturevalue(model_name)
    explainer = ExactShapley(background=12, output_space=space, seed=1)
    explanation = explainer.explain(model, dataset, rows=[3, 7], target=target)
    background = dataset.background(12, seed=1)
    for position, row in enumerate([3, 7]):
        expected = brute_force_shapley(
            model, dataset.values[row], background, space, explanation.target[position]
        )
        np.testing.assert_allclose(explanation.values[position], expected, atol=2e-5)
    assert explanation.additivity_gap < 1e-4
    assert explanation.output_space == space


class _NanTolerant(torch.nn.Module):
    """A small network that reads a missing value (NaN) as 0.5."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(N_FEATURES, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.hidden(torch.nan_to_num(x, nan=0.5))).sum(dim=1, keepdim=True)


@pytest.mark.parametrize("case", ["torch", "torch-missing", "predict-only-missing"])
def test_exact_shapley_with_shared_and_missing_values(binary_mlp, case):
    """Rows share values with background rows (rounded data) and have missing values: the
    coalitions that cannot change the input are skipped, and the values stay exact. One row
    is itself a background row, so one pair differs nowhere (a game with no players)."""
    frame = synthetic_frame(60, seed=3).round(0)
    if case.endswith("missing"):
        frame.iloc[::3, 1] = np.nan
        frame.iloc[::4, 3] = np.nan
    dataset = make_dataset(frame)
    model, space = binary_mlp, "margin"
    if case != "torch":
        torch.manual_seed(0)
        model, space = wrap_torch(_NanTolerant(), N_FEATURES, "value"), "value"
    if case.startswith("predict-only"):
        model = dataclasses.replace(
            model, module=None, predict_fn=lambda X, s, m=model: m.predict(X, s)
        )
    background = dataset.background(10, 2)
    in_background = differing_features(dataset.values, background).sum(axis=2).min(axis=1) == 0
    rows = [0, 1, 2, 3, int(np.flatnonzero(in_background)[0])]
    sizes = differing_features(dataset.values[rows], background).sum(axis=2)
    assert sizes.min() == 0 and sizes.max() == N_FEATURES and sizes.mean() < 0.8 * N_FEATURES
    explanation = ExactShapley(background=10, seed=2, output_space=space).explain(
        model, dataset, rows=rows
    )
    for position, row in enumerate(rows):
        expected = brute_force_shapley(
            model, dataset.values[row], background, space, explanation.target[position]
        )
        np.testing.assert_allclose(explanation.values[position], expected, atol=2e-5)
    assert explanation.additivity_gap < 1e-4


def test_shapley_weights_satisfy_efficiency_and_symmetry():
    masks, W = shapley_weights(4)
    # Efficiency: the values of any game sum to v(all) - v(empty).
    v = np.random.default_rng(0).normal(size=16)
    assert np.isclose((v @ W).sum(), v[-1] - v[0])
    # Symmetry: a game that depends only on coalition size gives equal values.
    v_sym = masks.sum(1) ** 2.0
    assert np.allclose(v @ W * 0 + (v_sym @ W), (v_sym @ W)[0])


def test_exact_shapley_refuses_over_budget(binary_mlp, dataset):
    explainer = ExactShapley(background=100, max_cost=1000)
    support = explainer.supports(binary_mlp, dataset)
    assert (
        not support and "3,200 model evaluations" in support.reason and "max_cost" in support.reason
    )
    with pytest.raises(WhyboxError, match="max_cost"):
        explainer.explain(binary_mlp, dataset, rows=[0])


def test_exact_shapley_dummy_feature_gets_zero(dataset):
    """Null-player axiom: a feature the model ignores gets exactly zero."""
    import torch

    from whybox.model_zoo.wrap import wrap_torch

    linear = torch.nn.Linear(5, 1)
    with torch.no_grad():
        linear.weight[:] = torch.tensor([[1.0, -2.0, 0.0, 0.5, 3.0]])
    model = wrap_torch(linear, 5, "value", feature_names=FEATURES)
    explanation = ExactShapley(background=20).explain(model, dataset, rows=[0, 1])
    np.testing.assert_allclose(explanation.values[:, 2], 0, atol=1e-6)
    # For a linear model Shapley values are w * (x - mean(background)).
    background_mean = dataset.background(20, 0).mean(0)
    expected = (dataset.values[[0, 1]] - background_mean) * np.array([1.0, -2.0, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(explanation.values, expected, atol=1e-5)


@pytest.fixture(scope="module")
def training():
    X = synthetic_frame(300, seed=5)
    signal = X.f0 * 2 - X.f1 + X.f2 * X.f3
    return X, signal


def xgboost_model(training, objective, labels, **params):
    X, _ = training
    matrix = xgboost.DMatrix(X.to_numpy(), label=labels, feature_names=FEATURES)
    booster = xgboost.train(
        {"objective": objective, "max_depth": 3, "seed": 0, **params}, matrix, 15
    )
    return booster, load_model(bytes(booster.save_raw("json")), name="m.json")


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_tree_shap_equals_xgboost_contributions(training, dataset, kind):
    X, signal = training
    objective, labels, extra = {
        "binary": ("binary:logistic", signal > 0, {}),
        "multiclass": ("multi:softprob", np.digitize(signal, [-1, 1]), {"num_class": 3}),
        "regression": ("reg:squarederror", signal, {}),
    }[kind]
    booster, model = xgboost_model(training, objective, labels, **extra)
    explanation = TreeShap().explain(
        model, dataset, rows=slice(0, 50), target=1 if kind == "multiclass" else None
    )
    native = booster.predict(
        xgboost.DMatrix(dataset.values[:50], feature_names=FEATURES), pred_contribs=True
    )
    if kind == "multiclass":
        native = native[:, 1]
    np.testing.assert_allclose(explanation.values, native[:, :-1], atol=1e-5)
    np.testing.assert_allclose(explanation.base_values, native[:, -1], atol=1e-5)
    assert explanation.additivity_gap < 1e-4
    # And SHAP's own TreeExplainer agrees on the same booster.
    shap_values = shap.TreeExplainer(booster).shap_values(dataset.values[:50])
    shap_values = shap_values[:, :, 1] if kind == "multiclass" else shap_values
    np.testing.assert_allclose(explanation.values, shap_values, atol=1e-5)


def booster_device(booster) -> str:
    return json.loads(booster.save_config())["learner"]["generic_param"]["device"]


def test_tree_shap_records_where_it_ran_and_leaves_the_booster_on_the_cpu(training, dataset):
    booster, model = xgboost_model(training, "binary:logistic", training[1] > 0)
    assert TreeShap(device="cpu").explain(model, dataset, rows=slice(0, 5)).device == "cpu"
    assert booster_device(model.native) == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tree_shap_runs_xgboost_on_the_gpu(training, dataset):
    _, model = xgboost_model(training, "binary:logistic", training[1] > 0)
    cuda = TreeShap(device="cuda").explain(model, dataset)
    cpu = TreeShap(device="cpu").explain(model, dataset)
    assert cuda.device == "cuda" and booster_device(model.native) == "cpu"
    np.testing.assert_allclose(cuda.values, cpu.values, atol=1e-4)


def test_tree_shap_binary_class_zero_is_the_mirror(training, dataset):
    _, model = xgboost_model(training, "binary:logistic", training[1] > 0)
    positive = TreeShap().explain(model, dataset, rows=slice(0, 10))
    negative = TreeShap().explain(model, dataset, rows=slice(0, 10), target=0)
    np.testing.assert_allclose(negative.values, -positive.values)


def test_tree_shap_equals_lightgbm_contributions(training, dataset):
    X, signal = training
    booster = lightgbm.train(
        {"objective": "binary", "num_leaves": 8, "verbose": -1, "seed": 0},
        lightgbm.Dataset(X, label=(signal > 0).astype(int)),
        num_boost_round=15,
    )
    model = load_model(booster.model_to_string().encode(), name="m.txt")
    explanation = TreeShap().explain(model, dataset, rows=slice(0, 50))
    native = booster.predict(dataset.frame.iloc[:50], pred_contrib=True)
    np.testing.assert_allclose(explanation.values, native[:, :-1], atol=1e-5)
    np.testing.assert_allclose(explanation.base_values, native[:, -1], atol=1e-5)


@pytest.mark.parametrize(
    "estimator",
    [
        RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0),
        GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0),
        RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0),
    ],
    ids=["forest", "boosting", "regressor"],
)
def test_tree_shap_equals_shap_for_scikit_learn(training, dataset, estimator):
    X, signal = training
    y = signal if is_regressor(estimator) else (signal > 0).astype(int)
    estimator.fit(X, y)
    model = load_model(skops_dumps(estimator), name="m.skops")
    explanation = TreeShap().explain(model, dataset, rows=slice(0, 30))
    reference = shap.TreeExplainer(estimator).shap_values(dataset.frame.iloc[:30])
    if reference.ndim == 3:
        reference = reference[:, :, 1]
    np.testing.assert_allclose(explanation.values, reference, atol=1e-5)
    assert explanation.additivity_gap < 1e-5


def test_tree_shap_refuses_other_spaces_and_models(training, binary_mlp, dataset):
    _, model = xgboost_model(training, "binary:logistic", training[1] > 0)
    support = TreeShap(output_space="probability").supports(model, dataset)
    assert not support and "margin" in support.reason
    assert not TreeShap().supports(binary_mlp, dataset)
