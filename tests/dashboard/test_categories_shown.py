"""Categorical columns by name in reasons, charts and reports, never as codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from html import escape
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from tests.model_zoo.categorical import explained_csv, skops_pipeline
from whybox.dashboard.reports import charts, report
from whybox.dashboard.reports.dictionary import with_dictionary
from whybox.dashboard.reports.reasons import decide
from whybox.dashboard.reports.values import row_notes, value_text, value_texts
from whybox.dashboard.reports.wording import reasons
from whybox.dashboard.runs.records import Run, load_run, save_run
from whybox.explainers.shapley import ExactShapley
from whybox.model_zoo import load_data, load_model

HOSTILE = "<b>rent</b>"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    """The one-hot pipeline on the raw CSV (an empty cell, an NA, an unseen 'boat')."""
    raw, _ = skops_pipeline("one-hot")
    model = load_model(raw, name="pipeline.skops")
    data = load_data(explained_csv(), model, name="data.csv")
    explanation = ExactShapley(background=len(data), output_space="probability").explain(
        model, data, target=1
    )
    out = tmp_path_factory.mktemp("run")
    save_run(model, data, explanation, out, command=["whybox", "explain", "test"])
    return load_run(out)


def test_the_explanation_carries_the_datas_categories_through_the_run_record(run):
    explanation = run.explanation
    assert set(explanation.categories) == {"home", "status"}
    assert explanation.categories["home"] == ["mortgage", "own", "rent", "boat"]
    j = explanation.feature_names.index("home")
    shown = [value_text(explanation, "home", v) for v in explanation.data[:, j]]
    assert shown[:4] == ["own", "rent", "mortgage", "boat"]
    status = explanation.feature_names.index("status")
    assert value_text(explanation, "status", explanation.data[2, status]) == "missing"
    assert value_text(explanation, "age", explanation.data[0, 0]) == "30"
    for j, feature in enumerate(explanation.feature_names):  # the charts' many-row form
        column = explanation.data[:, j]
        assert value_texts(explanation, feature, column) == [
            value_text(explanation, feature, v) for v in column
        ]


def test_reasons_and_decisions_name_categories(run):
    explanation = run.explanation
    words = " ".join(reasons(explanation, 1, k=4))
    assert re.search(r"home = rent (raised|lowered)", words)
    assert not re.search(r"home = \d", words)
    decision = decide(explanation, 1, favourable="0", predicted_class="1", k=4)
    home = [r for r in decision.reasons + decision.flagged if r.feature == "home"]
    assert all(r.shown == "rent" and "home = rent" in r.statement for r in home)


def test_charts_show_categories_by_name(run):
    explanation = run.explanation
    figure = charts.dependence(explanation, "home")
    assert isinstance(figure.data[0], go.Box)
    assert set(figure.data[0].x) == {"own", "rent", "mortgage", "boat"}
    assert list(figure.layout.xaxis.categoryarray) == ["mortgage", "own", "rent", "boat"]
    labels = list(charts.waterfall(explanation, 1).data[0].y)
    assert "home = rent" in labels


def test_dependence_colours_by_a_category_or_a_number_on_either_kind_of_axis(run):
    explanation = run.explanation
    age, home = (explanation.feature_names.index(f) for f in ("age", "home"))
    by_home = charts.dependence(explanation, "age", color_by="home")
    assert [t.name for t in by_home.data] == ["mortgage", "own", "rent", "boat"]
    assert by_home.layout.legend.title.text == "home"
    assert all(t.showlegend for t in by_home.data) and "(colour: home)" in by_home.layout.title.text
    rent = by_home.data[2]
    assert set(rent.customdata[:, 2]) == {"rent"}
    np.testing.assert_array_equal(  # each point at its row's age and attribution
        np.sort(rent.y), np.sort(explanation.values[explanation.data[:, home] == 2, age])
    )
    box, points = charts.dependence(explanation, "home", color_by="age").data
    assert isinstance(box, go.Box) and points.xaxis == "x2"
    np.testing.assert_allclose(points.marker.color, explanation.data[:, age])
    np.testing.assert_allclose(points.y, explanation.values[:, home])
    order = list(box.x)  # points sit within their category's slot on the hidden axis
    slots = [
        list(charts.dependence(explanation, "home").layout.xaxis.categoryarray).index(v)
        for v in order
    ]
    assert np.all(np.abs(points.x - np.array(slots)) <= 0.3 + 1e-9)
    assert list(points.customdata[:, 1]) == order
    by_status = charts.dependence(explanation, "home", color_by="status").data
    assert {t.name for t in by_status[1:]} == {"missing", *explanation.categories["status"]}


def test_category_names_from_an_upload_are_escaped_in_charts_and_reports(run):
    explanation = run.explanation
    renamed = dict(explanation.categories, home=["mortgage", "own", HOSTILE, "boat"])
    hostile = Run(run.directory, run.record, replace(explanation, categories=renamed))
    figure = charts.dependence(hostile.explanation, "home")
    assert "&lt;b&gt;rent&lt;/b&gt;" in figure.data[0].x
    assert "home = &lt;b&gt;rent&lt;/b&gt;" in list(
        charts.waterfall(hostile.explanation, 1).data[0].y
    )
    page = report.report_bytes(hostile, "html").decode()
    assert HOSTILE not in page
    assert "home = rent" in report.report_bytes(run, "html").decode()


def test_dictionary_labels_and_names_from_an_upload_are_escaped(run):
    marked = "<i>x</i>"
    dictionary = {
        "home": {"label": f"{marked} home", "values": {"rent": marked}},
        "age": {"unit": marked, "description": marked},
    }
    hostile = replace(run, explanation=with_dictionary(run.explanation, dictionary))
    labels = list(charts.waterfall(hostile.explanation, 1).data[0].y)
    assert "&lt;i&gt;x&lt;/i&gt; home = &lt;i&gt;x&lt;/i&gt;" in labels
    assert "&lt;i&gt;x&lt;/i&gt;" in charts.dependence(hostile.explanation, "home").data[0].x
    page = report.report_bytes(hostile, "html").decode()
    assert marked not in page and "&lt;i&gt;x&lt;/i&gt; home" in page
    sentence = reasons(hostile.explanation, 1, k=4)
    assert any(s.startswith(r"\<i\>x\</i\> home = \<i\>x\</i\>") for s in sentence), sentence


@pytest.mark.parametrize(
    ("model", "data", "category"),
    [
        (
            "credit-pipeline",
            "credit-text",
            r"(Home|Marital status|Records|Job) = [a-z]",
        ),
        ("indomethacin-pipeline", "indomethacin", r"(gender|site|rx) = [a-zA-Z]"),
    ],
)
def test_the_pipeline_demos_explain_text_columns_by_name(tmp_path, model, data, category):
    whybox = str(Path(sys.executable).with_name("whybox"))
    out, page = tmp_path / "run", tmp_path / "report.html"
    command = [whybox, "explain", f"demo:{model}", f"demo:{data}", "--rows", "0:10"]
    command += ["--explainer", "permutation-shap", "--out", str(out), "--report", str(page)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["model"]["format"] == "skops" and record["data"]["categories"]
    assert re.search(category, page.read_text())
    listed = subprocess.run([whybox, "demos"], capture_output=True, text=True).stdout
    assert f"demo:{model}" in listed


def test_row_notes_say_what_the_model_makes_of_unseen_and_missing_values(run):
    model = load_model(skops_pipeline("one-hot")[0], name="pipeline.skops")
    explanation = run.explanation
    notes = [row_notes(explanation, i, model.categories, model.unseen) for i in range(4)]
    unseen = "home = boat: a category the model never saw; it treats it as " + model.unseen["home"]
    missing = "income = missing: given to the model as a missing value"
    assert (notes[0], notes[1], notes[3]) == ([], [missing], [unseen])
    page = report.report_bytes(run, "html").decode()  # from the run's record, no model
    decisions = page.split('<article class="decision"')[1:5]
    shown = [all(escape(n) in d for n in rows) for d, rows in zip(decisions, notes, strict=True)]
    assert shown == [True] * 4
    assert escape(unseen) not in decisions[1] and escape(missing) in decisions[1]
