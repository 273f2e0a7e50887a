"""Explanation quality: known answers on a linear model, a real explainer against random maps
on the digits CNN, metrics that do not apply, determinism under threads, per-row targets and
the assessment's contract (estimates, unknown metrics, progress).

A linear model f(x) = b + w·x has exact attributions a_j = w_j (x_j - baseline_j): removing
(setting to the baseline) any set S of inputs lowers the output by exactly sum_{j in S} a_j.
Every expected number below follows from that, or from a computation in the test itself.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from whybox.explainers import Explainer, Explanation, quality, registry
from whybox.explainers.seeding import numpy_generator
from whybox.explainers.testing import (
    FEATURES,
    fixture,
    make_dataset,
    synthetic_frame,
    xgboost_classifier,
)
from whybox.model_zoo import Dataset, Model, WhyboxError, load_model

LINEAR_FEATURES = 10
LINEAR_ROWS = 30
DIGITS = 12


# --- a linear model with exact attributions --------------------------------------------------


@pytest.fixture(scope="module")
def linear() -> dict[str, Any]:
    """A scikit-learn LinearRegression (float64, not a network) on 100 rows, its data set,
    and the exact attributions of 30 rows against the quality baseline.

    The data set has 100 rows, so the baseline (the mean of 100 background rows) is the
    mean of all of them, computed here independently."""
    import skops.io as sio
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(11)
    names = [f"x{j}" for j in range(LINEAR_FEATURES)]
    X = rng.normal(size=(100, LINEAR_FEATURES)) * rng.uniform(0.5, 2.0, LINEAR_FEATURES)
    # weights of both signs and well-separated sizes: no two features tie
    w = rng.permutation(np.linspace(-3.0, 4.0, LINEAR_FEATURES))
    estimator = LinearRegression().fit(pd.DataFrame(X, columns=names), X @ w + 0.7)
    model = load_model(sio.dumps(estimator), name="linear.skops", isolated=False)
    data = make_dataset(pd.DataFrame(X, columns=names), name="linear")
    baseline = X.mean(axis=0)
    rows = X[:LINEAR_ROWS]
    exact = Explanation(
        values=estimator.coef_ * (rows - baseline),
        base_values=np.full(
            LINEAR_ROWS, float(estimator.predict(pd.DataFrame([baseline], columns=names))[0])
        ),
        data=rows,
        predictions=estimator.predict(pd.DataFrame(rows, columns=names)),
        feature_names=names,
        output_names=list(model.output_names),
        target=np.zeros(LINEAR_ROWS, dtype=np.int64),
        output_space="value",
        # Interventional Shapley values of a linear model are these exact attributions, so
        # the method that would re-explain (max-sensitivity) is exact-shapley.
        method="exact-shapley",
        params={"background": 100},
        seed=0,
        device="cpu",
    )
    # the same magnitudes, shuffled across features within each row
    shuffle = np.random.default_rng(5)
    shuffled_values = np.stack([shuffle.permutation(row) for row in exact.values])
    assert not np.array_equal(shuffled_values, exact.values)
    shuffled = dataclasses.replace(exact, values=shuffled_values)
    return {
        "model": model,
        "data": data,
        "baseline": baseline,
        "exact": exact,
        "shuffled": shuffled,
    }


def test_the_quality_baseline_is_the_background_mean(linear: dict[str, Any]) -> None:
    baseline, described = quality.baseline_of(linear["exact"], linear["model"], linear["data"])
    np.testing.assert_allclose(baseline, linear["baseline"][None], rtol=1e-12, atol=1e-12)
    assert "100 background rows" in described


def test_exact_order_is_the_fastest_deletion_and_insertion(linear: dict[str, Any]) -> None:
    """Removing the k most positive attributions first lowers f(x) by the largest possible
    k-sum, so the exact order's deletion curve lies on or under every other order's at every
    step, and its insertion curve (f(baseline) plus the k-sum) on or over."""
    model, exact, shuffled = linear["model"], linear["exact"], linear["shuffled"]
    baseline = linear["baseline"][None]
    measured = quality.curves(model, exact, baseline, seed=0)
    other = quality.curves(model, shuffled, baseline, seed=0)
    steps = measured["steps"]
    assert steps[0] == 0 and steps[-1] == LINEAR_FEATURES
    top = np.cumsum(np.sort(exact.values, axis=1)[:, ::-1], axis=1)
    top = np.concatenate([np.zeros((LINEAR_ROWS, 1)), top], axis=1)[:, steps]
    f_x, f_base = exact.predictions[:, None], exact.base_values[:, None]
    np.testing.assert_allclose(measured["deletion"][:, 0], f_x - top, atol=1e-9)
    np.testing.assert_allclose(measured["insertion"][:, 0], f_base + top, atol=1e-9)
    tolerance = 1e-9
    for curves in (measured, other):  # random orders and the shuffled magnitudes' order
        assert (measured["deletion"][:, :1] <= curves["deletion"] + tolerance).all()
        assert (measured["insertion"][:, :1] >= curves["insertion"] - tolerance).all()
    # the random orders depend on the seed and shapes only: the same for both explanations
    np.testing.assert_array_equal(measured["deletion"][:, 1:], other["deletion"][:, 1:])


def test_exact_attributions_beat_shuffled_ones_and_random_orders(linear: dict[str, Any]) -> None:
    model, data = linear["model"], linear["data"]
    exact = quality.assess(linear["exact"], model, data)
    shuffled = quality.assess(linear["shuffled"], model, data)
    for name in ("deletion", "insertion"):
        best, control = exact.scores[name], shuffled.scores[name]
        assert best.applicable and control.applicable
        assert best.value > 1 and best.value > control.value, name
        assert best.p_value is not None and best.p_value < quality.ALPHA, name
        assert best.verdict.startswith("better than random orders"), best.verdict
        # every random order is slower: only the very same order would tie
        assert (best.per_row == 1.0).all() and control.per_row.mean() < 1.0

    # Faithfulness correlation: a subset's output drop f(x) - f(x without S) equals its
    # attribution sum exactly, so the two are perfectly correlated on every row.
    faithful = exact.scores["faithfulness_correlation"]
    np.testing.assert_allclose(faithful.per_row, 1.0, atol=1e-9)
    assert faithful.value == pytest.approx(1.0, abs=1e-9)
    assert faithful.p_value < quality.ALPHA and faithful.verdict.startswith("strong")
    assert shuffled.scores["faithfulness_correlation"].value < 0.9

    # Infidelity: the attributions predict every removal's output drop exactly, so the
    # squared error is 0 up to rounding (Captum's normalised form may round to a tiny
    # negative); shuffled ones cannot.
    infidelity = exact.scores["infidelity"]
    scale = float(np.mean(linear["exact"].values ** 2))
    assert abs(infidelity.value) < 1e-12 * scale
    assert infidelity.reference > 1e-3 * scale
    assert infidelity.p_value < quality.ALPHA
    assert infidelity.verdict.startswith("lower than shuffled")
    assert shuffled.scores["infidelity"].value > 1e-3 * scale


def test_max_sensitivity_of_constant_gradients_is_zero() -> None:
    """The saliency of a linear network is its weights, whatever the input: no noise changes
    the explanation, so max-sensitivity is 0."""
    from whybox.model_zoo.wrap import wrap_torch

    torch.manual_seed(0)
    network = torch.nn.Linear(len(FEATURES), 1)
    model = wrap_torch(network, len(FEATURES), "value", feature_names=FEATURES)
    data = make_dataset(synthetic_frame(100))
    explanation = registry.get("saliency")().explain(model, data, rows=range(6))
    score = quality.assess(explanation, model, data, metrics=["max_sensitivity"]).scores[
        "max_sensitivity"
    ]
    np.testing.assert_allclose(score.per_row, 0.0, atol=1e-6)
    assert score.verdict.startswith("stable")


# --- a real explainer against random maps on the digits CNN ---------------------------------


class RandomMaps(Explainer):
    """A deliberately wrong explainer: a map of normal noise from a generator keyed by the
    seed and the row's values; it never looks at the model."""

    name = "random-maps"
    display_name = "Random maps"
    summary = "Noise: a wrong explainer for the quality tests."
    modalities = ("tabular", "image")

    def _draw(self, x: np.ndarray) -> np.ndarray:
        return numpy_generator(int(self.seed), x).normal(size=x.shape)

    def _explain(self, *, model, dataset, X, targets, output_space, device, progress):
        values = np.stack([self._draw(np.asarray(x)) for x in X])
        return self.new_explanation(model, X, targets, output_space, values, 0.0)


