"""The web app driven headless with AppTest: every view, with a demo and with uploads, and
the numbers it shows checked against the engine; plus `whybox dashboard` serving it."""

from __future__ import annotations

import base64
import json
import os
import pickle
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import settle
from tests.model_zoo.categorical import explained_csv, skops_pipeline
from whybox.dashboard.jobs import JobSpec, Source, executor
from whybox.dashboard.reports.dictionary import load_dictionary
from whybox.dashboard.runs.audit import RunStore
from whybox.dashboard.runs.records import load_run
from whybox.explainers import Explanation, registry
from whybox.explainers.agreement import agreement
from whybox.model_zoo import demos, load_data, load_model
from whybox.model_zoo.model import sha256_of
from whybox.model_zoo.performance import performance

APP = Path(__file__).parents[2] / "dashboard" / "app" / "main.py"
WHYBOX = str(Path(sys.executable).with_name("whybox"))
TIMEOUT = 180


def app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT)


def no_errors(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def explain(at: AppTest) -> AppTest:
    at.button(key="explain").click().run()
    settle(at)
    no_errors(at)
    return at


def chart(at: AppTest, key_part: str) -> dict:
    """The plotly JSON of the chart whose element id mentions `key_part`."""
    for element in at.get("plotly_chart"):
        if key_part in element.proto.id:
            return json.loads(element.proto.spec)
    raise AssertionError(
        f"no chart {key_part!r} among {[e.proto.id for e in at.get('plotly_chart')]}"
    )


def values(field) -> np.ndarray:
    """A plotly JSON array, plain or binary-encoded ({"dtype", "bdata"})."""
    if isinstance(field, dict):
        return np.frombuffer(base64.b64decode(field["bdata"]), dtype=field["dtype"])
    return np.asarray(field)


@pytest.fixture(scope="module")
def credit():
    model = demos.resolve_model("demo:credit-xgboost")
    return model, demos.resolve_data("demo:credit", model)


@pytest.fixture(scope="module")
def credit_explanation(credit):
    model, data = credit
    return registry.get("tree-shap")().explain(model, data, rows=range(200))


def test_overview_shows_the_model_card_and_measured_performance(credit) -> None:
    at = app().run()
    no_errors(at)
    card = at.table[0].value
    model, data = credit
    assert card.loc["format"].iloc[0] == "xgboost-json"
    assert card.loc["SHA-256"].iloc[0] == model.sha256
    shown = {m.label: m.value for m in at.metric}
    expected = performance(model, data)
    assert shown["accuracy"] == f"{expected['accuracy']:.4g}"
    assert shown["AUC"] == f"{expected['auc']:.4g}"
    histogram = chart(at, "histogram")  # counted on the server: every row, in bins
    assert values(histogram["data"][0]["y"]).sum() == len(data)


def test_global_view_ranks_features_by_the_engines_numbers(credit_explanation) -> None:
    at = explain(app().run())
    assert "tree-shap: 200 rows" in at.success[0].value
    at.switch_page("views/global_view.py").run()
    no_errors(at)
    bars = chart(at, "importance")["data"][0]
    expected = np.abs(credit_explanation.values).mean(axis=0)
    shown = dict(zip(values(bars["y"]), values(bars["x"]), strict=True))
    dictionary = load_dictionary(demos.dictionary_path("credit"))  # the demo's labels
    for name, value in zip(credit_explanation.feature_names, expected, strict=True):
        assert shown[dictionary[name].get("label", name)] == pytest.approx(value, rel=1e-9)
    assert len(chart(at, "beeswarm")["data"]) >= 1
    at.selectbox(key="dependence_feature").set_value("Income").run()
    points = chart(at, "dependence")["data"]  # a trace per colour category, where coded
    shown = {
        int(row): y
        for trace in points
        for row, y in zip(np.asarray(trace["customdata"])[:, 0], values(trace["y"]), strict=True)
    }
    income = credit_explanation.feature_names.index("Income")
    np.testing.assert_allclose(
        [shown[int(r)] for r in credit_explanation.rows], credit_explanation.values[:, income]
    )


def listed(at: AppTest) -> list[str]:
    """The Local view's reasons: the items of the markdown list under "Top reasons"."""
    return [line for m in at.markdown for line in m.value.splitlines() if line.startswith("- ")]


def test_local_view_waterfall_reasons_and_what_if(credit, credit_explanation) -> None:
    at = explain(app().run())
    at.switch_page("views/local.py").run()
    no_errors(at)
    at.number_input(key="local_row").set_value(3).run()
    prediction = credit_explanation.predictions[3]
    shown = {m.label: m.value for m in at.metric}
    assert any(value == f"{prediction:.4g}" for value in shown.values())
    reasons = listed(at)
    assert reasons and all("log-odds of class 'good'" in r for r in reasons)
    top = credit_explanation.top_reasons(1, 3, 1)[0][0]
    assert reasons[0].startswith(f"- {top} = ")
    assert not [w for w in at.number_input if w.key.startswith("whatif:")]  # until opened
    at.session_state["whatif_open"] = True
    at.run()
    model, data = credit
    income = float(data.frame.iloc[3]["Income"])
    settle(at.number_input(key="whatif:Income").set_value(income * 3 + 100).run())
    no_errors(at)
    edited = data.values[[3]].copy()
    edited[0, data.feature_names.index("Income")] = income * 3 + 100
    expected = model.predict(edited, "margin")[0, 1]
    assert {m.label: m.value for m in at.metric}["Edited prediction"] == f"{expected:.4g}"
    # Another row: the same boxes, set to its values, and nothing edited.
    at.number_input(key="local_row").set_value(4).run()
    no_errors(at)
    assert at.number_input(key="whatif:Income").value == float(data.frame.iloc[4]["Income"])
    assert "Edited prediction" not in {m.label for m in at.metric}


def test_compare_view_reports_agreement(credit, credit_explanation) -> None:
    at = explain(app().run())
    at.switch_page("views/compare.py").run()
    at.selectbox(key="compare_method").set_value("permutation-shap").run()
    settle(at.button(key="compare_run").click().run())
    no_errors(at)
    model, data = credit
    other = registry.get("permutation-shap")().explain(model, data, rows=range(200))
    expected = agreement(credit_explanation, other, k=5)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Mean rank correlation (Spearman of |values|)"] == (
        f"{expected['mean_rank_correlation']:.3f}"
    )
    assert len(chart(at, "agreement")["data"]) >= 1


