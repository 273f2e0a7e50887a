"""The Captum explainers, checked against Captum itself, autograd, hand computation and axioms."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from captum.attr import DeepLift as CaptumDeepLift
from captum.attr import IntegratedGradients as CaptumIntegratedGradients

from tests.conftest import predict_only_model
from whybox.explainers import captum_base
from whybox.explainers.captum_base import CaptumExplainer
from whybox.explainers.gradients import DeepLift, GradientShap, IntegratedGradients, Saliency
from whybox.explainers.perturbation import FeatureAblation, Lime
from whybox.explainers.testing import FEATURES, N_FEATURES, check_explainer, trained_mlp
from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.wrap import wrap_torch

ALL = [IntegratedGradients, Saliency, DeepLift, GradientShap, FeatureAblation, Lime]
DETERMINISTIC = [IntegratedGradients, Saliency, DeepLift, FeatureAblation]
QUICK = {GradientShap: {"samples": 50}, Lime: {"samples": 100}}
"""Smaller sample counts for the sampled methods, to keep the suite fast."""
ROWS = list(range(20))
SPACES = [
    ("binary_mlp", "margin"),
    ("binary_mlp", "probability"),
    ("multiclass_mlp", "margin"),
    ("multiclass_mlp", "probability"),
    ("regression_mlp", "value"),
]


def baseline_row(dataset: Dataset, explainer: CaptumExplainer) -> np.ndarray:
    """The reference the mean-baseline methods use: the background's mean row, (1, d)."""
    return dataset.background(explainer.background, explainer.seed).mean(axis=0, keepdims=True)


def as_tensor(X: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(X, dtype=torch.float32)


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.name)
def test_contract(cls: type[CaptumExplainer]) -> None:
    images = ["patch-cnn"] if "image" in cls.modalities else []
    assert check_explainer(cls, QUICK.get(cls)) == [
        "binary-mlp",
        "multiclass-mlp",
        "regression-mlp",
        *images,
    ]


def test_declared_parameters_and_claims() -> None:
    names = {cls.name: [p.name for p in cls.params] for cls in ALL}
    base = ["output_space", "device", "seed", "precision"]
    assert names == {
        "integrated-gradients": [*base, "background", "baseline", "steps"],
        "saliency": base,
        "deeplift": [*base, "background", "baseline"],
        "gradient-shap": [*base, "background", "samples"],
        "feature-ablation": [*base, "background"],
        "lime": [*base, "background", "samples"],
    }
    assert {cls.name for cls in ALL if cls.additive} == {"integrated-gradients", "deeplift"}
    assert IntegratedGradients().steps == 256