class FreshNoise(RandomMaps):
    """Random maps drawn afresh on every call (a stateful generator): two calls on the same
    rows give unrelated maps."""

    name = "fresh-noise"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._rng = np.random.default_rng(int(self.seed))

    def _draw(self, x: np.ndarray) -> np.ndarray:
        return self._rng.normal(size=x.shape)


@pytest.fixture(scope="module")
def digits() -> tuple[Model, Dataset]:
    from whybox.model_zoo import demos

    model = demos.resolve_model("demo:digits-cnn")
    return model, demos.resolve_data("demo:digits", model)


@pytest.fixture(scope="module")
def digits_quality(digits) -> dict[str, tuple[Explanation, quality.Quality]]:
    model, data = digits
    out = {}
    for explainer in (registry.get("integrated-gradients")(steps=32), RandomMaps()):
        explanation = explainer.explain(model, data, rows=range(DIGITS))
        out[explainer.name] = explanation, quality.assess(explanation, model, data)
    return out


def _better(score: quality.Score) -> bool:
    """What the verdict calls better than the control: the right side and p < ALPHA."""
    side = (
        score.value > score.reference
        if quality.METRICS[score.metric].better == "higher"
        else (score.value < score.reference)
    )
    return bool(side and score.p_value is not None and score.p_value < quality.ALPHA)


