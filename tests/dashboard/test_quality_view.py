"""The Quality panel of the Global, Local and Images views, driven headless with AppTest:
computed on request, its numbers the engine's, kept per session and never shared, with
another method's agreement and quality side by side."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import settle
from tests.dashboard.test_app import app, explain, no_errors
from whybox.dashboard.app import exports
from whybox.dashboard.app.views import quality_panel
from whybox.explainers import registry
from whybox.explainers.agreement import agreement
from whybox.explainers.quality import CHEAP, METRICS, assess
from whybox.model_zoo import WhyboxError, demos

ROWS = 40
CHEAP_TITLES = [METRICS[name].title for name in CHEAP]


def explained(rows: str = f"0:{ROWS}", model: str | None = None, method: str | None = None):
    at = app().run()
    if model is not None:
        at.selectbox(key="demo_model").set_value(model).run()
    if method is not None:
        at.selectbox(key="explainer").set_value(method).run()
    modality = "image" if model == "digits-cnn" else "tabular"
    at.text_input(key=f"rows:{modality}").set_value(rows).run()
    return explain(at)


def quality_table(at: AppTest) -> pd.DataFrame | None:
    tables = [t.value for t in at.table if "verdict" in t.value.columns]
    return tables[0] if tables else None


def stored(at: AppTest) -> dict:
    """The session's quality results, by key."""
    return {k: v for k, v in at.session_state["results"].items() if k[0] == "quality"}


def check_rows(table: pd.DataFrame, titles: list[str]) -> None:
    assert list(table["metric"]) == titles
    for line in table.itertuples():
        assert line.value and line.verdict and line.verdict != "—", line
        if line.value != "not applicable":
            assert line.value[0].isdigit() or line.value[0] == "-", line


@pytest.fixture(scope="module")
def credit():
    model = demos.resolve_model("demo:credit-xgboost")
    return model, demos.resolve_data("demo:credit", model)


def test_global_panel_measures_on_request_keeps_it_and_says_what_does_not_apply(credit):
    at = explained()
    at.switch_page("views/global_view.py").run()
    no_errors(at)
    assert "Quality" in [s.value for s in at.subheader]
    assert any(f"all {ROWS} rows shown" in c.value for c in at.caption)
    assert quality_table(at) is None and not stored(at)  # nothing before the click
    sensitivity, randomisation = (b.label for b in at.button if b.key.startswith("global_quality_"))
    assert re.fullmatch(r"Max-sensitivity \((about \d+ (s|min)|under a second)\)", sensitivity)
    assert randomisation == "Model randomisation (not applicable here)"  # a tree: no weights

    at.button(key="global_quality").click().run()
    no_errors(at)
    table = quality_table(at)
    check_rows(table, CHEAP_TITLES)
    model, data = credit
    engine = registry.get("tree-shap")().explain(model, data, rows=range(ROWS))
    expected = assess(engine, model, data).scores
    deletion = table.set_index("metric").loc["Deletion"]
    assert deletion["value"].startswith(f"{expected['deletion'].value:.3g} (95 % interval ")
    assert deletion["control"] == "random orders: 1"
    assert deletion["p-value"] == f"{expected['deletion'].p_value:.3g}"
    assert deletion["verdict"] == expected["deletion"].verdict
    infidelity = table.set_index("metric").loc["Infidelity"]
    control = f"{METRICS['infidelity'].control}: {expected['infidelity'].reference:.3g}"
    assert infidelity["control"] == control
    assert at.button(key="global_quality").disabled

    at.button(key="global_quality_randomisation").click().run()
    no_errors(at)
    table = quality_table(at)
    check_rows(table, [*CHEAP_TITLES, "Model randomisation"])
    randomisation = table.set_index("metric").loc["Model randomisation"]
    assert randomisation["value"] == "not applicable"
    assert randomisation["verdict"] == (
        "not applicable: the model is not a network whose weights whybox can re-initialise"
    )

    # The report made from the page carries what was measured, merged into run.json's form.
    results, source = at.session_state["results"], at.session_state["current"]
    run = at.session_state["runs"][source]
    measured = quality_panel.report_quality(run.explanation, source, results)
    assert [s["metric"] for s in measured["scores"]] == [*CHEAP, "randomisation"]
    assert measured["scores"][0]["value"] == pytest.approx(expected["deletion"].value, rel=1e-5)
    page = exports._report(run, "html", None, None, source, results, {}).decode()
    assert "Measured on this model" in page and expected["deletion"].verdict in page
    assert "not applicable: the model is not a network" in page

    before = stored(at)
    at.run()  # a rerun, and a trip to another view and back, recompute nothing
    at.switch_page("views/overview.py").run()
    at.switch_page("views/global_view.py").run()
    no_errors(at)
    assert stored(at).keys() == before.keys()
    assert all(stored(at)[key] is quality for key, quality in before.items())
    assert quality_table(at).equals(table)


