"""The reference upload in the sidebar: the Local view's typicality badge and the Shift
view, driven headless with AppTest and checked against the engine."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

from tests.dashboard.test_app import app, chart, explain, no_errors
from whybox.dashboard.reports.dictionary import coded_values, load_dictionary
from whybox.model_zoo import demos, load_data
from whybox.model_zoo.data import load_reference
from whybox.trust.typicality import Typicality


@pytest.fixture(scope="module")
def reference_csv() -> bytes:
    """Credit applicants with two thirds of the demo's incomes: the demo data has moved."""
    frame = pd.read_csv(demos.data_path("credit")).sample(2000, random_state=0)
    frame["Income"] = frame["Income"] / 1.5
    return frame.to_csv(index=False).encode()


def with_reference(reference_csv: bytes):
    at = app().run()
    at.file_uploader(key="reference_file").upload("reference.csv", reference_csv, "text/csv")
    return explain(at.run())


def test_local_view_shows_the_rows_typicality(reference_csv) -> None:
    at = with_reference(reference_csv)
    (run,) = at.session_state["runs"].values()  # the recorded run carries typicality
    assert run.record["typicality"]["reference"]["name"] == "reference.csv"
    assert len(run.record["typicality"]["rows"]) == len(run.explanation.rows)
    assert run.record["command"][-2:] == ["--reference", "reference.csv"]
    at.switch_page("views/local.py").run()
    no_errors(at)
    at.number_input(key="local_row").set_value(5).run()
    data = load_data(
        demos.data_path("credit"), demos.resolve_model("demo:credit-xgboost"), "Status"
    )
    coded = coded_values(load_dictionary(demos.dictionary_path("credit")))  # the demo's own
    scorer = Typicality(load_reference(reference_csv, data), coded=coded)
    expected = scorer.score(data.subset([5]))[0]
    colour, icon = ("orange", "warning") if expected.typicality < 0.01 else ("green", "check")
    badge = f":{colour}-badge[:material/{icon}: typicality {expected.typicality:.3g}]"
    assert badge in [m.value for m in at.markdown]
    assert any("reference rows are this unusual" in c.value for c in at.caption)


def test_shift_view_ranks_the_moved_feature_first(reference_csv) -> None:
    at = with_reference(reference_csv)
    at.switch_page("views/shift_view.py").run()
    no_errors(at)
    assert "Income" in at.warning[0].value and "Shift found in" in at.warning[0].value
    table = at.dataframe[0].value
    assert table["feature"].iloc[0] == "Income" and table["shifted"].iloc[0]
    assert np.isclose(sum(table["reference"].iloc[0]), 1.0)
    histogram = chart(at, "shift_histogram")
    assert [trace["name"] for trace in histogram["data"]] == ["reference", "data"]
    assert any("AUC" in m.label for m in at.metric)
    at.button(key="shift_model").click().run()
    no_errors(at)
    assert chart(at, "shift_predictions") and chart(at, "shift_attributions")
    (download,) = [e for e in at.get("download_button") if "shift_report" in e.proto.id]
    assert download.proto.label == "Shift report (HTML)"


def test_without_a_reference_the_views_say_how_to_get_one() -> None:
    at = explain(app().run())
    at.switch_page("views/shift_view.py").run()
    no_errors(at)
    assert "Upload reference data" in at.info[0].value
    at.switch_page("views/local.py").run()
    assert any("Upload reference data" in c.value for c in at.caption)


def test_a_bad_reference_is_one_line_and_the_explanation_stays(reference_csv) -> None:
    at = explain(app().run())
    before = at.session_state["current"]
    frame = pd.read_csv(io.BytesIO(reference_csv)).drop(columns=["Income"])
    at.file_uploader(key="reference_file").upload(
        "reference.csv", frame.to_csv(index=False).encode(), "text/csv"
    )
    at.run()
    errors = [e.value for e in at.error]
    assert errors == [
        "the reference 'reference.csv' lacks the data's column(s) 'Income'; give "
        "a reference with the same columns as the data"
    ], errors
    assert at.session_state["current"] == before
    at.switch_page("views/local.py").run()
    assert not at.exception and at.get("plotly_chart")  # the waterfall is still there


def test_reference_images_give_each_shown_image_its_typicality() -> None:
    at = app().run()
    at.selectbox(key="demo_model").set_value("digits-cnn").run()
    training = demos.data_path("digits-training").read_bytes()
    at.file_uploader(key="reference_file").upload("training.zip", training, "application/zip")
    explain(at.run())
    at.switch_page("views/images_view.py").run()
    no_errors(at)
    said = next(c.value for c in at.caption if "outside the reference" in c.value)
    outside, shown = (int(n) for n in re.findall(r"(\d+) of these (\d+) images", said)[0])
    assert shown == 8 and outside <= 2  # held-out digits, like the ones the CNN learned from
    titles = [chart(at, f"grid_{i}")["layout"]["title"]["text"] for i in range(shown)]
    assert all(re.search(r"typicality [\d.e-]+$", t) for t in titles), titles
