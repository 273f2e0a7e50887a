"""How far to trust an explanation, from the command line: run.json, the report, the ranking
of methods and auto's choose=quality."""

import json
import re

import numpy as np
import pytest

from tests.dashboard.test_cli import run
from whybox.explainers import quality, registry
from whybox.model_zoo import demos


def test_explain_quality_goes_into_run_json_the_report_and_the_terminal(tmp_path, capsys):
    out, page = tmp_path / "run", tmp_path / "report.html"
    status, stdout, err = run(
        capsys,
        *("explain", "demo:credit-mlp", "demo:credit", "--explainer", "integrated-gradients"),
        *("--rows", "0:40", "--out", out, "--quality", "--report", page),
    )
    assert status == 0, err
    measured = json.loads((out / "run.json").read_text())["quality"]
    assert measured["method"] == "integrated-gradients" and measured["rows"] == 40
    scores = {s["metric"]: s for s in measured["scores"]}
    assert list(scores) == list(quality.CHEAP)
    for score in scores.values():
        assert score["applicable"] and np.isfinite(score["value"]) and score["verdict"]
        low, high = score["interval"]
        assert low <= score["value"] <= high
        assert f"{score['title']}: {score['value']:.3g}, {score['verdict']}" in stdout
    # The same numbers as the library gives for the same explanation.
    model = demos.resolve_model("demo:credit-mlp")
    data = demos.resolve_data("demo:credit", model)
    again = quality.assess(
        registry.get("integrated-gradients")().explain(model, data, rows=slice(0, 40)), model, data
    )
    assert scores["deletion"]["value"] == pytest.approx(again.scores["deletion"].value, rel=1e-5)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.read_text()))
    assert "Measured on this model" in text
    for score in scores.values():
        assert score["title"] in text and score["verdict"] in text


def test_a_metric_that_does_not_apply_says_why_and_costly_ones_say_how_long(tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, err = run(
        capsys,
        *("explain", "demo:credit-xgboost", "demo:credit", "--rows", "0:10", "--out", out),
        *("--quality-metric", "randomisation", "--quality-metric", "max_sensitivity"),
    )
    assert status == 0, err
    sensitivity, randomisation = json.loads((out / "run.json").read_text())["quality"]["scores"]
    assert not randomisation["applicable"] and "not a network" in randomisation["reason"]
    assert "Model randomisation: not applicable: the model is not a network" in stdout
    assert sensitivity["applicable"] and sensitivity["value"] >= 0
    assert "max_sensitivity should take about" in err and "randomisation should take" not in err


def test_ctrl_c_during_the_quality_check_keeps_the_explanation(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(quality, "assess", interrupted)
    out = tmp_path / "run"
    status, stdout, err = run(
        capsys,
        *("explain", "demo:credit-xgboost", "demo:credit", "--rows", "0:10", "--out", out),
        "--quality",
    )
    assert status == 130
    assert "quality check interrupted; the explanation is saved without it" in err
    record = json.loads((out / "run.json").read_text())
    assert "quality" not in record and record["rows"] == 10
    assert (out / "attributions.csv").exists() and "explained 10 rows" in stdout


def test_an_unknown_metric_is_one_line_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    status, _, err = run(
        capsys,
        *("explain", "demo:credit-xgboost", "demo:credit", "--out", out),
        *("--quality-metric", "beauty"),
    )
    assert status == 2 and not out.exists()
    assert "unknown --quality-metric beauty; choose from deletion" in err
    assert len(err.strip().splitlines()) == 1


def test_rank_needs_a_model(capsys):
    status, _, err = run(capsys, "explainers", "--rank")
    assert status == 2 and "--rank ranks the methods for a model" in err


def test_rank_lists_the_methods_most_faithful_first_and_auto_takes_the_first(tmp_path, capsys):
    status, stdout, err = run(capsys, "explainers", "demo:credit-xgboost", "demo:credit", "--rank")
    assert status == 0, err
    lines = stdout.splitlines()
    assert lines[0].split() == [
        "method",
        "faithfulness",
        "deletion",
        "insertion",
        "correlation",
    ] + ["s/row"]
    ranked = [line.split() for line in lines[1:] if re.match(r"^\S+\s+\d", line)]
    assert {"tree-shap", "permutation-shap"} <= {r[0] for r in ranked}
    faithfulness = [float(r[1]) for r in ranked]
    assert faithfulness == sorted(faithfulness, reverse=True)
    for r in ranked:  # the mean of the deletion and insertion ratios
        assert float(r[1]) == pytest.approx((float(r[2]) + float(r[3])) / 2, abs=1e-3)
    assert re.search(r"^integrated-gradients\s+not ranked: needs a differentiable", stdout, re.M)

    out = tmp_path / "run"
    status, _, err = run(
        capsys,
        *("explain", "demo:credit-xgboost", "demo:credit", "--rows", "0:5", "--out", out),
        *("--param", "choose=quality"),
    )
    assert status == 0, err
    record = json.loads((out / "run.json").read_text())
    assert record["explainer"] == ranked[0][0] and record["params"]["chosen_by"] == "auto"
    assert "the most faithful of" in record["notes"][0]
