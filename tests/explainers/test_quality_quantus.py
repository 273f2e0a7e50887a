"""whybox's explanation-quality metrics checked against Quantus's own implementation.

Quantus (LGPL) is a test-only reference: only this file imports it, never whybox. Each test
runs a whybox metric and the Quantus metric that measures the same thing on the same
model, rows, attributions and baseline, with Quantus configured to whybox's conventions
(read from Quantus 0.6.0's source):

- Quantus's `PyTorchModel.predict` calls the torch module it is given on `torch.Tensor(x)`
  (float32): it is given `model.torch_module(space)`, the network in the explanation's
  output space, with `softmax=False`, so both read the same output column.
- Where both draw random numbers (subsets, noise), Quantus is handed the very draws whybox
  made, recorded on the way, so the numbers must agree to float precision: no Monte-Carlo
  tolerance is needed.
- Where Quantus re-explains (max-sensitivity, MPRT), its `explain_func` calls the same
  whybox explainer on the network it is given.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import quantus
import torch

from whybox.explainers import quality
from whybox.explainers.base import Explainer, Explanation
from whybox.explainers.gradients import IntegratedGradients, Saliency
from whybox.explainers.testing import fixture, make_dataset, synthetic_frame
from whybox.model_zoo import Dataset, Model

ROWS = 8
"""Rows (or images) measured: few enough for seconds, enough for a mean to mean something."""


@pytest.fixture(scope="module")
def tabular() -> tuple[Model, Dataset]:
    return fixture("binary-mlp"), make_dataset(synthetic_frame())


@pytest.fixture(scope="module")
def digits() -> tuple[Model, Any]:
    from whybox.model_zoo import demos

    model = demos.resolve_model("demo:digits-cnn")
    return model, demos.resolve_data("demo:digits", model)


def explain(explainer: Explainer, model: Model, data: Any, rows: int = ROWS) -> Explanation:
    return explainer.explain(model, data, rows=range(rows))


def quantus_explain_func(explainer: Explainer, model: Model, data: Any):
    """A Quantus `explain_func` that explains with `explainer` the network Quantus hands it
    (the trained one or a randomised copy of it), against `data`'s background."""

    def explain_func(model: torch.nn.Module, inputs: np.ndarray, targets: np.ndarray, **kwargs):
        network = trained
        if model is not trained.module:  # MPRT's randomised copy
            network = replace(trained, module=model, predict_fn=None, notes=[])
        X = np.asarray(inputs, dtype=np.float32 if trained.modality == "image" else None)
        return explainer.explain(network, quality._Probe(data, X), target=targets).values

    trained = model
    return explain_func


def baseline_replacement(baseline: np.ndarray):
    """A Quantus perturb_func that sets the indexed features to `baseline`'s own values (the
    background's mean row), where Quantus's built-in baselines are one value per row."""

    def perturb(arr: np.ndarray, indices: np.ndarray, **kwargs) -> np.ndarray:
        out = arr.copy()
        out[np.arange(len(arr))[:, None], indices] = baseline.reshape(-1)[indices]
        return out

    return perturb


def quantus_setup(
    model: Model, explanation: Explanation, baseline: np.ndarray, channel: bool = False
) -> dict:
    """The model and baseline arguments that make Quantus remove inputs as whybox does;
    with `channel`, table rows (n, features) are given to Quantus as (n, 1, features)."""
    if model.modality == "image":
        # A black image: Quantus's own baseline replacement with the constant 0 (its
        # "black" would be each image's minimum). One channel: pixels are the features.
        assert explanation.data.shape[1] == 1 and not baseline.any()
        perturb = {"perturb_baseline": 0.0}
    else:
        perturb = {"perturb_func": baseline_replacement(baseline)}
    network = model.torch_module(explanation.output_space)
    x, a = np.array(explanation.data), np.array(explanation.values)
    if channel and model.modality == "tabular":
        network = torch.nn.Sequential(torch.nn.Flatten(), network).eval()
        x, a = x[:, None], a[:, None]
    return {
        "network": network,
        "perturb": perturb,
        "call": {
            "x_batch": x,
            "y_batch": np.asarray(explanation.target),
            "a_batch": a,
            "channel_first": True,
            "softmax": False,
        },
    }


# --- deletion curve against Quantus's PixelFlipping ---------------------------------------


