"""Charts: assert on what each figure shows (numbers, order, labels, colours)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch

from whybox.dashboard.reports import charts
from whybox.explainers import Explanation, registry
from whybox.explainers.agreement import rank_agreement
from whybox.explainers.testing import (
    QUADRANTS,
    fixture,
    image_set,
    make_dataset,
    patch_images,
    synthetic_frame,
)
from whybox.model_zoo import WhyboxError
from whybox.model_zoo.architectures import SmallCNN
from whybox.model_zoo.wrap import wrap_torch

OKABE_ITO = {c.upper() for c in charts.OKABE_ITO.values()} | {"#FFFFFF"}
WHITE = pio.templates["plotly_white"]


@pytest.fixture(scope="module")
def data():
    return make_dataset(synthetic_frame())


@pytest.fixture(scope="module")
def shapley(data) -> Explanation:
    """Additive, margin (log-odds) of class '1'."""
    return registry.get("exact-shapley")(background=20).explain(
        fixture("binary-mlp"), data, rows=range(30)
    )


@pytest.fixture(scope="module")
def saliency(data) -> Explanation:
    """Not additive."""
    return registry.get("saliency")().explain(fixture("binary-mlp"), data, rows=range(30))


@pytest.fixture(scope="module")
def image_maps() -> tuple[Explanation, Explanation]:
    torch.manual_seed(0)
    network = SmallCNN(1, len(QUADRANTS), (56, 56), (4, 8, 8)).eval()
    model = wrap_torch(network, network.input_shape, "logits", class_names=QUADRANTS)
    images = image_set(np.repeat(np.repeat(patch_images(2, seed=1)[0], 2, axis=2), 2, axis=3))
    return (
        registry.get("integrated-gradients")(steps=8).explain(model, images),
        registry.get("saliency")().explain(model, images),
    )


def interacting() -> Explanation:
    """f0's attribution is f0 * f3: only f3 explains its spread at a given f0."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    values = 0.1 * rng.normal(size=(300, 5))
    values[:, 0] = X[:, 0] * X[:, 3]
    values[:, 1] = 0.5 * X[:, 1]
    return Explanation(
        values=values,
        base_values=np.zeros(300),
        data=X,
        predictions=values.sum(axis=1),
        feature_names=[f"f{i}" for i in range(5)],
        output_names=["bad", "good"],
        target=np.ones(300, dtype=np.int64),
        output_space="margin",
        method="test",
        params={},
        seed=0,
        device="cpu",
        additive=True,
    )


def colours(figure: go.Figure) -> set[str]:
    """Every colour string the traces and shapes use (sequential colour scales excluded)."""
    found: set[str] = set()

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for name, child in node.items():
                if name != "colorscale":
                    walk(child, name)
        elif isinstance(node, (list, tuple)):
            for child in node:
                walk(child, key)
        elif isinstance(node, str) and "color" in key.lower():
            found.add(node.upper())

    spec = figure.to_dict()
    walk(spec["data"])
    walk(spec["layout"].get("shapes", []))
    return found


def check_common(figure: go.Figure) -> None:
    # plotly_white's look, from the lean copy charts send: its defaults for each trace drawn
    template, white = (t.to_plotly_json() for t in (figure.layout.template, WHITE))
    assert template["layout"]["paper_bgcolor"] == "white"
    for trace in figure.data:
        assert template["data"].get(trace.type) == white["data"].get(trace.type), trace.type
    assert len(json.dumps(template)) < len(json.dumps(white)) / 2
    assert figure.layout.font.size >= 12
    assert colours(figure) <= OKABE_ITO, colours(figure) - OKABE_ITO


