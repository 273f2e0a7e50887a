"""Permutation and Kernel SHAP against brute-force Shapley values, SHAP itself and the axioms."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import predict_only_model
from whybox.explainers import sampling
from whybox.explainers.base import Explanation
from whybox.explainers.sampling import KernelShap, PermutationShap
from whybox.explainers.testing import make_dataset
from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.wrap import wrap_torch

ROWS = list(range(8))
SAMPLERS = [PermutationShap, KernelShap]
SIZE = {PermutationShap: "permutations", KernelShap: "samples"}


def exact_shapley(
    model: Model,
    dataset: Dataset,
    rows: list[int],
    targets: np.ndarray,
    output_space: str,
    background: int = 100,
    seed: int = 0,
) -> np.ndarray:
    """Interventional Shapley values from all 2^d coalitions, with the explainers' background."""
    reference = dataset.background(background, seed)
    X = dataset.values[rows]
    d = X.shape[1]
    # Coalition k holds feature i when bit (d - 1 - i) of k is set.
    coalitions = np.array(list(itertools.product([False, True], repeat=d)))
    inputs = np.where(coalitions[None, :, None, :], X[:, None, None, :], reference[None, None])
    out = model.predict(inputs.reshape(-1, d), output_space)
    out = out.reshape(len(X), len(coalitions), len(reference), -1)
    v = np.stack([out[r, :, :, t].mean(axis=1) for r, t in enumerate(targets)])
    sizes = coalitions.sum(axis=1)
    weights = np.array([math.factorial(s) * math.factorial(d - s - 1) for s in range(d)])
    values = np.zeros((len(X), d))
    for i in range(d):
        without = np.flatnonzero(~coalitions[:, i])
        gains = v[:, without + 2 ** (d - 1 - i)] - v[:, without]
        values[:, i] = gains @ weights[sizes[without]] / math.factorial(d)
    return values


def exact_for(explanation: Explanation, model: Model, dataset: Dataset) -> np.ndarray:
    """The exact values for what `explanation` estimated: same rows, targets and background."""
    return exact_shapley(
        model,
        dataset,
        list(explanation.rows),
        explanation.target,
        explanation.output_space,
        explanation.params["background"],
        explanation.seed,
    )


def relative_error(estimate: np.ndarray, exact: np.ndarray) -> float:
    return float(np.abs(estimate - exact).mean() / np.abs(exact).mean())


def test_reference_matches_shap_kernel_explainer(binary_mlp, dataset):
    """With 5 features SHAP's KernelExplainer enumerates every coalition: exact values."""
    shap = pytest.importorskip("shap")
    background = dataset.background(100, 0)
    explainer = shap.KernelExplainer(lambda X: binary_mlp.predict(X, "margin")[:, 1], background)
    theirs = explainer.shap_values(dataset.values[:3], l1_reg=False, silent=True)
    ours = exact_shapley(binary_mlp, dataset, [0, 1, 2], np.ones(3, int), "margin")
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize(
    ("cls", "few", "many"), [(PermutationShap, 2, 256), (KernelShap, 64, 4096)]
)
def test_converges_to_exact(cls, few, many, binary_mlp, dataset):
    errors = []
    for size in (few, many):
        explanation = cls(**{SIZE[cls]: size}).explain(binary_mlp, dataset, ROWS)
        errors.append(
            relative_error(explanation.values, exact_for(explanation, binary_mlp, dataset))
        )
    assert errors[1] < 0.35 * errors[0]
    assert errors[1] < 0.005


@pytest.mark.parametrize("cls", SAMPLERS)
def test_standard_errors_cover_the_error(cls, binary_mlp, dataset):
    explanation = cls().explain(binary_mlp, dataset, range(12))
    error = np.abs(explanation.values - exact_for(explanation, binary_mlp, dataset))
    se = explanation.standard_errors
    assert (error <= 3 * se + 1e-6).mean() >= 0.9
    # Informative, not vacuous: the errors are a sizeable fraction of the stated SE.
    assert np.sqrt(np.mean((error / se) ** 2)) > 0.3
    assert explanation.record()["max_standard_error"] == pytest.approx(se.max())