def check_deletion(model: Model, explanation: Explanation, data: Any, monkeypatch) -> None:
    units = int(np.prod(explanation.data.shape[1:]))
    step = 1
    if model.modality == "image":
        # Quantus removes a fixed number of features per step (dividing the image), and
        # evaluates every step: 1,024 forward passes one pixel at a time. whybox's 20 points
        # fall every 51.2 pixels; with 16 they fall every 64, and Quantus evaluates the
        # same points with 64 pixels a step.
        monkeypatch.setattr(quality, "IMAGE_STEPS", 16)
        step = units // 16
    baseline, _ = quality.baseline_of(explanation, model, data)
    measured = quality.curves(model, explanation, baseline, orders=1, seed=0)
    steps, deletion = measured["steps"], measured["deletion"][:, 0]
    np.testing.assert_array_equal(steps, np.arange(0, units + 1, step))
    # Quantus orders with `np.argsort(-a)` (quicksort, not stable), whybox stably: equal
    # attributions on both sides of a step would be removed in different orders.
    ranked = -np.sort(-quality._units(explanation), axis=1)
    assert (ranked[:, steps[1:-1] - 1] != ranked[:, steps[1:-1]]).all()
    setup = quantus_setup(model, explanation, baseline)
    # Attributions as they are (no abs, no normalising: the order stays most positive
    # first); Quantus's curve after k steps is its column k - 1.
    metric = quantus.PixelFlipping(
        features_in_step=step,
        abs=False,
        normalise=False,
        disable_warnings=True,
        **setup["perturb"],
    )
    with warnings.catch_warnings():
        # Removing black pixels of a digit, whose value is the baseline, changes nothing.
        warnings.filterwarnings("ignore", "The settings for perturbing input")
        flipped = np.asarray(metric(model=setup["network"], **setup["call"]))
    assert flipped.shape == (len(deletion), len(steps) - 1)
    # Quantus's curve has no point before the first removal: the row's own output is.
    own = model.predict(explanation.data, explanation.output_space)[
        np.arange(len(deletion)), explanation.target
    ]
    expected = np.column_stack([own, flipped])
    # The same inputs through the same float32 network, batched differently: equal to a
    # few float32 ulps of the outputs' size.
    scale = np.abs(expected).max()
    np.testing.assert_allclose(deletion, expected, rtol=1e-5, atol=1e-5 * scale)
    # Not a trivial agreement: every curve moves.
    assert np.ptp(expected, axis=1).min() > 1e-2 * scale


def test_deletion_curve_matches_quantus_pixel_flipping_on_a_table(tabular, monkeypatch) -> None:
    model, data = tabular
    check_deletion(model, explain(IntegratedGradients(), model, data), data, monkeypatch)


@pytest.mark.slow
def test_deletion_curve_matches_quantus_pixel_flipping_on_digits(digits, monkeypatch) -> None:
    model, data = digits
    check_deletion(model, explain(Saliency(), model, data), data, monkeypatch)


# --- faithfulness correlation against Quantus's FaithfulnessCorrelation -------------------


def check_faithfulness_correlation(
    model: Model, explanation: Explanation, data: Any, runs: int | None, monkeypatch
) -> None:
    """With `runs`, `faithfulness_correlation` itself; without, as `assess` runs it (its
    own baseline, seed, runs and subset size)."""
    baseline, _ = quality.baseline_of(explanation, model, data)
    # whybox's random subsets, as the removal masks it applies: one call per row, (runs,
    # units) masks in run order.
    drawn: list[np.ndarray] = []
    with_removed = quality._with_removed

    def recording(x: np.ndarray, baseline: np.ndarray, masks: np.ndarray) -> np.ndarray:
        drawn.append(np.array(masks, dtype=bool))
        return with_removed(x, baseline, masks)

    with monkeypatch.context() as patch:
        patch.setattr(quality, "_with_removed", recording)
        if runs is None:
            assessed = quality.assess(explanation, model, data, ["faithfulness_correlation"])
            score = assessed.scores["faithfulness_correlation"]
        else:
            score = quality.faithfulness_correlation(model, explanation, baseline, runs, seed=3)
    runs = score.details["runs"]
    rows = len(explanation.values)
    subset = score.details["subset"]
    assert len(drawn) == rows and all(m.shape == (runs, drawn[0].shape[1]) for m in drawn)
    assert all((m.sum(axis=1) == subset).all() for m in drawn)

    # Quantus draws each subset with `np.random.choice(n_features, subset_size,
    # replace=False)`, for each run every row of the batch in turn: it is handed whybox's.
    replayed = iter(np.flatnonzero(drawn[row][run]) for run in range(runs) for row in range(rows))

    def choice(n: int, size: int, replace: bool = True) -> np.ndarray:
        assert (n, size, replace) == (drawn[0].shape[1], subset, False)
        return next(replayed)

    # Quantus 0.6.0 refuses every subset size on inputs (n, features): its
    # `assert_value_smaller_than_input_size` also compares with the size of the dimensions
    # after the second, 1 there. Rows are given to it as (n, 1, features).
    setup = quantus_setup(model, explanation, baseline, channel=True)
    metric = quantus.FaithfulnessCorrelation(
        nr_runs=runs,
        subset_size=subset,
        similarity_func=quantus.similarity_func.correlation_pearson,
        abs=False,
        normalise=False,
        return_aggregate=False,
        disable_warnings=True,
        **setup["perturb"],
    )
    with monkeypatch.context() as patch, warnings.catch_warnings():
        patch.setattr(np.random, "choice", choice)
        warnings.filterwarnings("ignore", "The settings for perturbing input")
        expected = np.asarray(metric(model=setup["network"], **setup["call"]))
    assert next(replayed, None) is None, "Quantus drew fewer subsets than whybox"
    # The same subsets, sums and output drops: Pearson correlations equal to float32
    # rounding of the outputs (the drops are differences of float32 network outputs).
    np.testing.assert_allclose(score.per_row, expected, rtol=0, atol=1e-5)
    assert score.value == pytest.approx(expected.mean(), abs=1e-5)
    assert np.abs(expected).max() > 0.1  # a correlation there is, not 0 against 0


