"""The Cohorts and Rules views, driven headless with AppTest: a cohort by filters applies
to every view, the error analysis's cohorts are one click from their explanations, and the
rules and glass-box model are the engine's."""

from __future__ import annotations

import numpy as np
import pytest
from markupsafe import escape

from tests.dashboard.test_app import app, chart, explain, no_errors
from whybox.dashboard.app import exports
from whybox.dashboard.reports.dictionary import coded_values, load_dictionary
from whybox.model_zoo import demos
from whybox.model_zoo.performance import performance
from whybox.trust.cohorts import cohort
from whybox.trust.error_analysis import error_analysis
from whybox.trust.rules import fit_rules


@pytest.fixture(scope="module")
def credit():
    model = demos.resolve_model("demo:credit-xgboost")
    data = demos.resolve_data("demo:credit", model, label="Status")
    coded = coded_values(load_dictionary(demos.demo_dictionary("demo:credit")))
    return model, data, coded


def with_cohort(name: str, text: str):
    at = app().run()
    at.switch_page("views/cohorts_view.py").run()
    at.text_input(key="cohort_name").set_value(name)
    at.text_area(key="cohort_filter").set_value(text)
    at.button[0].click().run()  # the form's submit button
    no_errors(at)
    return at


def test_a_cohort_by_filters_applies_to_overview_and_global(credit) -> None:
    model, data, coded = credit
    at = with_cohort("young renters", "Age < 30 and Home = rent")
    assert at.session_state["cohort"] == "young renters"
    members = cohort("c", "Age < 30 and Home = rent", data, coded).members(data)
    assert 100 < len(members) < 1000
    at.switch_page("views/overview.py").run()
    no_errors(at)
    assert any(f"({len(members):,} of {len(data):,} rows)" in c.value for c in at.caption)
    expected = performance(model, data.subset(members))
    shown = {m.label.lower(): float(m.value) for m in at.metric}
    assert shown["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-4)
    at = explain(at)
    at.switch_page("views/global_view.py").run()
    no_errors(at)
    explained = at.session_state["results"][at.session_state["current"]].rows
    inside = np.intersect1d(explained, members)
    assert f"on {len(inside):,} rows" in " ".join(c.value for c in at.caption)
    # every row again: the whole explanation
    at.sidebar.selectbox(key="cohort").select("every row").run()
    no_errors(at)
    assert f"on {len(explained):,} rows" in " ".join(c.value for c in at.caption)


def test_a_bad_filter_is_one_line_and_the_saved_cohorts_stay() -> None:
    at = with_cohort("older", "Age >= 50")
    at.text_input(key="cohort_name").set_value("castles")
    at.text_area(key="cohort_filter").set_value("Home = castle")
    at.button[0].click().run()
    assert not at.exception
    (error,) = at.error
    assert "Home has no category 'castle'; its categories are" in error.value
    assert "\n" not in error.value
    assert at.session_state["cohort"] == "older"
    assert list(at.session_state["cohorts"].values())[0].keys() == {"older"}


def test_the_error_analysis_cohorts_are_the_engines_and_one_click_away(credit) -> None:
    model, data, coded = credit
    at = app().run()
    at.switch_page("views/cohorts_view.py").run()
    no_errors(at)
    expected = error_analysis(model, data, coded=coded)
    assert chart(at, "error_tree")["data"][0]["type"] == "icicle"
    first = expected.ranked[0]
    button = next(b for b in at.button if b.label.startswith("Show cohort 1:"))
    assert first.rule in button.label.replace("\\", "")
    button.click().run()
    no_errors(at)
    assert at.session_state["cohort"] == "errors 1"
    saved = at.session_state["cohorts"][at.session_state["inputs"].key]["errors 1"]
    np.testing.assert_array_equal(saved.members, first.members)
    at = explain(at)  # its explanations: the Local view picks among its rows only
    at.switch_page("views/local.py").run()
    no_errors(at)
    assert any(f"({first.rows:,} of {len(data):,} rows)" in c.value for c in at.caption)
    explained = at.session_state["results"][at.session_state["current"]].rows
    assert f"of {np.isin(explained, first.members).sum()} explained rows" in " ".join(
        c.value for c in at.caption
    )


def test_the_rules_view_shows_the_engines_rules_and_the_glass_box(credit) -> None:
    model, data, coded = credit
    at = app().run()
    at.switch_page("views/rules_view.py").run()
    no_errors(at)
    expected = fit_rules(model, data, 8, coded=coded)
    shown = (at.success or at.warning)[0].value
    assert shown.replace("\\", "") == expected.summary
    table = at.dataframe[0].value
    assert sorted(table["rule"]) == sorted(
        " and ".join(c.text for c in r.conditions) or "every row" for r in expected.rules
    )
    curve = chart(at, "fidelity_curve")["data"][0]
    assert list(curve["x"]) == [p.rules for p in fit_rules(model, data, 16, coded=coded).curve]
    at.button(key="train_glass_box").click().run()
    no_errors(at)
    verdicts = [m.value for m in (*at.success, *at.info)]
    assert any("EBM" in v for v in verdicts), verdicts
    assert chart(at, "shape_0")["layout"]["title"]["text"].endswith("its shape in the EBM")
    # a run's report made from the page carries them
    at = explain(at)
    source, results = at.session_state["current"], at.session_state["results"]
    analyses = at.session_state["analyses"][at.session_state["inputs"].key]
    assert analyses["rules"] == expected.to_dict()
    run = at.session_state["runs"][source]
    page = exports._report(run, "html", None, None, source, results, analyses).decode()
    assert str(escape(analyses["glass_box"]["verdict"])) in page
    assert str(escape(expected.summary)) in page


def test_a_cohort_stays_in_the_session_that_saved_it() -> None:
    """Two browser sessions on the same demo: one's cohort is neither listed nor applied in
    the other's views."""
    mine = with_cohort("young", "Age < 30")
    theirs = app().run()
    assert theirs.sidebar.selectbox(key="cohort").options == ["every row"]
    assert "cohorts" not in theirs.session_state or not any(
        theirs.session_state["cohorts"].values()
    )
    theirs.switch_page("views/overview.py").run()
    no_errors(theirs)
    assert not any("Cohort **young**" in c.value for c in theirs.caption)
    assert mine.sidebar.selectbox(key="cohort").options == ["every row", "young"]
    # only the views that apply a cohort name it
    mine.switch_page("views/versions_view.py").run()
    assert not any("Cohort **young**" in c.value for c in mine.caption)
    mine.switch_page("views/overview.py").run()
    assert any("Cohort **young**" in c.value for c in mine.caption)