def test_two_sessions_never_see_each_others_quality(monkeypatch):
    first = explained()
    first.switch_page("views/global_view.py").run()
    first.button(key="global_quality").click().run()
    no_errors(first)
    mine = stored(first)
    assert len(mine) == 1

    second = explained()  # the same demo, rows and method: the same keys, yet nothing shared
    second.switch_page("views/global_view.py").run()
    no_errors(second)
    assert quality_table(second) is None and not stored(second)
    assert not second.button(key="global_quality").disabled

    def broken(*args, **kwargs):
        raise WhyboxError("the model refused these rows")

    monkeypatch.setattr(quality_panel, "assess", broken)  # an error is one line, nothing kept
    second.button(key="global_quality").click().run()
    assert not second.exception
    assert [e.value for e in second.error] == ["the model refused these rows"]
    assert not stored(second) and second.get("plotly_chart")  # the charts stay
    monkeypatch.undo()

    second.button(key="global_quality").click().run()
    no_errors(second)
    theirs = stored(second)
    assert theirs.keys() == mine.keys()
    assert all(theirs[key] is not mine[key] for key in mine)
    first.run()
    assert stored(first) == mine and quality_table(first) is not None


@pytest.mark.slow
def test_local_panel_with_a_second_method_shows_agreement_and_both_side_by_side(credit):
    at = explained()
    at.switch_page("views/compare.py").run()
    at.selectbox(key="compare_method").set_value("permutation-shap").run()
    settle(at.button(key="compare_run").click().run())
    no_errors(at)
    at.switch_page("views/local.py").run()
    at.number_input(key="local_row").set_value(3).run()
    no_errors(at)
    assert "Quality" in [s.value for s in at.subheader]
    model, data = credit
    mine = registry.get("tree-shap")().explain(model, data, rows=[3])
    other = registry.get("permutation-shap")().explain(model, data, rows=range(ROWS)).subset([3])
    expected = agreement(mine, other, k=5)
    shown = {m.label: m.value for m in at.metric}
    label = "Rank correlation with permutation-shap (Spearman of |values|)"
    assert shown[label] == f"{expected['mean_rank_correlation']:.3f}"
    assert shown["Top-5 overlap with permutation-shap"] == f"{expected['mean_top_k_overlap']:.0%}"

    at.button(key="local_quality").click().run()
    no_errors(at)
    table = quality_table(at)
    check_rows(table, CHEAP_TITLES)
    assert set(table["p-value"]) == {"—"}  # one row: no test, and the verdicts say so
    assert all(
        "too few rows" in v for v in table["verdict"][table["metric"] != "Faithfulness correlation"]
    )
    assert any("a single row gets neither" in c.value for c in at.caption)
    assert not [t for t in at.table if "permutation-shap" in t.value.columns]

    at.button(key="local_quality_other_check").click().run()
    no_errors(at)
    (both,) = [t.value for t in at.table if "permutation-shap" in t.value.columns]
    assert list(both.columns) == ["metric", "better", "tree-shap", "permutation-shap"]
    assert list(both["metric"]) == CHEAP_TITLES
    assert not both.isin(["not computed"]).any().any()
    assert all(cell[0].isdigit() or cell[0] == "-" for cell in both["permutation-shap"])
    assert not [b for b in at.button if b.key == "local_quality_other_check"]


@pytest.mark.slow
def test_images_panel_measures_the_images_shown_and_the_randomisation_check():
    at = explained("0:4", model="digits-cnn", method="grad-cam")
    at.switch_page("views/images_view.py").run()
    no_errors(at)
    assert "Quality" in [s.value for s in at.subheader]
    assert any("the 4 images shown" in c.value for c in at.caption)
    at.button(key="images_quality").click().run()
    no_errors(at)
    check_rows(quality_table(at), CHEAP_TITLES)
    assert any("Pixels are removed together" in c.value for c in at.caption)
    at.button(key="images_quality_randomisation").click().run()
    no_errors(at)
    table = quality_table(at)
    check_rows(table, [*CHEAP_TITLES, "Model randomisation"])
    verdict = table.set_index("metric").loc["Model randomisation", "verdict"]
    assert "the randomisation check" in verdict
    ((rows, quality),) = [(k[2], v) for k, v in stored(at).items() if k[3] == ("randomisation",)]
    assert rows == (0, 1, 2, 3) and quality.scores["randomisation"].applicable


def test_the_global_sample_is_seeded_and_at_most_the_limit(credit):
    model, data = credit
    explanation = registry.get("tree-shap")().explain(model, data, rows=range(300))
    positions, said = quality_panel.sample(explanation)
    again, _ = quality_panel.sample(explanation)
    assert len(positions) == quality_panel.SAMPLE_ROWS == 200
    assert np.array_equal(positions, again) and np.all(np.diff(positions) > 0)
    assert said == "a sample of 200 of the 300 rows shown (drawn with seed 0)"
    few = explanation.subset(range(30))
    positions, said = quality_panel.sample(few)
    assert np.array_equal(positions, np.arange(30)) and said == "all 30 rows shown"