@pytest.mark.parametrize(("model_name", "space"), SPACES)
def test_integrated_gradients_completeness_at_defaults(
    model_name: str, space: str, dataset: Dataset, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(model_name)
    explainer = IntegratedGradients(output_space=space)
    explanation = explainer.explain(model, dataset)  # all 200 rows, predicted class targets
    reference = model.predict(baseline_row(dataset, explainer), space)[0]
    np.testing.assert_allclose(explanation.base_values, reference[explanation.target], rtol=1e-6)
    spread = np.abs(explanation.predictions - explanation.base_values).max()
    assert explanation.additivity_gap <= 0.01 * spread
    assert explanation.notes == []


@pytest.mark.parametrize("target", [0, 1, 2])
def test_integrated_gradients_equals_captum(
    target: int, multiclass_mlp: Model, dataset: Dataset
) -> None:
    explainer = IntegratedGradients(output_space="margin", device="cpu")
    explanation = explainer.explain(multiclass_mlp, dataset, rows=ROWS, target=target)
    expected = CaptumIntegratedGradients(multiclass_mlp.torch_module("margin")).attribute(
        as_tensor(dataset.values[ROWS]),
        baselines=as_tensor(baseline_row(dataset, explainer)),
        target=target,
        n_steps=256,
        method="gausslegendre",
    )
    assert (explanation.target == target).all()
    np.testing.assert_allclose(explanation.values, expected.detach().double().numpy(), atol=1e-5)


def test_linear_model_axioms(dataset: Dataset) -> None:
    """On a linear model every baseline method is exact: w * (x - baseline)."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(N_FEATURES, 1)
    model = wrap_torch(linear, N_FEATURES, "value", feature_names=FEATURES)
    X = dataset.values[ROWS]
    weights = linear.weight.detach().double().numpy()[0]
    exact = weights * (X - baseline_row(dataset, IntegratedGradients()))

    saliency = Saliency().explain(model, dataset, rows=ROWS).values
    np.testing.assert_allclose(saliency, np.broadcast_to(weights, X.shape), atol=1e-6)
    np.testing.assert_allclose(saliency * (X - baseline_row(dataset, Lime())), exact, atol=1e-6)
    for cls in (IntegratedGradients, DeepLift, FeatureAblation, Lime):
        values = cls(**QUICK.get(cls, {})).explain(model, dataset, rows=ROWS).values
        np.testing.assert_allclose(values, exact, atol=1e-4, err_msg=cls.name)


@pytest.mark.parametrize(("model_name", "space"), SPACES)
def test_deeplift_sums_to_delta(
    model_name: str, space: str, dataset: Dataset, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(model_name)
    explanation = DeepLift(output_space=space).explain(model, dataset)
    spread = np.abs(explanation.predictions - explanation.base_values).max()
    assert explanation.additivity_gap <= 1e-5 * max(1.0, spread)


def test_deeplift_notes_the_gap_of_a_softmax_inside_the_network(
    multiclass_mlp: Model, dataset: Dataset
) -> None:
    """Captum's softmax rule breaks summation-to-delta; the record must say so."""
    network = torch.nn.Sequential(multiclass_mlp.module, torch.nn.Softmax(dim=1))
    model = wrap_torch(network, N_FEATURES, "probability", feature_names=FEATURES)
    explanation = DeepLift(device="cpu").explain(model, dataset, rows=ROWS)
    spread = np.abs(explanation.predictions - explanation.base_values).max()
    assert explanation.additivity_gap > 0.01 * spread
    assert "softmax" in explanation.notes[0] and "integrated-gradients" in explanation.notes[0]


@pytest.mark.filterwarnings("ignore:Setting forward, backward hooks")
def test_deeplift_equals_captum_in_margin_space(multiclass_mlp: Model, dataset: Dataset) -> None:
    explainer = DeepLift(output_space="margin", device="cpu")
    explanation = explainer.explain(multiclass_mlp, dataset, rows=ROWS, target=1)
    inputs = as_tensor(dataset.values[ROWS]).requires_grad_()
    expected = CaptumDeepLift(multiclass_mlp.torch_module("margin")).attribute(
        inputs, baselines=as_tensor(baseline_row(dataset, explainer)).expand_as(inputs), target=1
    )
    np.testing.assert_allclose(explanation.values, expected.detach().double().numpy(), atol=1e-5)


def test_deeplift_probability_is_rescaled_margin_for_binary(
    binary_mlp: Model, dataset: Dataset
) -> None:
    """One sigmoid: DeepLIFT's rescale rule multiplies margin values by the secant slope."""
    margin = DeepLift(output_space="margin").explain(binary_mlp, dataset, rows=ROWS)
    probability = DeepLift(output_space="probability").explain(binary_mlp, dataset, rows=ROWS)
    slope = (probability.predictions - probability.base_values) / (
        margin.predictions - margin.base_values
    )
    np.testing.assert_allclose(probability.values, margin.values * slope[:, None], atol=1e-6)


def test_saliency_is_the_autograd_gradient(multiclass_mlp: Model, dataset: Dataset) -> None:
    explanation = Saliency(output_space="probability", device="cpu").explain(
        multiclass_mlp, dataset, rows=ROWS
    )
    inputs = as_tensor(dataset.values[ROWS]).requires_grad_()
    outputs = multiclass_mlp.torch_module("probability")(inputs)
    chosen = outputs[torch.arange(len(ROWS)), torch.as_tensor(explanation.target)]
    (gradient,) = torch.autograd.grad(chosen.sum(), inputs)
    np.testing.assert_allclose(explanation.values, gradient.double().numpy(), atol=1e-7)
    assert (explanation.base_values == 0).all()


def test_saliency_explains_output_0_of_a_regressor_with_several(dataset: Dataset) -> None:
    """A one-pass method keeps every output of its pass, however many a regressor has."""
    torch.manual_seed(0)
    network = torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    )
    model = wrap_torch(network, N_FEATURES, "value")
    explanation = Saliency().explain(model, dataset, rows=ROWS)
    assert (explanation.target == 0).all()
    predicted = model.predict(dataset.values[ROWS])
    assert predicted.shape == (len(ROWS), 3)
    np.testing.assert_allclose(explanation.predictions, predicted[:, 0], rtol=1e-6)


def test_feature_ablation_by_hand(binary_mlp: Model, dataset: Dataset) -> None:
    explainer = FeatureAblation(output_space="probability")
    explanation = explainer.explain(binary_mlp, dataset, rows=ROWS)
    X, reference = dataset.values[ROWS], baseline_row(dataset, explainer)[0]
    full = binary_mlp.predict(X, "probability")[:, 1]
    expected = np.empty_like(X)
    for i in range(N_FEATURES):
        ablated = X.copy()
        ablated[:, i] = reference[i]
        expected[:, i] = full - binary_mlp.predict(ablated, "probability")[:, 1]
    np.testing.assert_allclose(explanation.values, expected, atol=1e-6)


