"""`whybox shift`: shift.json with every feature's test, the classifier test and, with a
model, its predictions, performance and explanations in both tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from whybox.dashboard.cli.main import main
from whybox.model_zoo import demos


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """Credit applicants split at random; the new ones' incomes raised by half."""
    folder = tmp_path_factory.mktemp("shift")
    frame = pd.read_csv(demos.data_path("credit"))
    order = np.random.default_rng(0).permutation(len(frame))
    frame.iloc[order[:2000]].to_csv(folder / "reference.csv", index=False)
    new = frame.iloc[order[2000:]].copy()
    new["Income"] *= 1.5
    new.to_csv(folder / "new.csv", index=False)
    return folder


def test_shift_names_the_moved_feature_and_the_models_view(shifted, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    command = ["shift", str(shifted / "reference.csv"), str(shifted / "new.csv")]
    command += ["--model", "demo:credit-xgboost", "--label", "Status", "--out", str(out)]
    assert main(command) == 0
    said = capsys.readouterr().out
    assert "shift found in 1 of 13 features (Income)" in said and "AUC" in said
    record = json.loads((out / "shift.json").read_text())
    assert record["shifted"] and record["features"][0]["feature"] == "Income"
    assert [f["feature"] for f in record["features"] if f["shifted"]] == ["Income"]
    assert record["classifier"]["shifted"]
    assert next(iter(record["classifier"]["importance"])) == "Income"
    view = record["model"]["shift"]
    assert view["output"] == "probability of class 'good'"
    assert view["predictions"]["shifted"] is False  # not part of the tested family
    assert view["predictions"]["p_value"] < 1e-6  # richer applicants: higher scores
    accuracy = view["performance"]["accuracy"]
    assert accuracy["interval"][0] <= accuracy["change"] <= accuracy["interval"][1]
    assert view["attributions"]["method"] == "tree-shap"
    assert set(view["attributions"]["features"]) == set(record["data"]["features"])


def test_shift_without_a_model_and_a_too_small_reference(shifted, tmp_path, capsys) -> None:
    small = tmp_path / "small.csv"
    pd.read_csv(shifted / "reference.csv").head(10).to_csv(small, index=False)
    out = tmp_path / "out"
    assert main(["shift", str(small), str(shifted / "new.csv"), "--out", str(out)]) == 2
    assert "the reference has 10 row(s); a shift test needs at least 20" in capsys.readouterr().err
    assert not out.exists()
    assert main(["shift", "demo:credit", "demo:credit", "--out", str(out)]) == 0
    assert "no feature shifted" in capsys.readouterr().out
    record = json.loads((out / "shift.json").read_text())
    assert record["model"] is None and not record["shifted"]
