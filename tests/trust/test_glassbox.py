"""The glass-box comparison: an EBM beside the black box, its accuracy and shape functions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tests.trust.versions_models import applicants, read, train
from whybox.model_zoo import WhyboxError
from whybox.trust.glassbox import HELD_OUT, glass_box


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return train(applicants(4000, seed=0), tmp_path_factory.mktemp("m") / "a.json")


def test_on_an_additive_truth_a_glass_box_would_do_and_its_shapes_recover_it(model):
    """The applicants' status is a sum of one effect per feature (income and age up, debt
    down, owning a home up), so an EBM is as accurate as XGBoost and its shapes show them."""
    frame = applicants(6000, seed=1)
    data = read(frame, model)
    found = glass_box(model, data, seed=0)
    assert found.would_do, found.verdict
    assert found.verdict.startswith("A glass-box model would do")
    shapes = {s.feature: s for s in found.shapes}
    assert [s.feature for s in found.shapes][:2] == ["income", "debt"]
    assert shapes["noise"].importance < 0.2 * shapes["age"].importance

    def trend(feature: str) -> float:
        shape = shapes[feature]
        return stats.spearmanr(shape.x[1:], shape.scores["good"][1:]).statistic

    assert trend("income") > 0.9 and trend("age") > 0.9 and trend("debt") < -0.9
    home = dict(zip(shapes["home"].x, shapes["home"].scores["good"], strict=True))
    assert max(home, key=home.get) == "own"
    # the model's accuracy on the held-out rows, computed directly
    held_out = np.sort(
        np.random.default_rng(0).permutation(len(frame))[round(len(frame) * (1 - HELD_OUT)) :]
    )
    predicted = model.predict(data.values[held_out], "probability").argmax(1)
    direct = (predicted == (frame.Status.to_numpy()[held_out] == "good")).mean()
    assert found.performance["accuracy"]["a"] == pytest.approx(direct)
    assert found.held_out_rows == len(held_out)
    low, high = found.performance["accuracy"]["change_interval"]
    assert low <= found.performance["accuracy"]["change"] <= high


def test_where_the_truth_is_an_interaction_the_model_is_more_accurate(tmp_path):
    """Status is the XOR of two features' signs: no sum of one-feature shapes can tell it."""

    def xor(seed: int):
        frame = applicants(3000, seed=seed)
        return frame.assign(Status=np.where((frame.debt > 0) ^ (frame.noise > 0), "good", "bad"))

    model = train(xor(1), tmp_path / "xor.json")
    found = glass_box(model, read(xor(2), model), seed=0)
    assert not found.would_do
    assert found.verdict.startswith("The model is more accurate than a glass-box model")
    assert found.performance["accuracy"]["a"] > 0.95 > 0.7 > found.performance["accuracy"]["b"]
    assert found.to_dict()["verdict"] == found.verdict


def test_a_small_sample_leaves_it_undecided(model):
    found = glass_box(model, read(applicants(600, seed=3), model), seed=0)
    low, high = found.performance["accuracy"]["change_interval"]
    assert low < -0.01 < 0 < high
    assert found.verdict.startswith("Not decided")
    assert "more held-out rows would tell" in found.verdict


def test_it_needs_labels_and_rows(model):
    data = read(applicants(300, seed=4), model)
    with pytest.raises(WhyboxError, match="needs at least 100 rows; the data has 50"):
        glass_box(model, data.subset(range(50)))
    unlabelled = data.subset(range(300))
    unlabelled.labels = None
    with pytest.raises(WhyboxError, match="needs labels"):
        glass_box(model, unlabelled)