def test_gradient_shap_notes_its_gap(binary_mlp: Model, dataset: Dataset) -> None:
    """Not additive, yet its note states the worst gap of these rows to the prediction."""
    explanation = GradientShap(**QUICK[GradientShap]).explain(binary_mlp, dataset, rows=ROWS)
    totals = explanation.values.sum(axis=1) + explanation.base_values
    outputs = binary_mlp.predict(dataset.values[ROWS], explanation.output_space)
    gap = np.abs(totals - outputs[np.arange(len(ROWS)), explanation.target]).max()
    assert len(explanation.notes) == 1 and gap > 0
    assert f"miss by up to {gap:.3g} (" in explanation.notes[0]


@pytest.mark.parametrize("cls", [GradientShap, Lime], ids=lambda cls: cls.name)
def test_sampled_methods_are_seeded_per_row(
    cls: type[CaptumExplainer], binary_mlp: Model, dataset: Dataset
) -> None:
    explainer = cls(**QUICK[cls])
    rows = [5, 3, 5, 0]
    numpy_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state()
    batch = explainer.explain(binary_mlp, dataset, rows=rows).values
    assert (np.random.get_state()[1] == numpy_state).all(), "numpy's global generator moved"
    assert torch.equal(torch.get_rng_state(), torch_state), "torch's global generator moved"
    np.testing.assert_array_equal(batch, explainer.explain(binary_mlp, dataset, rows=rows).values)
    np.testing.assert_array_equal(batch[0], batch[2])  # the same row gets the same draws
    for position, row in enumerate(rows):
        alone = explainer.explain(binary_mlp, dataset, rows=[row]).values[0]
        np.testing.assert_allclose(alone, batch[position], rtol=0, atol=1e-6)
    other_seed = cls(**QUICK[cls], seed=1).explain(binary_mlp, dataset, rows=rows).values
    assert not np.allclose(other_seed, batch)


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.name)
def test_models_without_a_torch_module_are_refused(
    cls: type[CaptumExplainer], dataset: Dataset
) -> None:
    model = predict_only_model(lambda X, space: X.sum(axis=1), N_FEATURES, FEATURES)
    support = cls().supports(model, dataset)
    assert not support and "differentiable" in support.reason and "kernel-shap" in support.reason
    with pytest.raises(WhyboxError, match="cannot explain"):
        cls().explain(model, dataset, rows=ROWS)


def test_tabular_only_methods_refuse_image_models(binary_mlp: Model, dataset: Dataset) -> None:
    image_model = dataclasses.replace(binary_mlp, modality="image")
    for cls in (FeatureAblation, Lime):
        support = cls().supports(image_model, dataset)
        assert not support and "tabular" in support.reason


@pytest.mark.parametrize("cls", DETERMINISTIC, ids=lambda cls: cls.name)
def test_target_class_selects_its_column(
    cls: type[CaptumExplainer], multiclass_mlp: Model, dataset: Dataset
) -> None:
    """Each row's predicted class by default; a named class explains that column for all."""
    explainer = cls(output_space="margin")
    predicted = explainer.explain(multiclass_mlp, dataset, rows=ROWS)
    assert len(set(predicted.target)) > 1
    for target in range(3):
        fixed = explainer.explain(multiclass_mlp, dataset, rows=ROWS, target=str(target))
        assert (fixed.target == target).all()
        same = predicted.target == target
        np.testing.assert_allclose(fixed.values[same], predicted.values[same], atol=1e-6)
        outputs = multiclass_mlp.predict(dataset.values[ROWS], "margin")
        np.testing.assert_allclose(fixed.predictions, outputs[:, target], rtol=1e-6)


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.name)
def test_small_memory_budget_chunks_rows_with_the_same_result(
    cls: type[CaptumExplainer],
    regression_mlp: Model,
    dataset: Dataset,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    explainer = cls(**QUICK.get(cls, {}))
    whole = explainer.explain(regression_mlp, dataset, rows=ROWS).values
    budget = 3 * captum_base.GRADIENT_MEMORY_FACTOR  # model rows per Captum call
    monkeypatch.setattr(captum_base, "model_rows_per_batch", lambda model, n_features: budget)
    calls: list[tuple[int, int]] = []
    chunked = explainer.explain(
        regression_mlp, dataset, rows=ROWS, progress=lambda done, total: calls.append((done, total))
    )
    np.testing.assert_allclose(chunked.values, whole, atol=1e-5)
    assert calls[-1] == (len(ROWS), len(ROWS)) and len(calls) > 1
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.name)
def test_cuda_matches_cpu(cls: type[CaptumExplainer], dataset: Dataset) -> None:
    model = wrap_torch(trained_mlp("multiclass"), N_FEATURES, "logits", feature_names=FEATURES)
    params = QUICK.get(cls, {})
    cpu = cls(device="cpu", **params).explain(model, dataset, rows=ROWS)
    cuda = cls(device="cuda", **params).explain(model, dataset, rows=ROWS)
    assert cuda.device == "cuda" and cpu.device == "cpu"
    if cls in DETERMINISTIC:
        np.testing.assert_allclose(cuda.values, cpu.values, atol=1e-4)
    assert np.isfinite(cuda.values).all()
