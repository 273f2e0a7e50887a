"""--reference on `whybox explain`: each explained row's typicality in attributions.csv,
run.json and the report; bad references refused before any work."""

from __future__ import annotations

import json
import re
from html import unescape

import pandas as pd
import pytest

from whybox.dashboard import settings
from whybox.dashboard.cli.main import main
from whybox.model_zoo import demos


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tables")
    frame = pd.read_csv(demos.data_path("credit"))
    frame.iloc[:3000].to_csv(folder / "reference.csv", index=False)
    new = frame.iloc[3000:3012].copy()
    new.loc[new.index[0], "Income"] = 5000.0  # far above every reference income
    new.to_csv(folder / "new.csv", index=False)
    return folder


def explain(tables, tmp_path, *extra: str) -> int:
    command = ["explain", "demo:credit-xgboost", str(tables / "new.csv"), "--label", "Status"]
    command += ["--explainer", "tree-shap", "--out", str(tmp_path / "run")]
    command += ["--store", str(tmp_path / "store.db"), *extra]
    return main(command)


def test_typicality_in_the_csv_the_record_and_the_report(tables, tmp_path, capsys) -> None:
    page = tmp_path / "report.html"
    reference = str(tables / "reference.csv")
    assert explain(tables, tmp_path, "--reference", reference, "--report", str(page)) == 0
    attributions = pd.read_csv(tmp_path / "run" / "attributions.csv")
    assert list(attributions.columns[-2:]) == ["typicality", "unusual_because"]
    outside = attributions["typicality"] < settings.TYPICALITY_DEFAULT
    said = capsys.readouterr().out
    assert f"{outside.sum()} of 12 rows are outside the reference" in said
    assert outside[0] and outside.sum() < 6
    first = attributions.iloc[0]
    assert first["unusual_because"].startswith("Income = 5000 is above every reference value")
    assert attributions["unusual_because"][~outside].isna().all()  # said of outside rows only
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    typical = record["typicality"]
    assert typical["reference"]["rows"] == 3000 and typical["threshold"] == 0.01
    assert [row["outside"] for row in typical["rows"]] == outside.tolist()
    text = unescape(page.read_text())
    assert "fewer than 1 % of reference rows are this unusual; outside the training data" in text
    assert "Unlike the reference: Income = 5000 is above every reference value" in text
    assert "Typicality against the reference reference.csv (3,000 rows" in text


def test_the_operators_threshold_marks_more_rows(tables, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(settings.TYPICALITY_ENV, "0.9")
    assert explain(tables, tmp_path, "--reference", str(tables / "reference.csv")) == 0
    outside = int(capsys.readouterr().out.split("\n")[1].split(" of ")[0])
    assert outside >= 10  # most rows are below 0.9
    monkeypatch.setenv(settings.TYPICALITY_ENV, "2")
    assert explain(tables, tmp_path, "--reference", str(tables / "reference.csv")) == 2
    assert "WHYBOX_TYPICALITY_THRESHOLD='2' is not a share" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda f: f.drop(columns=["Income", "Debt"]),
            "lacks the data's column(s) 'Income', 'Debt'",
        ),
        (lambda f: f.head(10), "the reference has 10 row(s); typicality needs at least 50"),
        (
            lambda f: f.assign(Debt=float("nan")),
            "in the reference 'bad.csv': column(s) 'Debt' are empty",
        ),
        (
            lambda f: f.assign(Income=["abc"] + list(f["Income"].iloc[1:])),
            "in the reference 'bad.csv': non-numeric values in column(s) 'Income' ('abc' in row 0",
        ),
    ],
)
def test_a_bad_reference_is_one_line_before_any_work(tables, tmp_path, capsys, change, message):
    bad = tmp_path / "bad.csv"
    change(pd.read_csv(tables / "reference.csv")).to_csv(bad, index=False)
    assert explain(tables, tmp_path, "--reference", str(bad)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_extra_reference_columns_are_ignored_with_a_note(tables, tmp_path) -> None:
    wider = tmp_path / "wider.csv"
    pd.read_csv(tables / "reference.csv").assign(branch="north").to_csv(wider, index=False)
    assert explain(tables, tmp_path, "--reference", str(wider)) == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    notes = record["typicality"]["reference"]["notes"]
    assert any("ignored reference column(s) the data does not have: 'branch'" in n for n in notes)


def test_images_get_typicality_in_the_networks_own_features(tmp_path, capsys) -> None:
    """Noise, blank frames and letters against the digits the CNN learned from: flagged,
    while the CNN still answers them with confidence; real unseen digits mostly are not."""
    command = ["explain", "demo:digits-cnn", "demo:digits-unusual", "--explainer", "saliency"]
    command += ["--reference", "demo:digits-training", "--store", str(tmp_path / "s.db")]
    assert (
        main([*command, "--out", str(tmp_path / "odd"), "--report", str(tmp_path / "r.html")]) == 0
    )
    index = pd.read_csv(tmp_path / "odd" / "attributions_index.csv")
    assert (index["typicality"] < settings.TYPICALITY_DEFAULT).mean() >= 0.8
    record = json.loads((tmp_path / "odd" / "run.json").read_text())
    assert "penultimate features" in record["typicality"]["method"]
    assert record["typicality"]["rows"][0]["reasons"][0].startswith("the model still gives class")
    assert "Unlike the reference: the model still gives class" in unescape(
        (tmp_path / "r.html").read_text()
    )
    command[2] = "demo:digits"
    assert main([*command, "--out", str(tmp_path / "digits"), "--rows", "0:100"]) == 0
    index = pd.read_csv(tmp_path / "digits" / "attributions_index.csv")
    assert (index["typicality"] < settings.TYPICALITY_DEFAULT).mean() <= 0.1


def test_the_age_split_demo_flags_the_young_and_names_coded_values(tmp_path, capsys) -> None:
    """Applicants under 30 against a reference of those 30 and over: the youngest are
    extrapolations, and coded columns (Home, Marital) read by the demo dictionary's names."""
    command = ["explain", "demo:credit-xgboost", "demo:credit-under-30", "--rows", "0:200"]
    command += ["--reference", "demo:credit-30-and-over", "--explainer", "tree-shap"]
    assert main([*command, "--out", str(tmp_path / "run"), "--store", str(tmp_path / "s")]) == 0
    attributions = pd.read_csv(tmp_path / "run" / "attributions.csv")
    inputs = pd.read_csv(tmp_path / "run" / "inputs.csv")
    young = inputs["Age"] <= 25
    assert (attributions["typicality"][young] < settings.TYPICALITY_DEFAULT).mean() >= 0.9
    said = " ".join(attributions["unusual_because"].dropna())
    assert "is below every reference value (the smallest is 30)" in said
    assert re.search(r"(Home|Marital) = [a-z]+ appears in", said), said
    assert not re.search(r"(Home|Marital|Records|Job) = \d", said)