@pytest.mark.parametrize("cls", SAMPLERS)
@pytest.mark.parametrize(
    ("fixture", "output_space", "target"),
    [
        ("binary_mlp", "margin", None),
        ("binary_mlp", "probability", None),
        ("binary_mlp", "margin", "0"),
        ("multiclass_mlp", "margin", 2),
        ("multiclass_mlp", "probability", None),
        ("regression_mlp", "auto", None),
    ],
)
def test_additive_and_close_to_exact(cls, fixture, output_space, target, dataset, request):
    model = request.getfixturevalue(fixture)
    explanation = cls(output_space=output_space).explain(model, dataset, ROWS, target=target)
    predictions = model.predict(dataset.values[ROWS], explanation.output_space)
    if target is None and model.task == "classification" and model.n_outputs > 2:
        expected_targets = predictions.argmax(axis=1)  # the predicted class
    else:
        expected_targets = np.full(len(ROWS), model.resolve_target(target))
    np.testing.assert_array_equal(explanation.target, expected_targets)
    chosen = predictions[np.arange(len(ROWS)), expected_targets]
    np.testing.assert_allclose(
        explanation.values.sum(1) + explanation.base_values, chosen, atol=1e-5
    )
    assert explanation.additivity_gap < 1e-5
    background = model.predict(dataset.background(100, 0), explanation.output_space)
    np.testing.assert_allclose(
        explanation.base_values, background.mean(0)[expected_targets], atol=1e-5
    )
    exact = exact_for(explanation, model, dataset)
    assert (
        np.abs(explanation.values - exact) <= 4 * explanation.standard_errors + 1e-6
    ).mean() >= 0.9
    assert relative_error(explanation.values, exact) < 0.15


def test_output_spaces_differ(binary_mlp, dataset):
    margin = PermutationShap(output_space="margin").explain(binary_mlp, dataset, ROWS)
    probability = PermutationShap(output_space="probability").explain(binary_mlp, dataset, ROWS)
    assert (margin.output_space, probability.output_space) == ("margin", "probability")
    assert np.abs(probability.values).max() < 1 < np.abs(margin.values).max()


@pytest.mark.parametrize("cls", SAMPLERS)
def test_seed_decides_the_values(cls, binary_mlp, dataset):
    rows = ROWS[:3]
    first = cls(seed=3).explain(binary_mlp, dataset, rows)
    again = cls(seed=3).explain(binary_mlp, dataset, rows)
    np.testing.assert_array_equal(first.values, again.values)
    np.testing.assert_array_equal(first.standard_errors, again.standard_errors)
    other = cls(seed=4).explain(binary_mlp, dataset, rows)
    assert np.abs(first.values - other.values).max() > 1e-4


@pytest.mark.parametrize("cls", SAMPLERS)
def test_batch_equals_row_by_row(cls, multiclass_mlp, dataset):
    rows = [7, 2, 5]
    batch = cls().explain(multiclass_mlp, dataset, rows)
    alone = [cls().explain(multiclass_mlp, dataset, [row]) for row in rows]
    np.testing.assert_allclose(batch.values, np.concatenate([e.values for e in alone]), atol=1e-6)
    np.testing.assert_allclose(
        batch.standard_errors, np.concatenate([e.standard_errors for e in alone]), atol=1e-6
    )


def linear_case(n_features: int) -> tuple[Model, Dataset, np.ndarray]:
    torch.manual_seed(n_features)
    module = torch.nn.Linear(n_features, 1).eval()
    frame = pd.DataFrame(np.random.default_rng(1).normal(size=(50, n_features)))
    frame.columns = [f"x{i}" for i in range(n_features)]
    return (
        wrap_torch(module, n_features, "value"),
        make_dataset(frame),
        module.weight[0].detach().numpy(),
    )


@pytest.mark.parametrize("cls", SAMPLERS)
@pytest.mark.parametrize("n_features", [1, 2, 6])
def test_linear_model_is_exact(cls, n_features):
    """For a linear model the Shapley value is w_i (x_i - mean background x_i), with no noise."""
    model, dataset, weight = linear_case(n_features)
    explanation = cls(background=20).explain(model, dataset, range(4))
    offset = dataset.values[:4] - dataset.background(20, 0).mean(axis=0)
    np.testing.assert_allclose(explanation.values, weight * offset, atol=1e-5)
    assert explanation.standard_errors.max() < 1e-5


@pytest.mark.parametrize("cls", SAMPLERS)
def test_numpy_model_without_torch_module(cls):
    """Models that only predict (trees, ONNX) go through `Model.predict`, in float64."""
    model = predict_only_model(lambda X, _: X[:, 0] * X[:, 1] + np.sin(2 * X[:, 2]), 3)
    frame = pd.DataFrame(np.random.default_rng(2).normal(size=(60, 3)), columns=["a", "b", "c"])
    dataset = make_dataset(frame)
    explanation = cls().explain(model, dataset, range(6))
    assert explanation.feature_names == ["a", "b", "c"]  # the model names none: the header
    assert explanation.additivity_gap < 1e-9
    exact = exact_for(explanation, model, dataset)
    assert (
        np.abs(explanation.values - exact) <= 4 * explanation.standard_errors + 1e-9
    ).mean() >= 0.9