def test_faithfulness_correlation_matches_quantus_on_a_table(tabular, monkeypatch) -> None:
    model, data = tabular
    explanation = explain(IntegratedGradients(), model, data)
    check_faithfulness_correlation(model, explanation, data, None, monkeypatch)


@pytest.mark.slow
def test_faithfulness_correlation_matches_quantus_on_digits(digits, monkeypatch) -> None:
    model, data = digits
    check_faithfulness_correlation(model, explain(Saliency(), model, data), data, 40, monkeypatch)


# --- max-sensitivity against Quantus's MaxSensitivity -------------------------------------


def check_max_sensitivity(
    explainer: Explainer, model: Model, data: Any, samples: int, monkeypatch
) -> None:
    explanation = explain(explainer, model, data)
    # The rows whybox explains: the clean rows (Captum's e(x)), then all noisy copies at
    # once, `samples` consecutive ones per row (Captum's `repeat_interleave`).
    explained: list[np.ndarray] = []
    explain_rows = quality._explain_rows

    def recording(explainer, model, dataset, X, targets):
        explained.append(np.array(X))
        return explain_rows(explainer, model, dataset, X, targets)

    with monkeypatch.context() as patch:
        patch.setattr(quality, "_explain_rows", recording)
        score = quality.max_sensitivity(
            explainer, model, data, explanation, samples=samples, seed=5
        )
    rows = len(explanation.values)
    clean, noisy = explained
    np.testing.assert_array_equal(clean, explanation.data)
    noisy = noisy.reshape(rows, samples, -1)
    noise = noisy - clean.reshape(rows, 1, -1)
    assert np.abs(noise).max() > 0
    if model.modality == "image":
        # For pixels whybox's noise is Quantus's default `batch_uniform_noise`: uniform in
        # [-r, r], r = lower_bound = SENSITIVITY_RADIUS. |δ| is then uniform on [0, r], of
        # mean r / 2 and standard error r / sqrt(12 n) over n draws (n = 40,960 here:
        # 0.0014 r); 5 standard errors leave a flake rate under 1e-6. The float32 inputs
        # round δ by up to 6e-8.
        r = quality.SENSITIVITY_RADIUS
        assert np.abs(noise).max() <= r + 1e-7
        assert np.abs(noise).mean() == pytest.approx(r / 2, abs=5 * r / np.sqrt(12 * noise.size))

    # Quantus perturbs all rows once per sample, with `perturb_func(arr=rows (n, features),
    # indices=every feature)`: it is handed whybox's noisy rows of that sample.
    step = iter(range(samples))

    def replay(arr: np.ndarray, indices: np.ndarray, **kwargs) -> np.ndarray:
        np.testing.assert_array_equal(arr, clean.reshape(rows, -1))
        return noisy[:, next(step)].astype(arr.dtype)

    # Quantus's sensitivity is ||a - a(x + δ)||_F / ||a||_F on the flattened maps
    # (`difference`, then `fro_norm` over the last axis, for numerator and denominator),
    # its maximum over the samples: Captum's `sensitivity_max` with norm_ord="fro", which
    # also flattens each row's map and divides by the norm of e(x) (Captum divides by 1
    # where that norm is 0, Quantus by 0: no map here is all zeros). No abs and no
    # normalising (which would change the norms), and no samples dropped where the
    # predicted class changes (Captum keeps them).
    metric = quantus.MaxSensitivity(
        nr_samples=samples,
        perturb_func=replay,
        abs=False,
        normalise=False,
        return_nan_when_prediction_changes=False,
        disable_warnings=True,
    )
    expected = np.asarray(
        metric(
            model=model.module,
            x_batch=np.array(explanation.data),
            y_batch=np.asarray(explanation.target),
            a_batch=None,  # e(x) from the explainer, as Captum takes it
            explain_func=quantus_explain_func(explainer, model, data),
            channel_first=True,
            softmax=False,
        )
    )
    assert next(step, None) is None, "Quantus drew fewer samples than whybox"
    # Both explain the same inputs with the same explainer (float32 networks, batched
    # differently: Quantus one sample of every row at a time); relative agreement to 1e-4
    # leaves room for float32 gradients and nothing more.
    np.testing.assert_allclose(score.per_row, expected, rtol=1e-4, atol=1e-7)
    assert expected.min() > 1e-4  # the maps do move under the noise