@pytest.mark.slow
def test_integrated_gradients_beats_random_orders(digits_quality) -> None:
    _, assessed = digits_quality["integrated-gradients"]
    _, noise = digits_quality["random-maps"]
    for name in ("deletion", "insertion"):
        score = assessed.scores[name]
        assert _better(score) and score.verdict.startswith("better than random orders")
        low, _ = score.interval
        assert low > 1.1, f"{name}: the 95 % interval {score.interval} reaches near random"
        # a clear margin over what random maps get on the same images and orders
        assert score.value > noise.scores[name].value + 0.2
        assert score.details["share_of_random_orders_beaten"] > 0.9
    assert _better(assessed.scores["faithfulness_correlation"])
    assert any("Pixels are removed together" in note for note in assessed.notes)


@pytest.mark.slow
def test_random_maps_are_flagged_on_every_cheap_metric(digits_quality) -> None:
    _, assessed = digits_quality["random-maps"]
    assert set(assessed.scores) == set(quality.CHEAP)
    for name, score in assessed.scores.items():
        assert score.applicable, name
        assert not _better(score), f"{name}: {score.verdict}"
        assert score.verdict.startswith(("not ", "no ")), f"{name}: {score.verdict}"
    for name in ("deletion", "insertion"):
        assert abs(assessed.scores[name].value - 1) < 0.15, name  # as good as a random order
    assert abs(assessed.scores["faithfulness_correlation"].value) < 0.1


@pytest.mark.slow
def test_random_maps_fail_randomisation_and_sensitivity(digits, digits_quality) -> None:
    """A map that ignores the model is the same on the randomised network: rank correlation
    1, the randomisation check fails. Noise keyed by the input changes completely with any
    input change: two independent standard normal maps differ by about sqrt(2) times a map's
    norm, so max-sensitivity is at least about that."""
    model, data = digits
    explanation, _ = digits_quality["random-maps"]
    shuffled = quality.randomisation(RandomMaps(), model, data, explanation, seed=0)
    assert shuffled.value == pytest.approx(1.0)
    assert all(stage["correlation"] == pytest.approx(1.0) for stage in shuffled.details["cascade"])
    assert shuffled.verdict.startswith("fails the randomisation check")
    sensitive = quality.max_sensitivity(RandomMaps(), model, data, explanation, samples=3)
    assert sensitive.value > 0.8 * math.sqrt(2)
    assert sensitive.verdict.startswith("unstable")


@pytest.mark.slow
def test_fresh_noise_passes_randomisation_by_its_definition(digits) -> None:
    """The randomisation check asks only whether the map changes when the weights do. Noise
    drawn afresh on each call changes whatever happens, so it passes (correlation about 0):
    that check cannot flag such an explainer; the cheap metrics do (test above)."""
    model, data = digits
    explainer = FreshNoise()
    explanation = explainer.explain(model, data, rows=range(DIGITS))
    score = quality.randomisation(explainer, model, data, explanation, seed=0)
    assert abs(score.value) < 0.05
    assert score.verdict.startswith("passes the randomisation check")


