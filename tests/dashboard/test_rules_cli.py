"""`whybox explain --rules`: the rules and the glass-box model in run.json and the report."""

from __future__ import annotations

import json

from markupsafe import escape

from tests.dashboard.test_cli import run
from whybox.dashboard.reports.dictionary import coded_values, load_dictionary
from whybox.model_zoo import demos
from whybox.trust.glassbox import glass_box
from whybox.trust.rules import fit_rules


def test_rules_and_the_glass_box_reach_run_json_and_the_report(tmp_path, capsys):
    out, report = tmp_path / "run", tmp_path / "report.html"
    status, stdout, err = run(
        capsys, "explain", "demo:credit-xgboost", "demo:credit", "--label", "Status",
        "--rows", "0:10", "--seed", "3", "--rules", "--out", out, "--report", report,
    )  # fmt: skip
    assert status == 0, err
    record = json.loads((out / "run.json").read_text())
    model = demos.resolve_model("demo:credit-xgboost")
    data = demos.resolve_data("demo:credit", model, label="Status")
    coded = coded_values(load_dictionary(demos.demo_dictionary("demo:credit")))
    expected = fit_rules(model, data, seed=3, coded=coded)
    assert record["rules"] == json.loads(json.dumps(expected.to_dict()))
    glass = glass_box(model, data, seed=3, coded=coded)
    assert record["glass_box"]["verdict"] == glass.verdict
    assert expected.summary in stdout and glass.verdict in stdout
    page = report.read_text()
    assert str(escape(glass.verdict)) in page
    for rule in expected.rules:
        condition = " and ".join(c.text for c in rule.conditions)
        assert f"<td>{str(escape(condition))}</td>" in page


def test_a_report_without_rules_says_how_to_get_them(tmp_path, capsys):
    report = tmp_path / "report.html"
    status, _, err = run(
        capsys, "explain", "demo:credit-xgboost", "demo:credit", "--rows", "0:5",
        "--out", tmp_path / "run", "--report", report,
    )  # fmt: skip
    assert status == 0, err
    assert "Not computed for this run: run <code>whybox explain</code> with" in report.read_text()


def test_rules_are_refused_where_they_cannot_be_made(tmp_path, capsys):
    status, _, err = run(
        capsys, "explain", "demo:digits-cnn", "demo:digits", "--rows", "0:2", "--rules",
        "--out", tmp_path / "images",
    )  # fmt: skip
    assert status != 0
    assert "--rules reads a table's columns; it does not apply to image models" in err
    status, _, err = run(
        capsys, "explain", "demo:credit-xgboost", "demo:credit", "--stream", "--rules",
        "--out", tmp_path / "stream",
    )  # fmt: skip
    assert status != 0 and "--rules cannot be used with --stream or --cluster yet" in err
