"""The benchmark suite's plumbing, on a tiny workload: records and errors, never timings."""

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context

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


@pytest.mark.slow
def test_quality_workload_end_to_end():
    """The quality-metrics suite on a tiny network, 2 images and 20 rows: every metric's
    row, whybox's and Quantus's times, and both ratios finite."""
    import math

    from benchmarks.quality import QualityRecord, quality_suite, ratios_table

    records = quality_suite(n_images=2, side=32, rows=20, classes=10, ig_steps=8)
    metrics = [
        "explanation",
        "deletion + insertion vs random orders",
        "deletion + insertion curves",
        "faithfulness correlation",
        "assess(CHEAP)",
        "max-sensitivity",
        "randomisation",
        "randomisation",
    ]
    for prefix in ("ResNet-18 32x32, 2 images, saliency", "credit MLP, 20 rows"):
        rows = [r for r in records if r.workload.startswith(prefix)]
        assert len(rows) == len(metrics)
        for record, metric in zip(rows, metrics, strict=True):
            assert isinstance(record, QualityRecord)
            assert record.workload.split(": ", 1)[1].startswith(metric)
            assert record.ours_s > 0 and math.isfinite(record.ours_per_explanation)
            if metric == "explanation":
                assert record.peer_s is None
                continue
            assert record.peer.startswith("quantus.") and record.peer_s > 0
            assert record.speedup == pytest.approx(record.peer_s / record.ours_s)
            assert math.isfinite(record.speedup) and math.isfinite(record.peer_per_explanation)
    assert [r.peer for r in records if r.workload.endswith("randomisation")][:2] == [
        "quantus.MPRT skip_layers=True",
        "quantus.MPRT, every layer",
    ]
    lines = ratios_table(records).splitlines()
    assert len(lines) == 2 + len(records)
    assert "nan" not in "\n".join(lines)
    assert len(table(records).splitlines()) == 2 + len(records)


@pytest.mark.slow
def test_scale_workloads_end_to_end():
    pytest.importorskip("ray", reason="whybox[ray] is installed by `make test`")
    from benchmarks.scale import ray_scaling, streaming

    # In a fresh process: Ray caches the token of a cluster joined earlier in this one (the
    # tests' own cluster), and a new local runtime would then refuse it.
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as fresh:
        records = fresh.submit(ray_scaling, rows=40, partition_rows=10, samples=64).result()
    assert [r.ours for r in records] == ["Ray, 1 worker", "Ray, 2 workers"]
    assert all(r.ours_error == 0 and r.peer == "one process" for r in records)
    assert "x one Ray worker" in records[1].note and "rows/s" in records[0].note
    streamed = streaming(rows=5_000, n_features=8, trees=3, depth=3)
    assert streamed.workload.startswith("whybox explain --stream: 5,000 rows x 8 features")
    assert "peak resident memory" in streamed.note and streamed.ours_s > 0


@pytest.mark.slow
def test_recourse_workload_end_to_end(capsys):
    """whybox's recourse beside DiCE's three methods on a few declined rows: one record per
    DiCE run, ours never breaking a rule, the table printed side by side."""
    from benchmarks.recourse import recourse_suite

    records = recourse_suite(rows=3, kdtree_rows=1, row_limit_s=20)
    assert [r.peer for r in records][:2] == [
        "DiCE random (immutable and ranges only)",
        "DiCE random (each rule it can take, per row)",
    ]
    assert len(records) == 6
    for record in records:
        assert record.ours == "RecourseSearch" and record.ours_s > 0
        assert record.ours_error == 0  # every shown counterfactual valid and within the rules
    printed = capsys.readouterr().out
    assert "whybox RecourseSearch" in printed and "DiCE genetic" in printed
