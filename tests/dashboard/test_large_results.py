"""A large explanation costs the server one copy of its arrays: it comes back from a worker
through a file read straight into place, and its `data` is a view of the session's table."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pandas as pd

from whybox.dashboard.app.session import with_rows
from whybox.dashboard.jobs.rebuild import _Kept
from whybox.dashboard.jobs.worker import SPILL_BYTES, Spilled, spilled
from whybox.explainers import Explanation
from whybox.model_zoo import Dataset


def explanation_of(data: np.ndarray, start: int = 0) -> Explanation:
    rows, features = data.shape
    return Explanation(
        values=np.random.default_rng(0).standard_normal((rows, features)),
        base_values=np.zeros(rows),
        data=data.copy(),
        predictions=np.zeros(rows),
        feature_names=[f"x{j}" for j in range(features)],
        output_names=["y"],
        target=np.zeros(rows, dtype=np.int64),
        output_space="raw",
        method="test",
        params={},
        seed=0,
        device="cpu",
        rows=np.arange(start, start + rows),
    )


def table(rows: int, features: int) -> Dataset:
    values = np.random.default_rng(1).standard_normal((rows, features))
    frame = pd.DataFrame(values, columns=[f"x{j}" for j in range(features)])
    return Dataset(frame=frame, sha256="test")


def test_a_small_result_travels_as_it_is() -> None:
    small = explanation_of(np.ones((10, 3)))
    assert spilled(small) is small


def test_a_large_result_is_read_back_whole_and_its_file_removed() -> None:
    rows = SPILL_BYTES // (2 * 8 * 20) + 1_000  # values and data together over the threshold
    large = explanation_of(table(rows, 20).values)
    sent = spilled(large)
    assert isinstance(sent, Spilled) and len(sent.header) < 10_000
    back = pickle.loads(pickle.dumps(sent)).load()  # as it crosses the pipe
    assert not os.path.exists(sent.path)
    np.testing.assert_array_equal(back.values, large.values)
    np.testing.assert_array_equal(back.data, large.data)
    assert back.feature_names == large.feature_names


def test_the_rows_put_back_are_a_view_of_the_table_or_a_copy_of_scattered_rows() -> None:
    data = table(100, 4)
    sent = explanation_of(np.empty((0, 4)), start=10)
    sent.rows = np.arange(10, 60)
    own = with_rows(sent, data)
    assert np.shares_memory(own.data, data.frame.to_numpy())
    np.testing.assert_array_equal(own.data, data.values[10:60])
    sent.rows = np.array([7, 3, 50])
    np.testing.assert_array_equal(with_rows(sent, data).data, data.values[[7, 3, 50]])


def test_edited_rows_stay_the_explanations_own() -> None:
    data = table(100, 4)
    edited = data.values[10:60].copy()
    edited[3, 2] = 99.0
    kept = with_rows(explanation_of(edited, start=10), data)
    assert not np.shares_memory(kept.data, data.frame.to_numpy())
    assert kept.data[3, 2] == 99.0


def test_a_worker_keeps_large_tables_within_its_budget() -> None:
    kept = _Kept(4, weight=len, budget=10)
    for key, size in (("a", 3), ("b", 3), ("c", 3), ("d", 8)):
        kept.get(key, lambda size=size: "x" * size)
    assert list(kept.items) == ["d"]  # 8 + 3 is over 10: the older ones went
    kept.get("e", lambda: "x" * 20)
    assert list(kept.items) == ["e"]  # the latest stays, over budget or not
    kept.get("f", lambda: "x")
    assert list(kept.items) == ["f"]


def test_csv_files_written_a_chunk_at_a_time_equal_one_write(tmp_path, monkeypatch) -> None:
    """attributions.csv and inputs.csv are written in chunks of rows, so a million rows never
    sit in memory as a frame and as text; the files are those of one frame written whole."""
    from whybox.dashboard.runs import outputs

    data = np.random.default_rng(1).standard_normal((1000, 4))
    explanation = explanation_of(data)
    explanation.categories = {"x1": ["low", "=high"]}
    explanation.data[:, 1] = np.arange(1000) % 2
    ids = pd.Series([f"id-{i}" for i in range(1000)])
    typicality = [
        {"typicality": i / 1000, "outside": i % 3 == 0, "reasons": [f"x0 = {i}"]}
        for i in range(1000)
    ]
    whole = outputs.write_attributions(explanation, tmp_path, ids, "key", typicality)
    expected = {name: (tmp_path / name).read_bytes() for name in whole}
    monkeypatch.setattr(outputs, "CSV_CHUNK_BYTES", 7 * explanation.values[:1].nbytes)
    chunked = tmp_path / "chunked"
    chunked.mkdir()
    assert outputs.write_attributions(explanation, chunked, ids, "key", typicality) == whole
    assert {name: (chunked / name).read_bytes() for name in whole} == expected
    frame = pd.read_csv(chunked / "attributions.csv")
    assert list(frame.columns[:2]) == ["row", "key"] and len(frame) == 1000
    assert frame["unusual_because"].iloc[3] == "x0 = 3" and pd.isna(
        frame["unusual_because"].iloc[1]
    )
    inputs = pd.read_csv(chunked / "inputs.csv")
    assert list(inputs["x1"][:2]) == ["low", "'=high"]
