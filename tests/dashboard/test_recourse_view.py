"""Recourse in the Local view and from `whybox recourse`: what the engine finds, kept to the
constraints file, and a bad file as one line with its line number."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape

from tests.dashboard.test_app import app, explain, no_errors
from tests.dashboard.test_cli import run
from whybox.dashboard.app import exports
from whybox.dashboard.app.views.recourse_panel import RECOURSE_HEADING
from whybox.dashboard.reports.dictionary import coded_values, load_dictionary
from whybox.model_zoo import demos
from whybox.trust.constraints import load_constraints
from whybox.trust.recourse import RecourseSearch


@pytest.fixture(scope="module")
def credit():
    model = demos.resolve_model("demo:credit-xgboost")
    data = demos.resolve_data("demo:credit", model, label="Status")
    coded = coded_values(load_dictionary(demos.demo_dictionary("demo:credit")))
    rules = load_constraints(demos.demo_constraints("demo:credit"), data, coded)
    return model, data, coded, RecourseSearch(model, data, rules, coded=coded)


def declined(model, data, count: int) -> np.ndarray:
    predicted = model.predict(data.values, "probability").argmax(1)
    return np.flatnonzero(predicted == model.output_names.index("bad"))[:count]


def local_row(row: int):
    """The Local view of the credit demo on `row`, the favourable class set to good."""
    at = app().run()
    at.selectbox(key="favourable").select("good").run()
    at.sidebar.text_input(key="rows:tabular").set_value(f"{row}:{row + 1}").run()
    at = explain(at)
    at.switch_page("views/local.py").run()
    no_errors(at)
    return at


def shown_sentences(at) -> list[str]:
    paragraphs = [p for m in at.markdown for p in m.value.split("\n\n")]
    numbered = [p.split(" ", 1) for p in paragraphs if re.match(r"\*\*\d+\.\*\* ", p)]
    return [text.replace("\\", "") for _, text in numbered]


def test_the_local_view_shows_the_engines_recourse_under_the_reasons(credit) -> None:
    model, data, _, search = credit
    row = int(declined(model, data, 1)[0])
    at = local_row(row)
    expected = search.find(row, "good")
    assert expected.found
    assert shown_sentences(at) == [c.sentence for c in expected.counterfactuals]
    assert any("keeps to the demo's constraints" in c.value for c in at.caption)
    assert [m.value for m in at.markdown].count(RECOURSE_HEADING) == 1  # the place kept, filled
    # the run's report downloaded now shows it on the row's decision
    source, results = at.session_state["current"], at.session_state["results"]
    analyses = at.session_state["analyses"][at.session_state["inputs"].key]
    page = exports._report(
        at.session_state["runs"][source], "html", "good", None, source, results, analyses
    ).decode()
    assert "What would make it good" in page
    for counterfactual in expected.counterfactuals:
        assert f"<li>{escape(counterfactual.sentence)}</li>" in page


def test_an_uploaded_constraints_file_is_used_and_a_bad_one_is_one_line(credit) -> None:
    model, data, coded, _ = credit
    row = int(declined(model, data, 1)[0])
    at = local_row(row)
    bad = b"max_changes: 2\nimmutable: [Age, Wage]\n"
    at.file_uploader(key="constraints_file").upload("rules.yaml", bad, "text/yaml").run()
    errors = [e.value for e in at.error]
    assert any("rules.yaml" in e and "line 2" in e and "Wage" in e for e in errors), errors
    assert all("\n" not in e for e in errors)
    good = b"max_changes: 1\nimmutable: [Age, Marital, Records, Income]\n"
    at.file_uploader(key="constraints_file").upload("rules.yaml", good, "text/yaml").run()
    no_errors(at)
    rules = load_constraints_bytes(good, data, coded)
    expected = RecourseSearch(model, data, rules, coded=coded).find(row, "good")
    sentences = shown_sentences(at)
    assert sentences == [c.sentence for c in expected.counterfactuals]
    assert all(" and " not in s.split(", the model")[0] for s in sentences)  # one change
    assert all("Income" not in s.split(", the model")[0] for s in sentences)


def load_constraints_bytes(raw: bytes, data, coded):
    from whybox.trust.constraints import parse_constraints

    return parse_constraints(raw, data, "rules.yaml", coded)


def test_the_recourse_command_writes_what_the_engine_finds(tmp_path, capsys, credit) -> None:
    model, data, _, search = credit
    out = tmp_path / "recourse"
    status, stdout, err = run(
        capsys, "recourse", "demo:credit-xgboost", "demo:credit", "--desired", "good",
        "--rows", "0:60", "--out", out,
    )  # fmt: skip
    assert status == 0, err
    record = json.loads((out / "recourse.json").read_text())
    assert len(record["rows"]) == 60
    for answer in record["rows"]:
        assert answer == json.loads(json.dumps(search.find(answer["row"], "good").to_dict()))
    searched = [a for a in record["rows"] if not a["message"].startswith("the model already")]
    assert searched and "rows not predicted good have recourse" in stdout
    table = pd.read_csv(out / "recourse.csv")
    expected = [c["sentence"] for a in record["rows"] for c in a["counterfactuals"]]
    assert list(table["recourse"]) == expected
    assert set(table["row"]) <= {a["row"] for a in searched}


def test_a_bad_constraints_file_stops_the_command_with_its_line(tmp_path, capsys) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("max_changes: 3\ntransitions:\n  Home: {rent: [castle]}\n")
    status, _, err = run(
        capsys, "recourse", "demo:credit-xgboost", "demo:credit", "--desired", "good",
        "--constraints", rules, "--out", tmp_path / "out",
    )  # fmt: skip
    assert status == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("error:") and "line 3" in line and "castle" in line
    assert not (tmp_path / "out").exists()


def test_explain_with_recourse_puts_it_on_the_reports_unfavourable_decisions(
    tmp_path, capsys, credit
) -> None:
    model, data, _, search = credit
    out, report = tmp_path / "run", tmp_path / "report.html"
    status, stdout, err = run(
        capsys, "explain", "demo:credit-xgboost", "demo:credit", "--rows", "0:30",
        "--out", out, "--report", report, "--favourable", "good", "--recourse",
    )  # fmt: skip
    assert status == 0, err
    record = json.loads((out / "run.json").read_text())["recourse"]
    unfavourable = [int(r) for r in declined(model, data, 30) if r < 30]
    assert sorted(map(int, record["rows"])) == unfavourable
    page = report.read_text()
    for row in unfavourable:
        expected = search.find(row, "good")
        assert record["rows"][str(row)] == json.loads(json.dumps(expected.to_dict()))
        for counterfactual in expected.counterfactuals:
            assert f"<li>{escape(counterfactual.sentence)}</li>" in page
    assert f"recourse found for {len(unfavourable)} of {len(unfavourable)}" in stdout
    status, _, err = run(
        capsys, "explain", "demo:credit-xgboost", "demo:credit", "--rows", "0:3",
        "--out", tmp_path / "again", "--recourse",
    )  # fmt: skip
    assert status == 2 and "--recourse searches toward the favourable class" in err


def test_without_desired_each_row_is_searched_toward_the_class_it_does_not_get(
    tmp_path, capsys, credit
) -> None:
    model, data, _, search = credit
    out = tmp_path / "flipped"
    status, stdout, err = run(
        capsys, "recourse", "demo:credit-xgboost", "demo:credit", "--rows", "0:12", "--out", out
    )
    assert status == 0, err
    record = json.loads((out / "recourse.json").read_text())
    predicted = model.predict(data.values[:12], "probability").argmax(1)
    assert [a["desired"] for a in record["rows"]] == [model.output_names[1 - p] for p in predicted]
    for answer in record["rows"]:
        expected = search.find(answer["row"], answer["desired"])
        assert answer == json.loads(json.dumps(expected.to_dict()))
    assert "of 12 rows searched have recourse" in stdout