def test_runs_are_recorded_reopened_and_exportable_by_their_session_only(credit) -> None:
    before = {e.run_id for e in RunStore().runs()}
    at = explain(app().run())
    at.switch_page("views/compare.py").run()
    at.selectbox(key="compare_method").set_value("permutation-shap").run()
    settle(at.button(key="compare_run").click().run())
    no_errors(at)
    recorded = [e for e in RunStore().runs() if e.run_id not in before]
    assert sorted(e.explainer for e in recorded) == ["permutation-shap", "tree-shap"]
    assert {e.source for e in recorded} == {"dashboard"} and len({e.session for e in recorded}) == 1
    first = next(e for e in recorded if e.explainer == "tree-shap")
    assert first.command[:4] == ["whybox", "explain", "demo:credit-xgboost", "demo:credit"]
    assert "--rows" in first.command and first.model_sha256 == credit[0].sha256
    saved = load_run(first.directory)
    np.testing.assert_allclose(
        saved.explanation.values,
        at.session_state["runs"][
            next(k for k, run in at.session_state["runs"].items() if run.run_id == first.run_id)
        ].explanation.values,
    )
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Report (HTML)", "Report (PDF)", "Attributions (CSV)"]

    at.switch_page("views/runs.py").run()
    no_errors(at)
    assert set(at.dataframe[0].value["run id"]) == {e.run_id for e in recorded}
    assert any("match their recorded SHA-256" in s.value for s in at.success)

    other = app().run()  # another browser session sees none of them
    other.switch_page("views/runs.py").run()
    assert not other.dataframe and "No runs yet" in other.info[0].value


def test_uploaded_model_and_data_go_through_every_tabular_view(credit) -> None:
    at = app().run()
    at.radio(key="source").set_value("Upload files").run()
    at.file_uploader(key="model_file").upload(
        "credit.json", demos.model_path("credit-xgboost").read_bytes()
    ).run()
    no_errors(at)
    at.file_uploader(key="data_file").upload(
        "credit.csv", demos.data_path("credit").read_bytes(), "text/csv"
    ).run()
    ignored = [i.value for i in at.info if "'Status'" in i.value]  # no label yet: not a feature
    assert ignored and "ignored" in ignored[0], [i.value for i in at.info]
    at.text_input(key="label").set_value("Status").run()
    no_errors(at)
    assert not [i.value for i in at.info if "'Status'" in i.value]
    shown = {m.label: m.value for m in at.metric}
    assert shown["accuracy"] == f"{performance(*credit)['accuracy']:.4g}"
    explain(at)
    for page in ("views/global_view.py", "views/local.py", "views/compare.py"):
        at.switch_page(page).run()
        no_errors(at)


def upload_and_explain(model: str, data: bytes) -> AppTest:
    at = app().run()
    at.radio(key="source").set_value("Upload files").run()
    at.file_uploader(key="model_file").upload(
        f"{model}.json", demos.model_path(model).read_bytes()
    ).run()
    at.file_uploader(key="data_file").upload("data.csv", data, "text/csv").run()
    return explain(at)