def test_output_label(shapley: Explanation, data) -> None:
    assert charts.output_label(shapley) == "log-odds of class '1'"
    probability = registry.get("saliency")(output_space="probability").explain(
        fixture("binary-mlp"), data, rows=range(3)
    )
    assert charts.output_label(probability) == "probability of class '1'"
    regression = registry.get("saliency")().explain(fixture("regression-mlp"), data, rows=range(3))
    assert charts.output_label(regression) == "predicted value"
    several = dataclasses.replace(shapley, output_names=["a", "b", "c"], target=np.arange(30) % 3)
    assert charts.output_label(several) == "logit of the explained class"
    assert charts.output_label(several, 2) == "logit of class 'c'"


def test_importance_bar(shapley: Explanation) -> None:
    figure = charts.importance_bar(shapley, top=3)
    bar = figure.data[0]
    means = np.abs(shapley.values).mean(axis=0)
    order = np.argsort(-means)[:3]
    assert np.allclose(bar.x, means[order]) and list(bar.x) == sorted(bar.x, reverse=True)
    assert list(bar.y) == [shapley.feature_names[i] for i in order]
    assert bar.orientation == "h" and figure.layout.yaxis.autorange == "reversed"
    assert "%{x" in bar.hovertemplate
    assert figure.layout.xaxis.title.text == "mean |attribution| (log-odds of class '1')"
    check_common(figure)


def test_beeswarm(shapley: Explanation) -> None:
    figure = charts.beeswarm(shapley, top=4)
    assert len(figure.data) == 1  # no missing values
    points = figure.data[0]
    assert len(points.x) == 30 * 4
    assert min(points.marker.color) >= 0 and max(points.marker.color) <= 1
    order = np.argsort(-np.abs(shapley.values).mean(axis=0))[:4]
    assert list(figure.layout.yaxis.ticktext) == [shapley.feature_names[i] for i in order]
    top = order[0]  # drawn first, on the top line (y = 3), within its band
    assert np.allclose(points.x[:30], shapley.values[:, top])
    assert np.all(np.abs(np.asarray(points.y[:30]) - 3) <= 0.4)
    colour = np.asarray(points.marker.color[:30])
    assert np.array_equal(np.argsort(colour), np.argsort(shapley.data[:, top]))  # rank colours
    assert [int(r) for r in np.asarray(points.customdata)[:30, 0]] == list(shapley.rows)
    assert points.marker.colorbar.title.text == "feature value (low → high)"
    assert np.array_equal(points.y, charts.beeswarm(shapley, top=4).data[0].y)  # deterministic
    assert "log-odds of class '1'" in figure.layout.xaxis.title.text
    check_common(figure)


def test_beeswarm_missing_values(shapley: Explanation) -> None:
    data = shapley.data.copy()
    data[:5, 0] = np.nan
    figure = charts.beeswarm(dataclasses.replace(shapley, data=data))
    assert sum(len(trace.x) for trace in figure.data) == 30 * 5
    assert len(figure.data[1].x) == 5 and figure.data[1].name == "missing value"


def test_interaction_feature_and_dependence() -> None:
    explanation = interacting()
    assert charts.interaction_feature(explanation, "f0") == "f3"
    figure = charts.dependence(explanation, "f0")
    points = figure.data[0]
    assert np.allclose(points.x, explanation.data[:, 0])
    assert np.allclose(points.y, explanation.values[:, 0])
    assert np.allclose(points.marker.color, explanation.data[:, 3])
    assert "f3" in points.marker.colorbar.title.text
    assert figure.layout.yaxis.title.text == "attribution of f0 (log-odds of class 'good')"
    assert figure.layout.xaxis.title.text == "f0 (feature value)"
    check_common(figure)
    plain = charts.dependence(explanation, "f0", color_by=None).data[0]
    assert plain.marker.color == charts.NEUTRAL and plain.marker.colorbar.title.text is None
    chosen = charts.dependence(explanation, "f0", color_by="f1").data[0]
    assert np.allclose(chosen.marker.color, explanation.data[:, 1])
    with pytest.raises(WhyboxError, match="no feature named 'nope'"):
        charts.dependence(explanation, "nope")