@pytest.mark.slow
def test_guided_grad_cam_randomisation_is_measured(digits) -> None:
    model, data = digits
    network = model.module
    before = {k: v.clone() for k, v in network.state_dict().items()}
    predictions = model.predict(data.values[:DIGITS])
    explanation = registry.get("guided-grad-cam")().explain(model, data, rows=range(DIGITS))
    assessed = quality.assess(explanation, model, data, metrics=["randomisation"])
    score = assessed.scores["randomisation"]
    assert list(assessed.scores) == ["randomisation"]
    assert score.applicable and math.isfinite(score.value) and -1 <= score.value <= 1
    assert "randomisation check" in score.verdict
    assert len(score.per_row) == DIGITS
    # the layers with parameters of their own, from the output back
    layers = [
        name
        for name, module in network.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    ][::-1]
    cascade = score.details["cascade"]
    assert score.details["layers"] == len(layers)
    assert len(cascade) == min(quality.RANDOMISATION_STAGES, len(layers))
    assert [stage["layers"] for stage in cascade] == sorted({stage["layers"] for stage in cascade})
    assert cascade[0]["layers"] == 1 and cascade[0]["down_to"] == layers[0]
    assert cascade[-1]["layers"] == len(layers) and cascade[-1]["down_to"] == layers[-1]
    assert all(-1 <= stage["correlation"] <= 1 for stage in cascade)
    assert score.value == pytest.approx(cascade[-1]["correlation"])
    # the user's network is untouched: randomisation works on a copy
    for key, value in network.state_dict().items():
        assert torch.equal(value, before[key]), key
    np.testing.assert_array_equal(model.predict(data.values[:DIGITS]), predictions)
    json.dumps(assessed.record())


# --- metrics that do not apply ----------------------------------------------------------------


def test_randomisation_does_not_apply_to_models_that_are_not_networks(
    linear: dict[str, Any],
) -> None:
    model, data, explanation = linear["model"], linear["data"], linear["exact"]
    explainer = registry.get("exact-shapley")(background=100)
    score = quality.randomisation(explainer, model, data, explanation)
    assert not score.applicable and "not a network" in score.reason
    assert score.value is None and score.record()["applicable"] is False


def test_all_metrics_on_xgboost_give_a_record_for_each(dataset: Dataset) -> None:
    model = xgboost_classifier()
    explanation = registry.get("tree-shap")().explain(model, dataset, rows=range(8))
    assessed = quality.assess(explanation, model, dataset, metrics=quality.ALL)
    record = json.loads(json.dumps(assessed.record()))
    assert [score["metric"] for score in record["scores"]] == list(quality.ALL)
    by_name = {score["metric"]: score for score in record["scores"]}
    shuffled = by_name.pop("randomisation")
    assert shuffled["applicable"] is False and shuffled["value"] is None
    assert "not a network" in shuffled["reason"]
    for name, score in by_name.items():
        assert score["applicable"] and score["reason"] is None, name
        assert score["value"] is not None and math.isfinite(score["value"]), name
        assert score["verdict"], name
    assert record["rows"] == 8 and record["method"] == "tree-shap"


def test_a_model_whose_output_never_moves_gets_reasons_not_errors(dataset: Dataset) -> None:
    from tests.conftest import predict_only_model

    model = predict_only_model(lambda X, space: np.full((len(X), 1), 3.0), len(FEATURES), FEATURES)
    rows = dataset.values[:8]
    explanation = Explanation(
        values=np.random.default_rng(0).normal(size=rows.shape),
        base_values=np.full(8, 3.0),
        data=rows,
        predictions=np.full(8, 3.0),
        feature_names=FEATURES,
        output_names=list(model.output_names),
        target=np.zeros(8, dtype=np.int64),
        output_space="value",
        method="exact-shapley",
        params={},
        seed=0,
        device="cpu",
    )
    record = quality.assess(explanation, model, dataset).record()
    json.dumps(record)
    by_name = {score["metric"]: score for score in record["scores"]}
    assert list(by_name) == list(quality.CHEAP)
    for name in ("deletion", "insertion"):
        assert not by_name[name]["applicable"] and "does not move" in by_name[name]["reason"]
        assert by_name[name]["value"] is None
    # no output change to correlate with: 0 on every row, by the metric's definition
    faithful = by_name["faithfulness_correlation"]
    assert faithful["value"] == 0 and faithful["verdict"].startswith("no link")
    # nothing to predict: no attributions do better than shuffled ones
    infidelity = quality.Score("infidelity", **_numbers(by_name["infidelity"]))
    assert not _better(infidelity)


def _numbers(score: dict[str, Any]) -> dict[str, Any]:
    return {"value": score["value"], "reference": score["reference"], "p_value": score["p_value"]}


# --- determinism and isolation ----------------------------------------------------------------