def test_two_sessions_with_different_uploads_never_see_each_others() -> None:
    credit = b"\n".join(demos.data_path("credit").read_bytes().splitlines()[:301])  # 300 rows
    cancer = demos.data_path("cancer").read_bytes()
    sessions = [
        upload_and_explain("credit-xgboost", credit),
        upload_and_explain("cancer-xgboost", cancer),
    ]
    runs = []
    for at, mine, theirs in ((sessions[0], credit, cancer), (sessions[1], cancer, credit)):
        at.run()
        no_errors(at)
        held = repr(list(at.session_state["results"]))
        assert sha256_of(mine) in held and sha256_of(theirs) not in held
        at.switch_page("views/runs.py").run()
        runs.append(set(at.dataframe[0].value["run id"]))
        assert runs[-1] == {run.run_id for run in at.session_state["runs"].values()}
    assert runs[0] and runs[1] and not runs[0] & runs[1]


def test_image_demo_shows_overlays_and_methods_side_by_side() -> None:
    at = app().run()
    at.selectbox(key="demo_model").set_value("digits-cnn").run()
    at.selectbox(key="explainer").set_value("grad-cam").run()
    at.text_input(key="rows:image").set_value("0:4").run()
    explain(at)
    at.switch_page("views/images_view.py").run()
    no_errors(at)
    grid = [e for e in at.get("plotly_chart") if "grid_" in e.proto.id]
    assert len(grid) == 4
    settle(at.multiselect(key="side_methods").set_value(["grad-cam", "occlusion"]).run())
    no_errors(at)
    assert sum("side_" in e.proto.id for e in at.get("plotly_chart")) == 2
    for page in ("views/global_view.py", "views/local.py"):
        at.switch_page(page).run()
        assert at.info  # points to the Images view instead


def test_uploaded_image_model_and_zip_show_their_maps() -> None:
    at = app().run()
    at.radio(key="source").set_value("Upload files").run()
    at.file_uploader(key="model_file").upload(
        "digits.safetensors", demos.model_path("digits-cnn").read_bytes()
    ).run()
    at.file_uploader(key="data_file").upload(
        "digits.zip", demos.data_path("digits").read_bytes(), "application/zip"
    ).run()
    no_errors(at)
    assert {m.label: m.value for m in at.metric}["images"] == "200"
    at.text_input(key="mean").set_value("0.1").run()
    at.text_input(key="std").set_value("0.5").run()
    at.selectbox(key="explainer").set_value("occlusion").run()
    at.text_input(key="rows:image").set_value("0:2").run()
    explain(at)

    # The normalised model is made once per session, data and settings, not on every rerun.
    def normalized() -> dict:
        return {k: v for k, v in at.session_state["results"].items() if k[0] == "normalized"}

    before = normalized()
    at.run()
    assert normalized().keys() == before.keys() and ((0.1,), (0.5,)) in [
        model.normalization for model in before.values()
    ]
    assert all(normalized()[key] is model for key, model in before.items())
    at.switch_page("views/images_view.py").run()
    no_errors(at)
    grid = [e for e in at.get("plotly_chart") if "grid_" in e.proto.id]
    assert len(grid) == 2
    titles = [json.loads(e.proto.spec)["layout"]["title"]["text"] for e in grid]
    assert titles[0].startswith("digit_1597_label2.png")


def pending_jobs(at: AppTest) -> list:
    return [entry.job for entry in at.session_state["jobs"].values()]


def progress_texts(at: AppTest) -> list[str]:
    return [element.proto.text for element in at.get("progress")]


def test_a_job_outlives_reruns_and_stop_ends_it_keeping_earlier_results() -> None:
    at = explain(app().run())
    earlier = dict(at.session_state["results"])
    at.selectbox(key="demo_model").set_value("credit-mlp").run()
    at.selectbox(key="explainer").set_value("exact-shapley").run()
    at.text_input(key="rows:tabular").set_value("0:4000").run()  # minutes on one thread
    at.button(key="explain").click().run()
    no_errors(at)
    (job,) = pending_jobs(at)
    deadline = time.monotonic() + TIMEOUT
    while not job.running():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    at.switch_page("views/global_view.py").run()  # the page runs again: the job goes on
    no_errors(at)
    assert pending_jobs(at) == [job] and job.running()
    assert progress_texts(at)[0].startswith("exact-shapley on rows 0:4000: ")
    assert at.button(key="explain").disabled  # one job at a time from the sidebar
    pid = job.worker
    next(button for button in at.button if button.label == "Stop").click().run()
    no_errors(at)
    assert job.state == "cancelled" and not pending_jobs(at) and not progress_texts(at)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # its worker is gone (a fresh one takes its place)
    assert any(c.value.startswith("Stopped.") for c in at.caption)
    assert all(at.session_state["results"][key] is value for key, value in earlier.items())
    assert not at.button(key="explain").disabled


