"""The benchmark suite's plumbing, on a tiny workload: records and errors, never timings."""

import json
from dataclasses import asdict

import pytest

from benchmarks.common import table
from benchmarks.shift import shift_suite
from benchmarks.tabular import exact_block

FIELDS = (
    "workload",
    "ours",
    "peer",
    "ours_s",
    "peer_s",
    "speedup",
    "ours_error",
    "peer_error",
    "device",
)


def test_exact_workload_end_to_end():
    records = exact_block(n_features=8, rows=2, background=5, repeat=1)
    assert [(r.ours, r.peer) for r in records] == [("exact-shapley", "shap.ExactExplainer")]
    record = json.loads(json.dumps([asdict(r) for r in records]))[0]
    assert set(FIELDS) <= set(record)
    assert record["device"] in ("cpu", "cuda")
    # Both exact methods agree with the closed-form reference of the block network.
    assert 0 <= record["ours_error"] < 1e-5
    assert 0 <= record["peer_error"] < 1e-5
    assert record["ours_s"] > 0 and record["peer_s"] > 0
    assert record["speedup"] == pytest.approx(record["peer_s"] / record["ours_s"])
    assert record["efficiency"] > 0
    assert "exact-shapley" in table(records).splitlines()[2]


@pytest.mark.slow
def test_shift_workload_end_to_end():
    """The shift suite on tiny tables: each side runs in its own process and reports back."""
    records = shift_suite(reference_rows=400, rows=400, typicality_rows=200, repeat=1)
    assert len(records) == 9
    assert [r.peer for r in records[:2]] == [
        "pandas.read_parquet x2",
        "scipy ks_2samp + chi2_contingency + Holm, by hand",
    ]
    assert "Evidently" in records[4].peer and records[4].note.startswith("Evidently")
    for record in records:
        assert record.ours_s > 0 and record.device == "cpu"
        if record.peer_s is not None:
            assert record.speedup == pytest.approx(record.peer_s / record.ours_s)
    # Same tests on the same columns: p-values differ only where scipy's default is exact.
    assert 0 <= records[1].ours_error < 0.05
    assert "decisions" in records[1].note
    assert "peak RSS whybox" in records[3].note
    assert "planted outliers" in records[5].note and "Spearman" in records[7].note
    assert "shift" in table(records)


@pytest.mark.slow
def test_versions_workload_end_to_end():
    """The version-diff suite on tiny tables: every stage against its hand-scripted peer."""
    from benchmarks.versions import versions_suite

    records = versions_suite(
        tree_rows=2_000, mlp_rows=1_000, trees=20, depth=3, training_rows=2_000, repeat=1
    )
    assert any("the whole diff" in r.workload for r in records)
    for record in records:
        assert record.ours_s > 0
        if record.peer_s is not None:
            assert record.speedup == pytest.approx(record.peer_s / record.ours_s)
    performance = [r for r in records if "measuring performance" in r.workload]
    assert performance and all(r.ours_error < 1e-6 for r in performance)  # same intervals
