"""The example plugin passes whybox's contract and computes what it says it computes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from whybox_example_plugin import MeanAblation

from whybox.explainers.testing import (
    check_explainer,
    fixture,
    make_dataset,
    synthetic_frame,
    trained_mlp,
)
from whybox.model_zoo import Model

WEIGHTS = np.array([2.0, -1.0, 0.5])


def linear_model() -> Model:
    """A regression model known only by its predictions: 2a - b + c/2 + 3."""
    return Model(
        name="linear",
        format="other",
        kind="other",
        task="regression",
        n_features=3,
        feature_names=["a", "b", "c"],
        class_names=None,
        output_spaces=("value",),
        sha256="",
        native=None,
        predict_fn=lambda X, space: (X @ WEIGHTS + 3.0)[:, None],
    )


def test_contract():
    checked = check_explainer(MeanAblation, {"background": 20})
    assert checked == ["binary-mlp", "multiclass-mlp", "regression-mlp", "binary-xgboost"]


def test_linear_model_values_are_weight_times_distance_from_the_mean():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "c"])
    data = make_dataset(frame)
    mean = frame.to_numpy().mean(axis=0)  # the background holds every row: 1000 > 50
    explanation = MeanAblation(background=1000, scale=3.0).explain(
        linear_model(), data, rows=slice(0, 10)
    )
    X = frame.to_numpy()[:10]
    np.testing.assert_allclose(explanation.values, 3.0 * WEIGHTS * (X - mean), atol=1e-12)
    np.testing.assert_allclose(explanation.base_values, mean @ WEIGHTS + 3.0, atol=1e-12)
    assert explanation.method == "mean-ablation" and explanation.params["scale"] == 3.0
    assert not explanation.failures


def test_mlp_values_match_a_torch_computation_by_hand():
    data = make_dataset(synthetic_frame())
    explanation = MeanAblation(background=200, output_space="probability").explain(
        fixture("binary-mlp"), data, rows=[0, 1, 2, 3, 4], target=1
    )
    network = trained_mlp("binary")  # the same deterministic training, outside whybox

    def probability(rows: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logit = network(torch.tensor(rows, dtype=torch.float32))[:, 0]
        return torch.sigmoid(logit).double().numpy()

    X = data.values[:5]
    mean = data.values.mean(axis=0)  # background 200 = every row of the data
    expected = np.empty_like(X)
    for i in range(X.shape[1]):
        ablated = X.copy()
        ablated[:, i] = mean[i]
        expected[:, i] = probability(X) - probability(ablated)
    np.testing.assert_allclose(explanation.values, expected, atol=1e-5)
    np.testing.assert_allclose(explanation.base_values, probability(mean[None, :])[0], atol=1e-5)
    assert explanation.output_space == "probability"