def test_a_waiting_job_shows_how_many_jobs_are_ahead_then_its_result(credit) -> None:
    model = demos.resolve_model("demo:credit-mlp")
    data = demos.resolve_data("demo:credit", model)
    sources = (
        Source.of_demo("demo:credit-mlp", model.sha256),
        Source.of_demo("demo:credit", data.sha256),
    )
    pool = executor()
    pool.wait_ready(TIMEOUT)
    others = [  # other users' long work, on every worker
        pool.submit(JobSpec(*sources, "exact-shapley", {}, range(4000))) for _ in range(pool.size)
    ]
    deadline = time.monotonic() + TIMEOUT
    while not all(other.running() for other in others):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    at = app().run()
    at.button(key="explain").click().run()
    no_errors(at)
    (waiting,) = progress_texts(at)
    assert re.fullmatch(
        r"auto on rows 0:200: (\d+ jobs? ahead of yours|next in line, waiting for a free worker)",
        waiting,
    )
    assert all(other.cancel() for other in others)  # their workers are replaced
    settle(at)
    no_errors(at)
    assert "tree-shap: 200 rows" in at.success[0].value


def test_bad_upload_is_one_clear_message_and_earlier_results_stay() -> None:
    at = explain(app().run())
    at.radio(key="source").set_value("Upload files").run()
    at.file_uploader(key="model_file").upload("model.pkl", pickle.dumps({"a": 1})).run()
    assert not at.exception
    assert len(at.error) == 1 and "can run code" in at.error[0].value
    assert "\n" not in at.error[0].value
    at.radio(key="source").set_value("Built-in demo").run()
    no_errors(at)
    assert at.button(key="explain").disabled  # the earlier result is still there


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_command_serves_a_page():
    port = free_port()
    server = subprocess.Popen(
        [WHYBOX, "dashboard", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://localhost:{port}/_stcore/health", timeout=2
                ) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://localhost:{port}/", timeout=5) as page:
            assert page.status == 200 and b'<div id="root">' in page.read()
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_local_view_names_categories_and_edits_them_with_a_select_box() -> None:
    """An uploaded skops pipeline and a CSV with text: reasons say 'home = rent', and the
    what-if offers the known categories and 'missing', sending their codes to the model."""
    raw, _ = skops_pipeline("one-hot")
    at = app().run()
    at.radio(key="source").set_value("Upload files").run()
    at.file_uploader(key="model_file").upload("pipeline.skops", raw).run()
    at.file_uploader(key="data_file").upload("data.csv", explained_csv(), "text/csv").run()
    explain(at)
    at.session_state["whatif_open"] = True
    at.switch_page("views/local.py").run()
    no_errors(at)
    at.number_input(key="local_row").set_value(1).run()
    reasons = listed(at)
    assert any(r.startswith("- home = rent ") for r in reasons), reasons
    box = at.selectbox(key="whatif:home")
    assert box.options == ["mortgage", "own", "rent", "boat", "missing"]
    assert box.value == 2.0
    settle(box.set_value(0.0).run())
    no_errors(at)
    model = load_model(raw, name="pipeline.skops")
    data = load_data(explained_csv(), model, name="data.csv")
    edited = data.values[[1]].copy()
    edited[0, data.feature_names.index("home")] = 0.0
    explanation = next(
        v for v in at.session_state["results"].values() if isinstance(v, Explanation)
    )
    expected = model.predict(edited, explanation.output_space)[0, int(explanation.target[1])]
    assert {m.label: m.value for m in at.metric}["Edited prediction"] == f"{expected:.4g}"


def test_the_credit_demo_names_its_codes_and_an_uploaded_dictionary_renames_them() -> None:
    at = explain(app().run())
    at.session_state["whatif_open"] = True
    at.switch_page("views/local.py").run()
    no_errors(at)
    box = at.selectbox(key="whatif:Home")  # the demo's dictionary names Home's codes
    assert box.options == ["ignore", "other", "owner", "parents", "priv", "rent"]
    assert not [m.value for m in at.markdown if re.search(r"(Home|Job|Records) = \d", m.value)]
    dictionary = b"column,label,values\nHome,Housing,0 = none; 1 = other; 2 = own; 5 = renting\n"
    at.file_uploader(key="dictionary_file").upload("dictionary.csv", dictionary).run()
    no_errors(at)
    renamed = at.selectbox(key="whatif:Home")
    assert renamed.label == "Housing" and "renting" in renamed.options
