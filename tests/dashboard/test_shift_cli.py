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
    assert main([*command, "--report", str(tmp_path / "shift.html")]) == 0
    said = capsys.readouterr().out
    assert "Shift found in 1 of 13 features: Income." in said and "AUC" in said
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
    page = (tmp_path / "shift.html").read_text()
    assert "Shift found in 1 of 13 features: Income." in page
    assert page.index("<td>Income</td>") < page.index("<td>Seniority</td>")
    assert page.count('class="chart"') == 10 + 1 + 2  # histograms, classifier, model view


def test_the_shift_report_escapes_names_and_refuses_bad_options(shifted, tmp_path, capsys):
    hostile = "<script>alert(1)</script>"
    for name in ("reference", "new"):
        frame = pd.read_csv(shifted / f"{name}.csv").rename(columns={"Debt": hostile})
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    command = ["shift", str(tmp_path / "reference.csv"), str(tmp_path / "new.csv")]
    command += ["--out", str(tmp_path / "out"), "--report"]
    assert main([*command, str(tmp_path / "shift.docx")]) == 2
    assert "cannot tell the report format" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main([*command, str(tmp_path / "shift.html")]) == 0
    page = (tmp_path / "shift.html").read_text()
    assert hostile not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_shift_without_a_model_and_a_too_small_reference(shifted, tmp_path, capsys) -> None:
    small = tmp_path / "small.csv"
    pd.read_csv(shifted / "reference.csv").head(10).to_csv(small, index=False)
    out = tmp_path / "out"
    assert main(["shift", str(small), str(shifted / "new.csv"), "--out", str(out)]) == 2
    assert "the reference has 10 row(s); a shift test needs at least 20" in capsys.readouterr().err
    assert not out.exists()
    assert main(["shift", "demo:credit", "demo:credit", "--out", str(out)]) == 0
    assert "No feature shifted (Holm-corrected at 0.05)." in capsys.readouterr().out
    record = json.loads((out / "shift.json").read_text())
    assert record["model"] is None and not record["shifted"]


def test_the_age_split_demo_tests_coded_columns_as_named_categories(tmp_path, capsys) -> None:
    """The demo dictionary names Home, Marital, Records and Job codes: chi-squared on the
    names; the loan's term (Time) does not move between the age groups."""
    out = tmp_path / "out"
    assert (
        main(["shift", "demo:credit-30-and-over", "demo:credit-under-30", "--out", str(out)]) == 0
    )
    record = json.loads((out / "shift.json").read_text())
    by_name = {f["feature"]: f for f in record["features"]}
    assert record["features"][0]["feature"] == "Age"
    marital = by_name["Marital"]
    assert marital["test"] == "chi-squared" and "single" in marital["histogram"]["categories"]
    assert by_name["Time"]["test"] == "Kolmogorov-Smirnov" and not by_name["Time"]["shifted"]
    assert "Shift found in" in capsys.readouterr().out
