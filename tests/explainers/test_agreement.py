"""Agreement between two explanations: rank correlation, top-k overlap and signs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from whybox.explainers import Explanation, registry
from whybox.explainers.agreement import agreement, rank_agreement, top_k_overlap
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


@pytest.fixture(scope="module")
def shapley() -> Explanation:
    data = make_dataset(synthetic_frame())
    return registry.get("exact-shapley")(background=20).explain(
        fixture("binary-mlp"), data, rows=range(30)
    )


@pytest.fixture(scope="module")
def saliency() -> Explanation:
    data = make_dataset(synthetic_frame())
    return registry.get("saliency")().explain(fixture("binary-mlp"), data, rows=range(30))


def by_hand(values: np.ndarray, signed: bool = True) -> Explanation:
    n = len(values)
    return Explanation(
        values=np.asarray(values, dtype=np.float64),
        base_values=np.zeros(n),
        data=np.zeros_like(values),
        predictions=np.zeros(n),
        feature_names=[f"f{i}" for i in range(values.shape[1])],
        output_names=["0", "1"],
        target=np.ones(n, dtype=np.int64),
        output_space="margin",
        method="test",
        params={},
        seed=0,
        device="cpu",
        signed=signed,
    )


def test_identical_explanations_agree_fully(shapley: Explanation) -> None:
    result = agreement(shapley, shapley, k=3)
    assert result["rows"] == 30 and result["k"] == 3
    assert result["mean_rank_correlation"] == pytest.approx(1.0)
    assert result["mean_top_k_overlap"] == 1.0
    assert result["sign_agreement"] == 1.0
    assert result["per_row_rank_correlation"] == pytest.approx([1.0] * 30)
    assert result["per_row_top_k_overlap"] == [1.0] * 30


def test_reversed_magnitudes_correlate_negatively() -> None:
    a = np.array([[1.0, -2.0, 3.0, 4.0, -5.0]])
    b = np.array([[5.0, 4.0, -3.0, 2.0, 1.0]])
    assert rank_agreement(a, b) == pytest.approx([-1.0])
    rng = np.random.default_rng(0)
    magnitudes = rng.uniform(1, 2, size=(20, 8))
    reversed_order = 3 - magnitudes  # the smallest |a| becomes the largest |b|
    signs = rng.choice([-1.0, 1.0], size=magnitudes.shape)
    correlations = rank_agreement(signs * magnitudes, reversed_order)
    assert (correlations < -0.99).all()


def test_rank_agreement_is_spearman_per_row_and_flattens_maps() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 2, 3, 3)), rng.normal(size=(6, 2, 3, 3))
    expected = [spearmanr(np.abs(a[i]).ravel(), np.abs(b[i]).ravel()).statistic for i in range(6)]
    assert rank_agreement(a, b) == pytest.approx(expected)


def test_constant_rows_give_zero_not_nan() -> None:
    a = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [2.0, -2.0, 2.0]])
    b = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    assert rank_agreement(a, b).tolist() == [0.0, 0.0, 0.0]


def test_top_k_overlap_by_hand() -> None:
    a = np.array([[0.1, -5.0, 3.0, 0.0, 2.0]])  # |a| ranks: f1, f2, f4, f0, f3
    b = np.array([[4.0, 1.0, -3.0, 0.5, 0.0]])  # |b| ranks: f0, f2, f1, f3, f4
    assert top_k_overlap(a, b, 1).tolist() == [0.0]
    assert top_k_overlap(a, b, 2).tolist() == [0.5]  # {f1, f2} and {f0, f2}
    assert top_k_overlap(a, b, 3) == pytest.approx([2 / 3])  # {f1, f2, f4} and {f0, f2, f1}
    assert top_k_overlap(a, b, 5).tolist() == [1.0]
    assert top_k_overlap(a, b, 50).tolist() == [1.0]  # k past the features: all of them


def test_agreement_by_hand() -> None:
    a = by_hand(np.array([[0.1, -5.0, 3.0, 0.0, 2.0]]))
    b = by_hand(np.array([[4.0, 1.0, -3.0, 0.5, 0.0]]))
    result = agreement(a, b, k=2)
    assert result["mean_top_k_overlap"] == 0.5
    # union of the top-2 sets is {f0, f1, f2}; signs agree on f0 only
    assert result["sign_agreement"] == pytest.approx(1 / 3)
    expected = spearmanr(np.abs(a.values[0]), np.abs(b.values[0])).statistic
    assert result["mean_rank_correlation"] == pytest.approx(expected)
    assert agreement(a, dataclasses.replace(b, signed=False))["sign_agreement"] is None
    assert agreement(a, b, k=50)["k"] == 5
    with pytest.raises(WhyboxError, match="k must be at least 1"):
        agreement(a, b, k=0)


def test_two_real_methods(shapley: Explanation, saliency: Explanation) -> None:
    result = agreement(shapley, saliency, k=2)
    assert result["rows"] == 30 and len(result["per_row_top_k_overlap"]) == 30
    assert -1 <= result["mean_rank_correlation"] <= 1
    assert 0 <= result["sign_agreement"] <= 1
    assert result["mean_top_k_overlap"] == pytest.approx(np.mean(result["per_row_top_k_overlap"]))


def test_mismatched_rows_are_refused(shapley: Explanation, saliency: Explanation) -> None:
    moved = dataclasses.replace(saliency, rows=np.asarray(saliency.rows) + 1)
    with pytest.raises(WhyboxError, match="different rows") as error:
        agreement(shapley, moved)
    assert "\n" not in str(error.value)
    fewer = dataclasses.replace(
        saliency, values=saliency.values[:10], rows=np.asarray(saliency.rows)[:10]
    )
    with pytest.raises(WhyboxError, match="differ in shape"):
        agreement(shapley, fewer)
    other_class = dataclasses.replace(saliency, target=np.zeros(30, dtype=np.int64))
    with pytest.raises(WhyboxError, match="different target"):
        agreement(shapley, other_class)


def test_image_maps() -> None:
    torch.manual_seed(0)
    network = SmallCNN(1, len(QUADRANTS), (28, 28), (4, 8, 8)).eval()
    model = wrap_torch(network, network.input_shape, "logits", class_names=QUADRANTS)
    images = image_set(patch_images(3, seed=1)[0])
    gradients = registry.get("integrated-gradients")(steps=8).explain(model, images)
    cam = registry.get("grad-cam")().explain(model, images)
    result = agreement(gradients, cam, k=20)
    assert result["rows"] == 3 and result["sign_agreement"] is None
    assert agreement(gradients, gradients, k=20)["mean_rank_correlation"] == pytest.approx(1.0)