def test_interaction_feature_without_interaction() -> None:
    explanation = interacting()
    explanation.values[:, 2] = 2 * explanation.data[:, 2]  # depends on f2 alone
    single = dataclasses.replace(
        explanation,
        values=explanation.values[:, :1],
        data=explanation.data[:, :1],
        feature_names=["f0"],
    )
    assert charts.interaction_feature(single, "f0") is None
    constant = dataclasses.replace(explanation, data=np.ones_like(explanation.data))
    assert charts.interaction_feature(constant, "f2") is None


def test_waterfall_additive(shapley: Explanation) -> None:
    position = 3
    figure = charts.waterfall(shapley, position, top=3)
    bars = figure.data[0]
    base, prediction = shapley.base_values[position], shapley.predictions[position]
    measures = list(bars.measure)
    assert measures[0] == "absolute" and measures[-1] == "total"
    assert set(measures[1:-1]) == {"relative"}
    assert bars.x[0] == base and bars.x[-1] == pytest.approx(prediction)
    tolerance = 1e-5 + shapley.additivity_gap
    assert sum(bars.x[1:-1]) == pytest.approx(prediction - base, abs=tolerance)
    assert base + sum(bars.x[1:-1]) == pytest.approx(bars.x[-1], abs=tolerance)
    top = np.argsort(-np.abs(shapley.values[position]))[:3]
    name = shapley.feature_names[top[0]]
    assert bars.y[1] == f"{name} = {shapley.data[position, top[0]]:.4g}"
    assert bars.y[4] == "2 other features" and len(bars.y) == 6
    assert not any("not explained" in label for label in bars.y)
    assert bars.increasing.marker.color == charts.VERMILLION == "#D55E00"
    assert bars.decreasing.marker.color == charts.BLUE == "#0072B2"
    title = figure.layout.title.text
    assert f"{base:.4g}" in title and f"{prediction:.4g}" in title
    assert "log-odds of class '1'" in figure.layout.xaxis.title.text
    check_common(figure)


def test_waterfall_not_additive(saliency: Explanation) -> None:
    assert not saliency.additive
    figure = charts.waterfall(saliency, 0)
    bars = figure.data[0]
    assert "not explained (method is not additive)" in bars.y
    base, prediction = saliency.base_values[0], saliency.predictions[0]
    assert sum(bars.x[1:-1]) == pytest.approx(prediction - base)
    assert bars.x[-1] == pytest.approx(prediction)
    assert "not additive" in figure.layout.title.text
    with pytest.raises(WhyboxError, match="outside"):
        charts.waterfall(saliency, 30)


def test_prediction_histogram(shapley: Explanation) -> None:
    label = charts.output_label(shapley)
    figure = charts.prediction_histogram(shapley.predictions, label, bins=5)
    counts, edges = np.histogram(shapley.predictions, bins=5)  # counted before drawing
    assert np.array_equal(figure.data[0].y, counts) and sum(figure.data[0].y) == 30
    assert np.allclose(figure.data[0].x, (edges[:-1] + edges[1:]) / 2)
    assert label in figure.layout.xaxis.title.text
    check_common(figure)


def test_image_overlay() -> None:
    rng = np.random.default_rng(0)
    display = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
    values = rng.normal(size=(3, 20, 24))
    summed = values.sum(axis=0)
    figure = charts.image_overlay(display, values, signed=True, opacity=0.4)
    image, heat = figure.data
    assert isinstance(image, go.Image) and isinstance(heat, go.Heatmap)
    expected = np.clip(summed / np.percentile(np.abs(summed), 99), -1, 1)
    assert np.allclose(heat.z, expected)
    assert heat.zmin == -heat.zmax == -1 and heat.opacity == 0.4
    grey = np.asarray(image.z)
    assert np.array_equal(grey[..., 0], grey[..., 2])  # grey background
    assert not figure.layout.xaxis.showticklabels and not figure.layout.yaxis.showticklabels
    assert figure.layout.yaxis.scaleanchor == "x"
    assert [c for _, c in heat.colorscale] == ["#0072B2", "#FFFFFF", "#D55E00"]
    check_common(figure)

    by_max = charts.image_overlay(display, values, signed=True, normalization="max").data[1]
    assert np.allclose(by_max.z, summed / np.abs(summed).max())
    magnitude = charts.image_overlay(display, values, signed=True, colormap="magnitude").data[1]
    assert np.allclose(
        magnitude.z, np.clip(np.abs(summed) / np.percentile(np.abs(summed), 99), 0, 1)
    )
    assert magnitude.zmin == 0 and magnitude.zmax == 1
    assert [c for _, c in magnitude.colorscale] == ["#FFFFFF", "#D55E00"]
    unsigned = charts.image_overlay(display, values, signed=False).data[1]
    assert np.asarray(unsigned.z).min() >= 0


