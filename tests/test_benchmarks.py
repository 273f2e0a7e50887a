"""The benchmark suite's plumbing, on a tiny workload: records and errors, never timings."""

import json
from dataclasses import asdict

import pytest

from benchmarks.common import table
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
