"""The views at any row count: row search by number or identifier (never a list of every
row), seeded samples in the Global charts with the ranking over every row, a paged Rows
table, and a histogram counted on the server."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tests.dashboard.test_app import app, chart, explain, no_errors, values
from whybox.dashboard.app.views.row_picker import rows_with_id
from whybox.dashboard.reports import charts
from whybox.dashboard.reports.dictionary import load_dictionary
from whybox.explainers import Explanation, registry
from whybox.model_zoo import demos

IDS = [f"C-{i:03d}" for i in range(40)]


def explained_credit(rows: str, ids: bool = False):
    """The app on the credit demo's model, `rows` explained with tree-shap; with `ids`, the
    data uploaded with a customer_id column."""
    at = app().run()
    if ids:
        frame = pd.read_csv(demos.data_path("credit")).head(len(IDS))
        frame.insert(0, "customer_id", IDS)
        at.radio(key="source").set_value("Upload files").run()
        model = demos.model_path("credit-xgboost").read_bytes()
        at.file_uploader(key="model_file").upload("credit.json", model).run()
        raw = frame.to_csv(index=False).encode()
        at.file_uploader(key="data_file").upload("credit.csv", raw, "text/csv").run()
        at.selectbox(key="id_column").set_value("customer_id").run()
        at.text_input(key="label").set_value("Status").run()
    at.selectbox(key="explainer").set_value("tree-shap").run()
    at.text_input(key="rows:tabular").set_value(rows).run()
    return explain(at)


def shown_explanation(at) -> Explanation:
    return at.session_state["results"][at.session_state["current"]]


def waterfall_row(at) -> tuple[str, float]:
    """The waterfall's title and the prediction its last bar ends at."""
    figure = chart(at, "waterfall")
    return figure["layout"]["title"]["text"], float(values(figure["data"][0]["x"])[-1])


def test_local_row_search_by_number_by_identifier_and_step() -> None:
    at = explained_credit("5:30", ids=True)
    at.switch_page("views/local.py").run()
    no_errors(at)
    explanation = shown_explanation(at)
    assert at.number_input(key="local_row").value == 5  # the first explained row

    def lands_on(row: int) -> None:
        no_errors(at)
        assert at.number_input(key="local_row").value == row
        title, prediction = waterfall_row(at)
        assert title.startswith(f"Row {row}, tree-shap")
        assert prediction == pytest.approx(explanation.predictions[row - 5])
        assert any(c.value.startswith(rf"Row {row} (customer\_id C-{row:03d})") for c in at.caption)

    at.number_input(key="local_row").set_value(12).run()
    lands_on(12)
    at.button(key="local_row:next").click().run()
    lands_on(13)
    at.button(key="local_row:previous").click().run()
    lands_on(12)
    at.text_input(key="local_row:id").set_value("C-020").run()
    lands_on(20)

    at.text_input(key="local_row:id").set_value("C-999").run()  # no such identifier
    lands_on(20)
    assert r"No row has customer\_id C-999." in [w.value for w in at.warning]

    at.text_input(key="local_row:id").set_value("C-002").run()  # a row left unexplained
    no_errors(at)
    (warning,) = [w.value for w in at.warning if "was not explained" in w.value]
    assert warning.startswith(r"Row 2 (customer\_id C-002) was not explained")
    assert "25 rows, numbered 5 to 29" in warning
    assert not at.get("plotly_chart")  # nothing drawn for a row that has no explanation
    at.button(key="local_row:next").click().run()  # back among the explained rows
    lands_on(5)


def test_rows_with_id_matches_exactly() -> None:
    text = pd.Series(["A-1", "a-1", "A-10", "A-1"])
    assert rows_with_id(text, "A-1").tolist() == [0, 3]
    assert rows_with_id(text, "A").tolist() == []
    numbers = pd.Series([7, 70, 7, 8])
    assert rows_with_id(numbers, "7").tolist() == [0, 2]
    assert rows_with_id(numbers, "7.0").tolist() == []  # as the identifier reads, exactly
    assert rows_with_id(numbers, "seven").tolist() == []