@pytest.mark.parametrize(
    "options",
    [{"colormap": "jet"}, {"normalization": "zscore"}, {"opacity": 1.5}],
)
def test_image_overlay_refuses_unknown_choices(options: dict) -> None:
    with pytest.raises(ValueError):
        charts.image_overlay(
            np.zeros((4, 4, 3), np.uint8), np.ones((1, 4, 4)), signed=True, **options
        )


def test_agreement_scatter_tabular(shapley: Explanation, saliency: Explanation) -> None:
    figure = charts.agreement_scatter(shapley, saliency, 2)
    line, points = figure.data
    assert np.allclose(points.x, shapley.values[2]) and np.allclose(points.y, saliency.values[2])
    assert list(points.text) == shapley.feature_names
    assert list(line.x) == list(line.y)  # y = x
    rho = rank_agreement(shapley.values[2:3], saliency.values[2:3])[0]
    assert f"{rho:.3f}" in figure.layout.title.text and "Spearman" in figure.layout.title.text
    assert figure.layout.xaxis.title.text.startswith("exact-shapley attribution (log-odds")
    assert figure.layout.yaxis.title.text.startswith("saliency attribution (log-odds")
    check_common(figure)
    with pytest.raises(WhyboxError, match="different rows"):
        charts.agreement_scatter(
            shapley, dataclasses.replace(saliency, rows=np.asarray(saliency.rows) + 1), 0
        )


def test_agreement_scatter_images(image_maps) -> None:
    gradients, saliency = image_maps
    figure = charts.agreement_scatter(gradients, saliency, 1)
    points = figure.data[1]
    assert len(points.x) == 28 * 28  # 56 x 56 pixels in 2 x 2 blocks
    expected = gradients.values[1].sum(axis=0).reshape(28, 2, 28, 2).mean(axis=(1, 3))
    assert np.allclose(points.x, expected.ravel(), atol=1e-6)
    rho = rank_agreement(gradients.values[1:2], saliency.values[1:2])[0]
    assert f"{rho:.3f}" in figure.layout.title.text
    with pytest.raises(WhyboxError, match="tabular"):
        charts.importance_bar(gradients)


def test_names_with_markup_stay_literal_in_every_chart(shapley: Explanation) -> None:
    hostile = '<b>bold</b> <a href="javascript:alert(1)">x</a>'
    names = [hostile + str(i) for i in range(len(shapley.feature_names))]
    renamed = dataclasses.replace(shapley, feature_names=names, output_names=["no", "<i>yes</i>"])
    figures = [
        charts.importance_bar(renamed),
        charts.beeswarm(renamed),
        charts.dependence(renamed, names[0], color_by=names[1]),
        charts.waterfall(renamed, 0),
        charts.agreement_scatter(renamed, renamed, 0),
        charts.prediction_histogram(renamed.predictions, charts.output_label(renamed)),
    ]
    for figure in figures:
        text = json.dumps(json.loads(figure.to_json()))  # plotly's JSON writes < as \u003c
        assert "<b>bold" not in text and "<a href" not in text and "<i>yes" not in text
        assert "&lt;b&gt;bold&lt;/b&gt;" in text or "&lt;i&gt;yes&lt;/i&gt;" in text
