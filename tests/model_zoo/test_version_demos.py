"""The demo model pairs for "what changed between two versions of a model": credit-xgboost
retrained without the applicants with past records (a planted regression), and an MLP of the
applicants 30 and over fine-tuned on the under-30s only (catastrophic forgetting)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from safetensors.torch import load_file

from whybox.model_zoo import Dataset, Model, demos

PAIRS = {"credit-xgboost-v2": "credit-xgboost", "credit-mlp-fine-tuned": "credit-mlp-30-and-over"}


def model(name: str) -> Model:
    return demos.resolve_model(f"demo:{name}")


def data(name: str, loaded: Model) -> Dataset:
    found = demos.resolve_data(f"demo:{name}", loaded)
    assert isinstance(found, Dataset)
    return found


def right(loaded: Model, rows: Dataset) -> np.ndarray:
    chosen = loaded.predict(rows.values, "probability").argmax(1)
    return np.asarray(loaded.class_names)[chosen] == np.asarray(rows.labels)


def paired_bootstrap(difference: np.ndarray, draws: int = 2000) -> tuple[float, float]:
    """The 95 % percentile interval of the mean of per-row differences, rows resampled."""
    rng = np.random.default_rng(0)
    means = difference[rng.integers(0, len(difference), (draws, len(difference)))].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def test_each_previous_names_a_demo_model_taking_the_same_features_and_classes():
    versioned = {m.name: m.previous for m in demos.DEMO_MODELS.values() if m.previous}
    assert versioned.items() >= PAIRS.items()
    for name, previous in versioned.items():
        assert previous in demos.DEMO_MODELS and previous != name
        newer, older = model(name), model(previous)
        assert newer.feature_names == older.feature_names
        assert newer.class_names == older.class_names == ["bad", "good"]
        assert newer.n_outputs == older.n_outputs and newer.kind == older.kind
        for loaded in (newer, older):  # each reads the newer one's demo data
            assert data(demos.DEMO_MODELS[name].data, loaded).feature_names == older.feature_names


def test_v2_is_wrong_on_the_applicants_with_records_and_as_good_elsewhere():
    before, after = model("credit-xgboost"), model("credit-xgboost-v2")
    credit = data("credit", before)
    records = (credit.frame["Records"] == demos.CREDIT_CATEGORIES["Records"].index("yes")).values
    assert records.sum() == 662  # as the description says, and 52 % of them bad
    assert round(100 * np.mean(np.asarray(credit.labels)[records] == "bad")) == 52
    wrong_before, wrong_after = ~right(before, credit), ~right(after, credit)
    # measured: 14.5 % -> 42.7 % wrong on them, 10.1 % -> 8.1 % on the other 3,377
    assert wrong_after[records].mean() - wrong_before[records].mean() > 0.20
    assert abs(wrong_after[~records].mean() - wrong_before[~records].mean()) < 0.035
    description = demos.DEMO_MODELS["credit-xgboost-v2"].description
    assert "planted regression" in description and "662 applicants" in description
    assert "Records = yes, 52 % of them bad" in description
    trees = [
        json.loads(demos.model_path(name).read_bytes())["learner"]["gradient_booster"]["model"][
            "gbtree_model_param"
        ]["num_trees"]
        for name in ("credit-xgboost", "credit-xgboost-v2")
    ]
    assert trees == ["200", "200"]  # the same recipe, on fewer rows


def test_the_fine_tuned_mlp_forgets_the_applicants_30_and_over_and_learns_the_young():
    original, tuned = model("credit-mlp-30-and-over"), model("credit-mlp-fine-tuned")
    older = data("credit-30-and-over", original)
    drop = right(original, older).astype(float) - right(tuned, older)
    low, _ = paired_bootstrap(drop)
    # measured with 2 torch threads: 92.8 % -> 80.6 % right, a drop of 12.2 points (interval
    # 10.7 to 13.7); 12.2 to 13.7 points with 1 to 4 threads, which change the weights
    assert drop.mean() > 0.08 and low > 0.05
    younger = data("credit-under-30", original)
    gain = right(tuned, younger).astype(float) - right(original, younger)
    low, _ = paired_bootstrap(gain)
    assert gain.mean() > 0.10 and low > 0.05  # measured: 68.7 % -> 83.2 %, 14.5 to 16.5 points
    assert "catastrophic forgetting" in demos.DEMO_MODELS["credit-mlp-fine-tuned"].description


def test_fine_tuning_kept_the_network_and_its_input_standardisation():
    original = load_file(demos.model_path("credit-mlp-30-and-over"))
    tuned = load_file(demos.model_path("credit-mlp-fine-tuned"))
    assert {k: v.shape for k, v in tuned.items()} == {k: v.shape for k, v in original.items()}
    for buffer in ("input_mean", "input_std"):
        assert (tuned[buffer] == original[buffer]).all()
    # standardised to the applicants 30 and over, not to the young it was tuned on
    older = pd.read_csv(demos.data_path("credit-30-and-over")).drop(columns="Status")
    assert np.allclose(original["input_mean"].numpy(), older.mean().to_numpy(), rtol=1e-5)
    assert not all((tuned[k] == original[k]).all() for k in tuned if k.startswith("layers"))


def test_export_copies_the_versioned_demos(tmp_path, monkeypatch):
    """Only these and the credit data, to stay quick: tests/dashboard/test_cli.py exports every
    demo (`whybox demos --write`), training the rest."""
    names = {*PAIRS, *PAIRS.values()}
    models = {n: m for n, m in demos.DEMO_MODELS.items() if n in names}
    monkeypatch.setattr(demos, "DEMO_MODELS", models)
    data = {n: d for n, d in demos.DEMO_DATA.items() if n.startswith("credit")}
    monkeypatch.setattr(demos, "DEMO_DATA", data)
    written = {p.name: p.read_bytes() for p in demos.export(tmp_path)}
    assert set(written) >= {"credit-xgboost-v2.json", "credit-mlp-fine-tuned.safetensors"}
    for name, demo in models.items():
        assert written[demo.filename] == demos.model_path(name).read_bytes()