def _numbers_of(record: dict[str, Any]) -> dict[str, Any]:
    """The record without its timings."""
    record = copy.deepcopy(record)
    for score in record["scores"]:
        score.pop("seconds")
    return record


@pytest.fixture(scope="module")
def mlp_explanations(dataset: Dataset) -> dict[str, Explanation]:
    model = fixture("binary-mlp")
    return {
        name: registry.get(name)(**params).explain(model, dataset, rows=range(16))
        for name, params in (("integrated-gradients", {"steps": 32}), ("saliency", {}))
    }


METRICS_FOR_THREADS = (*quality.CHEAP, "max_sensitivity")


def _with_global_seed(seed: int, run):
    numpy_state, torch_state = np.random.get_state(), torch.get_rng_state()
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        return run()
    finally:
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)


def test_the_same_seed_gives_the_same_record(dataset: Dataset, mlp_explanations) -> None:
    model = fixture("binary-mlp")
    explanation = mlp_explanations["integrated-gradients"]
    records = [
        _with_global_seed(
            global_seed,
            lambda: quality.assess(explanation, model, dataset, METRICS_FOR_THREADS, seed=3),
        ).record()
        for global_seed in (1, 2)
    ]
    assert records[0]["seed"] == 3
    assert _numbers_of(records[0]) == _numbers_of(records[1])
    other = quality.assess(explanation, model, dataset, quality.CHEAP, seed=4).record()
    # another seed draws other random orders, subsets and noise
    values = {s["metric"]: s["value"] for s in records[0]["scores"]}
    assert any(values[s["metric"]] != s["value"] for s in other["scores"])


def test_threads_give_the_numbers_of_a_serial_run(dataset: Dataset, mlp_explanations) -> None:
    """whybox serves several sessions in threads of one process, each with its own model
    copy: assessing two explanations at once gives, to the bit, the numbers of each alone."""
    model = fixture("binary-mlp")
    names = list(mlp_explanations)

    def run(name: str, own: Model) -> dict[str, Any]:
        explanation = mlp_explanations[name]
        return _numbers_of(
            quality.assess(explanation, own, dataset, METRICS_FOR_THREADS, seed=1).record()
        )

    alone = {name: run(name, model) for name in names}
    jobs = [name for _ in range(2) for name in names]
    with ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(run, jobs, [copy.deepcopy(model) for _ in jobs]))
    for name, record in zip(jobs, together, strict=True):
        assert record == alone[name], name
    assert alone[names[0]] != alone[names[1]]


# --- Explainer.explain(target=array) -------------------------------------------------------


def test_one_target_per_row_is_honoured(dataset: Dataset) -> None:
    model = fixture("multiclass-mlp")
    explainer = registry.get("integrated-gradients")(steps=16)
    rows = [0, 1, 2, 3, 4, 5]
    targets = np.array([2, 0, 1, 2, 1, 0])
    explanation = explainer.explain(model, dataset, rows=rows, target=targets)
    np.testing.assert_array_equal(explanation.target, targets)
    outputs = model.predict(dataset.values[rows], explanation.output_space)
    np.testing.assert_allclose(explanation.predictions, outputs[np.arange(len(rows)), targets])
    for position, (row, target) in enumerate(zip(rows, targets, strict=True)):
        alone = explainer.explain(model, dataset, rows=[row], target=int(target))
        np.testing.assert_allclose(explanation.values[position], alone.values[0], atol=1e-6)
    # a one-pass method (its own forward pass gives the targets) honours them too
    saliency = registry.get("saliency")().explain(model, dataset, rows=rows, target=targets)
    np.testing.assert_array_equal(saliency.target, targets)


@pytest.mark.parametrize(
    "targets",
    [
        pytest.param(np.array([0, 1, 2]), id="too-short"),
        pytest.param(np.array([0, 1, 2, 0, 1, 2, 0]), id="too-long"),
        pytest.param(np.array([0, 1, 3, 0]), id="past-the-last-class"),
        pytest.param(np.array([0, -1, 2, 0]), id="negative"),
    ],
)
def test_a_wrong_target_array_is_refused(dataset: Dataset, targets: np.ndarray) -> None:
    model = fixture("multiclass-mlp")
    with pytest.raises(WhyboxError) as error:
        registry.get("saliency")().explain(model, dataset, rows=[0, 1, 2, 3], target=targets)
    message = str(error.value)
    assert "4 output numbers" in message and "one per row" in message, message
    assert "0..2" in message, message