def test_max_sensitivity_matches_quantus_on_a_table(tabular, monkeypatch) -> None:
    model, data = tabular
    # Integrated Gradients, whose maps move smoothly with the row (a ReLU network's
    # gradient is piecewise constant: Saliency's would barely move).
    check_max_sensitivity(IntegratedGradients(steps=64), model, data, 10, monkeypatch)


@pytest.mark.slow
def test_max_sensitivity_matches_quantus_on_digits(digits, monkeypatch) -> None:
    model, data = digits
    check_max_sensitivity(Saliency(), model, data, 5, monkeypatch)


# --- randomisation against Quantus's MPRT ---------------------------------------------------


def check_randomisation(explainer: Explainer, model: Model, data: Any, seed: int) -> None:
    explanation = explain(explainer, model, data)
    score = quality.randomisation(explainer, model, data, explanation, seed=seed)
    cascade = score.details["cascade"]
    # Quantus's cascade: the network's modules with `reset_parameters`, output first, each
    # in turn `torch.manual_seed(seed + 1); module.reset_parameters()` on one copy of the
    # network; at every layer, the Spearman correlation of each row's map with the trained
    # map, both made absolute (normalising by the largest |value| leaves the ranks alone).
    metric = quantus.MPRT(
        layer_order="top_down",
        seed=seed,
        similarity_func=quantus.similarity_func.correlation_spearman,
        abs=True,
        normalise=False,
        disable_warnings=True,
    )
    expected = metric(
        model=model.module,
        x_batch=np.array(explanation.data),
        y_batch=np.asarray(explanation.target),
        a_batch=np.array(explanation.values),
        explain_func=quantus_explain_func(explainer, model, data),
        channel_first=True,
        softmax=False,
    )
    layers = [name for name in expected if name != "original"]
    np.testing.assert_allclose(expected["original"], 1.0, atol=1e-9)  # the maps are deterministic
    assert score.details["layers"] == len(layers)
    reported = [stage["layers"] for stage in cascade]
    assert reported[0] == 1 and reported[-1] == len(layers) and reported == sorted(set(reported))
    # Every stage whybox reports, by name and position in the cascade.
    for stage in cascade:
        name = layers[stage["layers"] - 1]
        assert stage["down_to"] == name
        # The same maps ranked the same way (average ranks for ties, as scipy's spearmanr):
        # equal up to float rounding.
        assert stage["correlation"] == pytest.approx(np.mean(expected[name]), abs=1e-9), name
    np.testing.assert_allclose(score.per_row, expected[layers[-1]], atol=1e-9)
    # The cascade does change the maps, so the comparison is not of 1 with 1.
    assert cascade[-1]["correlation"] < 0.9


def test_randomisation_matches_quantus_mprt_on_a_table(tabular) -> None:
    model, data = tabular
    check_randomisation(Saliency(), model, data, seed=42)


@pytest.mark.slow
def test_randomisation_matches_quantus_mprt_on_digits(digits) -> None:
    model, data = digits
    check_randomisation(Saliency(), model, data, seed=42)
