"""whybox.model_zoo.chunks, and Model.predict evaluating every kind of model in chunks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import predict_only_model
from whybox.model_zoo.chunks import PREDICT_BATCH_BYTES, chunk_slices, rows_per_chunk
from whybox.model_zoo.model import Model
from whybox.model_zoo.wrap import wrap_torch


def test_rows_per_chunk() -> None:
    assert rows_per_chunk(8 * 10) == PREDICT_BATCH_BYTES // 80
    assert rows_per_chunk(100, budget_bytes=1000) == 10
    assert rows_per_chunk(10_000, budget_bytes=1000) == 1  # one row over the budget still runs
    assert rows_per_chunk(0, budget_bytes=1000) == 1000


@pytest.mark.parametrize("n_rows, rows", [(0, 3), (1, 3), (6, 3), (7, 3), (7, 100)])
def test_chunk_slices_cover_every_row_once(n_rows: int, rows: int) -> None:
    slices = list(chunk_slices(n_rows, rows))
    covered = np.concatenate([np.arange(n_rows)[s] for s in slices]) if slices else []
    np.testing.assert_array_equal(covered, np.arange(n_rows))
    assert all(0 < s.stop - s.start <= rows for s in slices)


def counting_model(calls: list[int]) -> Model:
    def predict(X: np.ndarray, space: str) -> np.ndarray:
        calls.append(len(X))
        return X.sum(axis=1)

    return predict_only_model(predict, n_features=4)


def test_predict_chunks_a_models_own_predict() -> None:
    calls: list[int] = []
    X = np.arange(40.0).reshape(10, 4)
    out = counting_model(calls).predict(X, batch_size=4)
    assert calls == [4, 4, 2]
    np.testing.assert_array_equal(out, X.sum(axis=1, keepdims=True))


def test_predict_sizes_chunks_by_the_bytes_of_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    from whybox.model_zoo import model as model_module

    monkeypatch.setattr(model_module, "PREDICT_BATCH_BYTES", 3 * 4 * 8)  # three float64 rows
    calls: list[int] = []
    counting_model(calls).predict(np.zeros((7, 4)))
    assert calls == [3, 3, 1]


def test_predict_of_no_rows() -> None:
    calls: list[int] = []
    assert counting_model(calls).predict(np.zeros((0, 4))).shape == (0, 1) and calls == []
    network = wrap_torch(torch.nn.Linear(4, 3), 4, "logits")
    assert network.predict(np.zeros((0, 4)), "probability").shape == (0, 3)


def test_predict_of_a_network_in_chunks_equals_one_batch() -> None:
    torch.manual_seed(0)
    model = wrap_torch(
        torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)),
        4,
        "logits",
    )
    X = np.random.default_rng(0).normal(size=(50, 4))
    np.testing.assert_allclose(
        model.predict(X, batch_size=7), model.predict(X), rtol=1e-6, atol=1e-7
    )