def test_global_view_samples_its_charts_and_ranks_every_row(monkeypatch) -> None:
    """Charts limited to fewer rows than were explained draw a seeded sample and say so;
    the ranking is the mean |attribution| over every row."""
    monkeypatch.setattr(charts, "BEESWARM_ROWS", 150)
    monkeypatch.setattr(charts, "DEPENDENCE_ROWS", 250)
    at = explained_credit("0:400")
    at.switch_page("views/global_view.py").run()
    no_errors(at)
    captions = [c.value for c in at.caption]
    assert "The beeswarm draws a seeded sample of 150 of 400 rows; the ranking uses every row." in (
        captions
    )
    assert "The dependence plot draws a seeded sample of 250 of 400 rows." in captions

    model = demos.resolve_model("demo:credit-xgboost")
    data = demos.resolve_data("demo:credit", model)
    expected = registry.get("tree-shap")().explain(model, data, rows=range(400))
    means = np.abs(expected.values).mean(axis=0)
    bars = chart(at, "importance")["data"][0]
    shown = dict(zip(values(bars["y"]), values(bars["x"]), strict=True))
    dictionary = load_dictionary(demos.dictionary_path("credit"))
    for name, value in zip(expected.feature_names, means, strict=True):
        assert shown[dictionary[name].get("label", name)] == pytest.approx(value, rel=1e-9)

    def drawn(key: str) -> list[set[int]]:
        """The rows each trace of the chart draws."""
        found = [t["customdata"] for t in chart(at, key)["data"] if "customdata" in t]
        return [  # the row number is the first column (binary-encoded where it is alone)
            {int(r) for r in (values(c) if isinstance(c, dict) else np.asarray(c)[:, 0])}
            for c in found
        ]

    swarm, dependence = drawn("beeswarm"), drawn("dependence")
    assert len(set().union(*swarm)) == 150
    points = sum(len(values(t["x"])) for t in chart(at, "beeswarm")["data"])
    assert points == 150 * len(expected.feature_names)  # a point per row and feature
    assert "a seeded sample of 150 of 400 rows" in chart(at, "beeswarm")["layout"]["title"]["text"]
    assert len(set().union(*dependence)) == 250
    at.run()  # the same sample again
    assert drawn("beeswarm") == swarm and drawn("dependence") == dependence


def test_charts_draw_at_most_their_limit_of_a_million_rows() -> None:
    rng = np.random.default_rng(1)
    rows, features = 1_000_000, 3
    data = rng.normal(size=(rows, features))
    explanation = Explanation(
        values=data * [1.0, 0.5, 0.1],
        base_values=np.zeros(rows),
        data=data,
        predictions=data @ [1.0, 0.5, 0.1],
        feature_names=["a", "b", "c"],
        output_names=["value"],
        target=np.zeros(rows, dtype=np.int64),
        output_space="value",
        method="test",
        params={},
        seed=3,
        device="cpu",
    )
    swarm = charts.beeswarm(explanation)
    assert sum(len(trace.x) for trace in swarm.data) == charts.BEESWARM_ROWS * features
    assert "a seeded sample of 2,000 of 1,000,000 rows" in swarm.layout.title.text
    dependence = charts.dependence(explanation, "a", color_by=None)
    assert len(dependence.data[0].x) == charts.DEPENDENCE_ROWS
    sample = charts.row_sample(explanation, 10)
    assert np.array_equal(sample, charts.row_sample(explanation, 10))  # seeded
    assert np.all(np.diff(sample) > 0)  # distinct, in order
    other = charts.row_sample(dataclasses.replace(explanation, seed=4), 10)
    assert not np.array_equal(sample, other)
    assert np.allclose(charts.mean_abs(explanation), np.abs(explanation.values).mean(axis=0))
    histogram = charts.prediction_histogram(explanation.predictions, "value")
    assert len(histogram.data[0].y) == charts.HISTOGRAM_BINS
    assert sum(histogram.data[0].y) == rows


def test_overview_pages_the_rows() -> None:
    at = app().run()
    no_errors(at)
    model = demos.resolve_model("demo:credit-xgboost")
    data = demos.resolve_data("demo:credit", model)
    at.number_input(key="overview_page").set_value(3).run()
    no_errors(at)
    table = at.dataframe[-1].value
    assert list(table.index) == list(range(200, 300))
    assert table["Income"].tolist() == pytest.approx(data.frame["Income"].iloc[200:300].tolist())
    assert f"Rows 200 to 299 of {len(data):,}." in [c.value for c in at.caption]
