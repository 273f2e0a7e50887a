"""`Explainer.explain`'s own work, whatever the method: rows, targets and predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_dataset, predict_only_model
from whybox.explainers.base import Explainer
from whybox.explainers.gradients import Saliency
from whybox.explainers.testing import image_set, patch_images, patch_model
from whybox.model_zoo import Dataset, Model


@pytest.mark.parametrize(
    ("rows", "view"),
    [(None, True), (slice(3, 9), True), (range(5, 6), True), ([4, 2, 7], False)],
)
def test_consecutive_rows_are_a_view_of_the_data_not_a_copy(
    binary_mlp: Model, dataset: Dataset, rows, view: bool
) -> None:
    explanation = Saliency().explain(binary_mlp, dataset, rows=rows)
    assert np.shares_memory(explanation.data, dataset.values) == view
    np.testing.assert_array_equal(explanation.data, dataset.values[explanation.rows])
    alone = Saliency().explain(binary_mlp, dataset, rows=[int(explanation.rows[-1])])
    np.testing.assert_allclose(explanation.values[-1], alone.values[0], rtol=1e-6)


class _Scribbler(Explainer):
    """A careless plugin that writes into the rows it was given."""

    name = "scribbler"
    modalities = ("tabular", "image")

    def _explain(self, *, model, X, targets, output_space, **_):
        X[:] = 0
        return self.new_explanation(model, X, targets, output_space, np.zeros(X.shape), 0.0)


@pytest.mark.parametrize("modality", ["tabular", "image"])
def test_an_explainer_cannot_change_the_users_data(
    binary_mlp: Model, dataset: Dataset, modality: str
) -> None:
    if modality == "image":  # an image set's array is writable; the view given out is not
        model, dataset = patch_model(), image_set(patch_images(3)[0])
    else:
        model = binary_mlp
    before = dataset.values.copy()
    with pytest.raises(ValueError, match="read-only"):
        _Scribbler().explain(model, dataset)
    np.testing.assert_array_equal(dataset.values, before)


class _Nothing(Explainer):
    name = "nothing"

    def _explain(self, *, model, X, targets, output_space, **_):
        return self.new_explanation(model, X, targets, output_space, np.zeros(X.shape), 0.0)


def test_predictions_are_made_in_chunks_of_bounded_size() -> None:
    """A model's own predict may copy or widen what it is given: 1,030 rows of 8,192
    features (66 MiB) go to it in more than one call, none over 64 MiB."""
    n_features, n_rows = 8192, 1030
    calls: list[int] = []

    def predict(X: np.ndarray, space: str) -> np.ndarray:
        calls.append(X.nbytes)
        return X[:, :1]

    model = predict_only_model(predict, n_features)
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(n_rows, n_features)))
    data = make_dataset(frame.rename(columns=str))
    explanation = _Nothing().explain(model, data)
    assert len(calls) > 1 and max(calls) <= 2**26 and sum(calls) == data.values.nbytes
    np.testing.assert_array_equal(explanation.predictions, data.values[:, 0])