# --- the assessment's contract -----------------------------------------------------------------


def test_estimates_are_positive_for_every_metric(mlp_explanations) -> None:
    model = fixture("binary-mlp")
    explanation = mlp_explanations["integrated-gradients"]
    for name in quality.ALL:
        seconds = quality.estimate_seconds(name, explanation, model)
        assert isinstance(seconds, float) and math.isfinite(seconds) and seconds > 0, name
    assert set(quality.CHEAP) < set(quality.ALL)
    assert all(quality.METRICS[name].costly for name in set(quality.ALL) - set(quality.CHEAP))


def test_an_unknown_metric_names_the_valid_ones(dataset: Dataset, mlp_explanations) -> None:
    with pytest.raises(WhyboxError) as error:
        quality.assess(
            mlp_explanations["saliency"], fixture("binary-mlp"), dataset, ["deletion", "fidelity"]
        )
    message = str(error.value)
    assert "fidelity" in message
    assert all(name in message for name in quality.ALL), message


class Stop(Exception):
    pass


def _stopping_at(where: str):
    """A progress callback that raises Stop at the first report of `where`, and the labels
    it was called with."""
    seen: list[str] = []

    def stop(metric: str, done: int, total: int) -> None:
        seen.append(metric)
        if metric == where:
            raise Stop

    return seen, stop


def test_progress_is_reported_and_an_exception_stops_the_assessment(
    dataset: Dataset, mlp_explanations
) -> None:
    model = fixture("binary-mlp")
    explanation = mlp_explanations["saliency"]
    values = explanation.values.copy()
    calls: list[tuple[str, int, int]] = []
    quality.assess(explanation, model, dataset, quality.ALL, progress=lambda *c: calls.append(c))
    rows = len(explanation.values)
    for label in ("deletion and insertion", "faithfulness_correlation"):
        assert [(d, t) for name, d, t in calls if name == label] == [
            (i, rows) for i in range(1, rows + 1)
        ], label
    for label in ("max_sensitivity", "randomisation"):
        reports = [(d, t) for name, d, t in calls if name == label]
        assert reports, label
        done = [d for d, _ in reports]
        assert done == sorted(done) and reports[-1][0] == reports[-1][1], (label, reports)

    for where in ("deletion and insertion", "max_sensitivity", "randomisation"):
        seen, stop = _stopping_at(where)
        with pytest.raises(Stop):
            quality.assess(explanation, model, dataset, quality.ALL, progress=stop)
        assert seen[-1] == where and seen.count(where) == 1  # nothing ran on after it
    np.testing.assert_array_equal(explanation.values, values)


def test_every_metric_reports_progress(dataset: Dataset, mlp_explanations) -> None:
    calls: list[tuple[str, int, int]] = []
    quality.assess(
        mlp_explanations["saliency"],
        fixture("binary-mlp"),
        dataset,
        ["infidelity"],
        progress=lambda *call: calls.append(call),
    )
    assert calls == [("infidelity", 1, 2), ("infidelity", 2, 2)]


def test_a_row_scores_the_same_alone_or_in_a_batch(dataset: Dataset, mlp_explanations) -> None:
    """Random orders and subsets are drawn per row (the seed and the row's values), so the
    Local view's one row and the Global view's sample agree on the rows they share."""
    model, explanation = fixture("binary-mlp"), mlp_explanations["integrated-gradients"]
    baseline, _ = quality.baseline_of(explanation, model, dataset)
    alone = explanation.subset([2])
    np.testing.assert_array_equal(
        quality.curves(model, explanation, baseline)["deletion"][2],
        quality.curves(model, alone, baseline)["deletion"][0],
    )
    batch = quality.faithfulness_correlation(model, explanation, baseline)
    assert quality.faithfulness_correlation(model, alone, baseline).per_row[0] == (batch.per_row[2])


def test_curves_without_random_orders_are_the_attribution_order_alone(
    dataset: Dataset, mlp_explanations
) -> None:
    model, explanation = fixture("binary-mlp"), mlp_explanations["saliency"]
    baseline, _ = quality.baseline_of(explanation, model, dataset)
    alone = quality.curves(model, explanation, baseline, orders=0)
    with_random = quality.curves(model, explanation, baseline, orders=2)
    assert alone["deletion"].shape == (len(explanation.values), 1, len(alone["steps"]))
    # float32 network: the batch size may change the last bits
    np.testing.assert_allclose(alone["insertion"][:, 0], with_random["insertion"][:, 0], rtol=1e-5)