@pytest.mark.parametrize("cls", SAMPLERS)
def test_chunks_and_progress(cls, regression_mlp, dataset, monkeypatch):
    whole = cls().explain(regression_mlp, dataset, ROWS)
    monkeypatch.setattr(sampling, "MASK_BUDGET", 1)  # one row per chunk
    seen: list[tuple[int, int]] = []
    chunked = cls().explain(
        regression_mlp, dataset, ROWS, progress=lambda done, total: seen.append((done, total))
    )
    np.testing.assert_allclose(chunked.values, whole.values, atol=1e-6)
    done, totals = zip(*seen, strict=True)
    assert len(seen) >= len(ROWS) and list(done) == sorted(done)
    assert set(totals) == {done[-1]}


@pytest.mark.parametrize("cls", SAMPLERS)
def test_refuses_non_tabular_models_and_bad_parameters(cls, binary_mlp, dataset):
    assert cls.additive and cls.sampled
    image = dataclasses.replace(binary_mlp, modality="image", input_shape=(1, 1, 5))
    support = cls().supports(image, dataset)
    assert not support and "tabular" in support.reason
    assert cls().supports(binary_mlp, dataset)
    with pytest.raises(WhyboxError, match=SIZE[cls]):
        cls(**{SIZE[cls]: 1})


@pytest.mark.parametrize("cls", SAMPLERS)
@pytest.mark.parametrize("background", [20, 2])
def test_model_rows_are_background_times_coalitions(cls, background):
    """The budget the limit and the benchmarks count: every coalition costs one model row
    per background row (permutation-shap walks each background row alone with its own
    orders, at least 32 in all; kernel-shap evaluates each coalition on all of them)."""
    seen: list[np.ndarray] = []

    def predict(X: np.ndarray, _: str) -> np.ndarray:
        seen.append(X)
        return X @ np.arange(1.0, 5.0) + X[:, 0] * X[:, 1]

    model = predict_only_model(predict, 4)
    frame = pd.DataFrame(np.random.default_rng(3).normal(size=(40, 4)), columns=list("abcd"))
    explainer = cls(background=background, **{SIZE[cls]: 3 if cls is PermutationShap else 64})
    explainer.explain(model, make_dataset(frame), range(2))
    coalition_rows = sum(len(X) for X in seen) - 2  # less the two rows' own predictions
    per_row = explainer._coalitions_per_row(4, background)
    assert coalition_rows == 2 * background * per_row
    if cls is PermutationShap:  # 3 orders per background row; 16 where there are only 2
        assert per_row == 2 + 2 * (3 if background == 20 else 16) * 3


@pytest.mark.parametrize("background", [1, 2])
def test_standard_errors_hold_with_a_tiny_background(background):
    """With one or two background rows permutation-shap still walks 32 orders a row, so a
    value that is off is never reported with a zero or tiny standard error (three-way
    interactions: antithetic walks are not exact for them)."""
    model = predict_only_model(
        lambda X, _: X[:, 0] * X[:, 1] * X[:, 2] + np.sin(X[:, 3] * X[:, 4] * X[:, 0]), 5
    )
    frame = pd.DataFrame(np.random.default_rng(1).normal(size=(60, 5)), columns=list("abcde"))
    dataset = make_dataset(frame)
    explanation = PermutationShap(background=background).explain(model, dataset, range(12))
    error = np.abs(explanation.values - exact_for(explanation, model, dataset))
    z = error / np.maximum(explanation.standard_errors, 1e-12)
    assert (error <= 3 * explanation.standard_errors + 1e-9).mean() >= 0.9
    assert np.sqrt(np.mean(z**2)) < 2


def test_masks_per_model_call_stay_within_the_budget(regression_mlp, dataset, monkeypatch):
    """A row whose strata hold more mask entries than the budget goes to the model a block
    of strata at a time (a wide model with a large background would not fit otherwise)."""
    calls: list[int] = []
    original = sampling.coalition_values

    def recording(model, X, masks, *args, **kwargs):
        calls.append(masks.size)
        return original(model, X, masks, *args, **kwargs)

    monkeypatch.setattr(sampling, "coalition_values", recording)
    monkeypatch.setattr(sampling, "MASK_BUDGET", 2_000)
    explainer = PermutationShap(background=50)
    explanation = explainer.explain(regression_mlp, dataset, range(2))
    per_stratum = explainer._coalitions_per_row(5, 50) * 5
    assert per_stratum < 2_000 < 50 * per_stratum
    assert max(calls) <= 2_000 and len(calls) > 2
    assert explanation.additivity_gap < 1e-5
