"""The second model (B) in the sidebar and the Versions view, driven headless with AppTest:
the credit demo's planted regression is found and shown, a model that takes other columns
is one line of error that leaves the first model alone, and sessions keep their own B."""

from __future__ import annotations

import json
import pickle

import pytest

from tests.conftest import settle
from tests.dashboard.test_app import app, chart, no_errors
from whybox.dashboard.app import session
from whybox.model_zoo import demos

VIEW = "views/versions_view.py"
B_KEY = "demo_model_b:credit-xgboost"  # the credit demo's choice of B (dashboard/app/sidebar.py)


def frame_with(at, column: str):
    """The view's table that has `column`."""
    for element in at.dataframe:
        if column in element.value.columns:
            return element.value
    raise AssertionError(
        f"no table with {column!r} among {[list(e.value.columns) for e in at.dataframe]}"
    )


@pytest.fixture(scope="module")
def compared():
    """The credit demo with its newer version, credit-xgboost-v2 (retrained without the
    applicants with past records), which the sidebar chooses as B to start with."""
    at = app().run()
    no_errors(at)
    assert at.selectbox(key=B_KEY).value == "credit-xgboost-v2"
    at.switch_page(VIEW).run()
    no_errors(at)
    return at


def test_the_demo_pair_shows_the_planted_cohort_flips_and_performance(compared) -> None:
    at = compared
    verdict = at.warning[0].value
    assert "B flips" in verdict and "B is worse on" in verdict and "Records" in verdict, verdict
    cohorts = frame_with(at, "rule")
    assert cohorts["rule"].str.contains("Records").any(), list(cohorts["rule"])
    planted = cohorts[cohorts["rule"].str.contains("Records")].iloc[0]
    assert planted["B error rate"] > planted["A error rate"]
    assert planted["held-out rows B worse"] > planted["held-out rows B better"]
    assert planted["adjusted p"] < 0.05
    flips = frame_with(at, "A predicts")
    assert set(flips.columns) >= {"A predicts", "B predicts", "rows"}
    shown = {m.label: m.value for m in at.metric}
    assert int(shown["Predictions that flip"].replace(",", "")) == flips["rows"].sum() > 0
    performance = frame_with(at, "change 95 % interval").set_index("metric")
    assert performance.loc["accuracy", "B"] < performance.loc["accuracy", "A"]
    low, high = (
        float(x) for x in performance.loc["accuracy", "change 95 % interval"].split(" to ")
    )
    assert low <= performance.loc["accuracy", "change"] <= high < 0
    importance = frame_with(at, "rank A")
    assert importance["feature"].iloc[0] == "Records"  # B never learned what a record means
    bars = chart(at, "versions_importance")["data"]
    assert [trace["name"] for trace in bars] == ["A", "B"]
    assert all(trace["error_x"]["array"] is not None for trace in bars)
    assert chart(at, "versions_change")["data"]
    assert not frame_with(at, "reasons under A").empty
    assert any("the differences are the models', not the method's" in c.value for c in at.caption)
    (download,) = [e for e in at.get("download_button") if "versions_report" in e.proto.id]
    assert download.proto.label == "Versions report (HTML)"


def test_the_comparison_is_in_the_audit_trail_and_the_runs_view(compared) -> None:
    from whybox.dashboard.runs.audit import RunStore

    at = compared
    assert any("Records is yes" in rule for rule in frame_with(at, "rule")["rule"])  # dictionary
    (entry,) = [e for e in RunStore(create=False).runs(session=at.session_state["session_id"])
                if e.comparison]  # fmt: skip
    a, b = (demos.resolve_model(f"demo:{n}") for n in ("credit-xgboost", "credit-xgboost-v2"))
    assert (entry.model_sha256, entry.model_b_sha256) == (a.sha256, b.sha256)
    at.switch_page("views/runs.py").run()
    no_errors(at)
    assert "credit-xgboost vs credit-xgboost-v2" in list(frame_with(at, "model")["model"])
    at.selectbox(key="reopen_run").set_value(entry.run_id).run()
    no_errors(at)
    assert "Records" in at.info[0].value
    assert [e for e in at.get("download_button") if "runs_versions_report" in e.proto.id]
    at.switch_page(VIEW).run()


