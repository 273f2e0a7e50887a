"""Operator limits: each has a default, a setting that changes it, and messages naming both;
a model file is loaded first in a child process held to the load limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from whybox.dashboard.cli.main import main
from whybox.explainers import registry
from whybox.explainers.testing import make_dataset, mlp_model, synthetic_frame
from whybox.model_zoo import WhyboxError, demos, limits, load_data, load_model

README = Path(__file__).parents[2] / "README.md"


@pytest.mark.parametrize("limit", limits.ALL, ids=lambda limit: limit.setting)
def test_each_limit_has_a_default_and_a_setting(limit, monkeypatch) -> None:
    monkeypatch.delenv(limit.setting, raising=False)
    assert limit.value() == limit.default
    monkeypatch.setenv(limit.setting, "1_234")
    assert limit.value() == 1234
    assert "1,234" in limit.over("found", "advice") and limit.setting in limit.over("x", "y")
    monkeypatch.setenv(limit.setting, "lots")
    with pytest.raises(WhyboxError, match=f"the setting {limit.setting} must be a whole number"):
        limit.value()


def test_readme_documents_every_limit() -> None:
    text = README.read_text()
    missing = [limit.setting for limit in limits.ALL if f"`{limit.setting}`" not in text]
    assert not missing


def test_limits_command_lists_values_and_settings(monkeypatch, capsys) -> None:
    monkeypatch.setenv("WHYBOX_MAX_ROWS", "77")
    assert main(["limits"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(limits.ALL)
    assert any(re.match(r"WHYBOX_MAX_ROWS\s+77 \(set\)\s+rows", line) for line in lines)


def test_rows_and_file_size_limits_follow_their_settings(monkeypatch, tmp_path) -> None:
    raw = synthetic_frame(50).to_csv(index=False).encode()
    assert len(load_data(raw)) == 50
    monkeypatch.setenv("WHYBOX_MAX_ROWS", "49")
    with pytest.raises(WhyboxError, match="has 50 rows, more than the limit of 49 set by WHYBOX_"):
        load_data(raw, name="t.csv")
    monkeypatch.setenv("WHYBOX_MAX_ROWS", "50")
    path = tmp_path / "big.csv"
    path.write_bytes(raw * 400)  # read from a path: refused from its size, before reading
    monkeypatch.setenv("WHYBOX_MAX_UPLOAD_MB", "1")
    with pytest.raises(WhyboxError, match=r"'big.csv' is 1.\d MB, more than the limit of 1 MB"):
        load_data(path)


def test_budget_parameters_are_capped_by_the_operator(monkeypatch) -> None:
    integrated = registry.get("integrated-gradients")
    steps = next(p for p in integrated.params if p.name == "steps")
    assert steps.upper == 10_000 and steps.describe()["limit"] == "WHYBOX_MAX_STEPS"
    monkeypatch.setenv("WHYBOX_MAX_STEPS", "300")
    assert steps.upper == 300  # the dashboard's input stops there too
    integrated(steps=300)
    with pytest.raises(WhyboxError, match="steps is 301, more than the limit of 300 set by"):
        integrated(steps=301)
    lime = registry.get("lime")
    monkeypatch.setenv("WHYBOX_MAX_SAMPLES", "100")
    with pytest.raises(WhyboxError, match="WHYBOX_MAX_SAMPLES; use 100 or fewer"):
        lime(samples=101)


def test_coalition_limit_refuses_shapley_methods(monkeypatch) -> None:
    model, data = mlp_model("regression"), make_dataset(synthetic_frame())  # 5 features
    exact, permutation = registry.get("exact-shapley")(), registry.get("permutation-shap")()
    assert exact.supports(model, data) and permutation.supports(model, data)
    monkeypatch.setenv("WHYBOX_MAX_COALITIONS", "31")
    refused = exact.supports(model, data)
    assert not refused and "5 features make 32 coalitions" in refused.reason
    assert "WHYBOX_MAX_COALITIONS" in refused.reason
    assert permutation.supports(model, data).reason.startswith("34 coalitions per row")
    with pytest.raises(WhyboxError, match="exact-shapley cannot explain this model: 5 feat"):
        exact.explain(model, data, rows=[0])


def test_model_loads_in_a_child_held_to_the_memory_limit(monkeypatch) -> None:
    path = demos.model_path("credit-xgboost")
    assert load_model(path).feature_names == load_model(path, isolated=False).feature_names
    monkeypatch.setenv("WHYBOX_LOAD_MEMORY_MB", "64")  # too little to import the libraries
    with pytest.raises(WhyboxError, match="more memory than the limit of 64 MB set by WHYBOX_LO"):
        load_model(path)
    assert load_model(path, isolated=False)  # whybox's own demos load in-process, no child


def test_a_refusal_in_the_child_is_passed_on_word_for_word(monkeypatch) -> None:
    monkeypatch.setenv("WHYBOX_MAX_COLUMNS", "3")
    raw = demos.model_path("credit-xgboost").read_bytes()
    with pytest.raises(WhyboxError) as in_child:
        load_model(raw, name="m.json")
    with pytest.raises(WhyboxError) as in_process:
        load_model(raw, name="m.json", isolated=False)
    assert str(in_child.value) == str(in_process.value)
    assert "more than the limit of 3 set by WHYBOX_MAX_COLUMNS" in str(in_child.value)