def test_a_favourable_class_counts_the_rows_that_lose_and_gain_it(compared) -> None:
    at = compared
    at.selectbox(key="versions_favourable").set_value("good").run()
    no_errors(at)
    shown = {m.label: m.value for m in at.metric}
    flips = frame_with(at, "A predicts")
    lost = flips[(flips["A predicts"] == "good") & (flips["B predicts"] == "bad")]["rows"].sum()
    gained = flips[(flips["A predicts"] == "bad") & (flips["B predicts"] == "good")]["rows"].sum()
    assert shown["Lose 'good' under B"] == f"{lost:,}"
    assert shown["Gain 'good' under B"] == f"{gained:,}"
    assert "lose 'good'" in at.warning[0].value


def test_without_b_the_view_says_how_to_give_one() -> None:
    at = app().run()
    at.selectbox(key=B_KEY).set_value("none").run()
    no_errors(at)
    assert at.session_state[session.SECOND] is None
    at.switch_page(VIEW).run()
    no_errors(at)
    said = at.info[0].value
    assert "Second model (B, a candidate version)" in said and "credit-xgboost-v2" in said
    at.selectbox(key="demo_model").set_value("cancer-xgboost").run()  # a demo with no versions
    no_errors(at)
    assert "Second model" not in [s.label for s in at.selectbox]
    assert "Second model (B, a candidate version)" in at.info[0].value


def upload_first(model: str = "credit-xgboost") -> object:
    """A session with the credit demo's files uploaded as the first model and its data."""
    at = app().run()
    at.radio(key="source").set_value("Upload files").run()
    at.file_uploader(key="model_file").upload(
        f"{model}.json", demos.model_path(model).read_bytes()
    ).run()
    at.file_uploader(key="data_file").upload(
        "credit.csv", demos.data_path("credit").read_bytes(), "text/csv"
    ).run()
    at.text_input(key="label").set_value("Status").run()
    no_errors(at)
    return at


def renamed_income() -> bytes:
    """The credit demo's model with its Income column named Salary: the same classes, other
    columns."""
    model = json.loads(demos.model_path("credit-xgboost").read_bytes())
    names = model["learner"]["feature_names"]
    names[names.index("Income")] = "Salary"
    return json.dumps(model).encode()


def test_a_model_with_other_columns_is_one_line_and_the_first_model_stays() -> None:
    at = upload_first()
    first = at.session_state["inputs"]
    at.file_uploader(key="model_b_file").upload("renamed.json", renamed_income()).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors == [
        "the models take different columns: only model A takes Income; only model B takes Salary"
    ], errors
    assert at.session_state[session.SECOND] is None
    kept = at.session_state["inputs"]  # the second upload never replaces the first
    assert (kept.key, kept.source) == (first.key, first.source)
    at.button(key="explain").click().run()  # not explain(): B's error stays on every page
    settle(at)
    assert not at.exception
    assert "tree-shap: 200 rows" in at.success[0].value
    for page in ("views/overview.py", "views/global_view.py", "views/local.py"):
        at.switch_page(page).run()
        assert not at.exception and [e.value for e in at.error] == errors
        assert at.get("plotly_chart")
    at.switch_page(VIEW).run()
    assert "Second model (B, a candidate version)" in at.info[0].value


def test_two_sessions_keep_their_own_second_model() -> None:
    """One session uploads B, the other does not; and on the demo one sets B to none while
    the other keeps the newer version."""
    mine, theirs = upload_first(), upload_first()
    mine.file_uploader(key="model_b_file").upload(
        "credit-v2.json", demos.model_path("credit-xgboost-v2").read_bytes()
    ).run()
    no_errors(mine)
    theirs.run()
    no_errors(theirs)
    assert mine.session_state[session.SECOND].model.name == "credit-v2.json"
    assert theirs.session_state[session.SECOND] is None
    theirs.switch_page(VIEW).run()
    assert "Second model (B, a candidate version)" in theirs.info[0].value
    mine.switch_page(VIEW).run()  # read by the first model's options: the label column too
    no_errors(mine)
    assert "Records" in mine.warning[0].value and frame_with(mine, "rule").shape[0] >= 1

    kept, dropped = app().run(), app().run()
    dropped.selectbox(key=B_KEY).set_value("none").run()
    kept.run()
    assert kept.session_state[session.SECOND].model.name == "credit-xgboost-v2"
    assert dropped.session_state[session.SECOND] is None


def test_a_second_model_that_can_run_code_is_refused_as_the_first_would_be() -> None:
    at = upload_first()
    first = at.session_state["inputs"]
    at.file_uploader(key="model_b_file").upload("model.pkl", pickle.dumps({"a": 1})).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "can run code" in errors[0] and "\n" not in errors[0], errors
    assert at.session_state[session.SECOND] is None
    assert at.session_state["inputs"].key == first.key
