"""The model change sign-off report and its verdict: both models and the data by SHA-256,
the cohort where B is worse, the reasons side by side, the method, the sign-off block;
every name escaped; the PDF."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from markupsafe import escape

from tests.trust.versions_models import applicants, in_cohort, read, train
from whybox.dashboard.reports.versions_page import (
    versions_record,
    versions_report_bytes,
    write_versions_report,
)
from whybox.dashboard.reports.wording import version_verdict
from whybox.model_zoo import WhyboxError, load_data
from whybox.trust.versions import diff_models

ROWS = 1500
COMMAND = ["whybox", "diff", "a.json", "b.json", "data.csv", "--label", "Status"]


def _planted(frame):
    planted = frame.copy()
    cohort = in_cohort(frame)
    planted.loc[cohort, "Status"] = np.where(frame.Status[cohort] == "good", "bad", "good")
    return planted


@pytest.fixture(scope="module")
def frame():
    return applicants(ROWS, 0)


@pytest.fixture(scope="module")
def planted(tmp_path_factory, frame):
    """diff.json of a B trained with the young renters' labels flipped, reasons compared."""
    folder = tmp_path_factory.mktemp("planted")
    a = train(frame, folder / "a.json", seed=0)
    b = train(_planted(frame), folder / "b.json", seed=1)
    data = read(frame, a)
    found = diff_models(a, data, b, read(frame, b), favourable="good", seed=0)
    return versions_record(COMMAND, a, b, data, found)


@pytest.fixture(scope="module")
def reordered(tmp_path_factory, frame):
    """diff.json of a B trained on the same data with the classes in the other order."""
    folder = tmp_path_factory.mktemp("reordered")
    a = train(frame, folder / "a.json", seed=0)
    b = train(frame, folder / "b.json", seed=0, classes=["good", "bad"])
    data = read(frame, a)
    found = diff_models(a, data, b, read(frame, b), explain=False)
    return versions_record(COMMAND, a, b, data, found)


def test_the_report_names_both_models_the_cohort_and_the_method(planted) -> None:
    page = versions_report_bytes(planted, "html").decode()
    rule = planted["cohorts"][0]["rule"]
    assert rule == "age ≤ 29 and home is rent"
    assert f"<td>{rule}</td>" in page and f"Performance in {rule}" in page
    for sha in (planted["models"]["A"]["sha256"], planted["models"]["B"]["sha256"]):
        assert sha in page
    assert planted["data"]["sha256"] in page
    assert "<h1>Model change sign-off</h1>" in page and escape(version_verdict(planted)) in page
    signoff = page[page.index('<section id="signoff">') :]
    for said in ("reviewer", "approve model B", "reject model B", "date", "signature"):
        assert said in signoff
    assert (
        "Both models were explained with the same method (tree-shap), the same background, "
        "in the same output space (margin), for the same class (good) and with the same seed (0)"
    ) in page
    assert "lose it under B" in page and "95 % interval of the change" in page
    assert "bad under A, good under B" in page and "appeared under B" in page
    assert "whybox diff a.json b.json data.csv --label Status" in page
    assert page.count('class="chart"') == 2  # the change histogram, the importance change
    assert 'src="http' not in page and "<script src" not in page  # nothing loaded from outside
    features = [f["feature"] for f in planted["reasons"]["features"]]
    assert page.index("<td>noise</td>") > max(page.index(f"<td>{f}</td>") for f in features[:2])


def test_without_a_cohort_the_report_says_how_it_looked(reordered) -> None:
    verdict = version_verdict(reordered)
    assert "within noise" in verdict
    assert verdict.endswith("No cohort where B is significantly worse (Holm-corrected at 0.05).")
    page = versions_report_bytes(reordered, "html").decode()
    assert "No cohort where B is significantly worse than A was found." in page
    search = reordered["cohort_search"]
    assert (
        escape(
            f"A regression tree of depth 3 (leaves of at least 30 rows) was fitted to the change "
            f"in each row's error rate between A and B on a random half of the rows "
            f"({search['fitted_rows']:,}, seed 0)"
        )
        in page
    )
    assert "The models' reasons were not compared." in page
    assert page.count('class="chart"') == 1


def test_without_labels_and_for_a_regressor(tmp_path, frame) -> None:
    a = train(frame, tmp_path / "a.json", seed=0)
    b = train(_planted(frame), tmp_path / "b.json", seed=1)
    unlabelled = frame.drop(columns="Status").to_csv(index=False).encode()
    data = [load_data(unlabelled, model, name="data.csv") for model in (a, b)]
    record = versions_record(COMMAND, a, b, data[0], diff_models(a, data[0], b, data[1]))
    assert version_verdict(record).endswith(
        "; the data has no labels, so performance is not compared."
    )
    page = versions_report_bytes(record, "html").decode()
    assert "The data has no label column" in page and "Cohorts where B is worse" in page

    a = train(frame, tmp_path / "ra.json", task="regression")
    b = train(_planted(frame), tmp_path / "rb.json", task="regression")
    values = frame.assign(Status=(frame.Status == "good").astype(float))  # what they predict
    data = read(values, a)
    record = versions_record(
        COMMAND, a, b, data, diff_models(a, data, b, read(values, b), explain=False)
    )
    verdict = version_verdict(record)
    assert verdict.startswith("B changes the value by ") and f"over {ROWS:,} rows" in verdict
    assert "RMSE rises from" in verdict
    page = versions_report_bytes(record, "html").decode()
    assert "mean absolute error" in page and "flips" not in page


def test_every_name_is_escaped(planted) -> None:
    hostile = "<script>alert(1)</script>"
    record = json.loads(json.dumps(planted).replace('"age', f'"{hostile}'))
    record["models"]["B"]["name"] = "<img src=x onerror=alert(1)>.json"
    record["data"]["name"] = "<b>data</b>.csv"
    assert any(hostile in c["rule"] for c in record["cohorts"])
    assert any(f["feature"] == hostile for f in record["reasons"]["features"])
    page = versions_report_bytes(record, "html").decode()
    assert hostile not in page and "<img src=x" not in page and "<b>data" not in page
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<td>{escaped} ≤ 29 and home is rent</td>" in page  # the rule
    assert f"<td>{escaped}</td>" in page  # the importance table
    assert "&lt;img src=x onerror=alert(1)&gt;.json" in page


def test_the_pdf_has_the_same_content(planted, tmp_path) -> None:
    with pytest.raises(WhyboxError, match="cannot tell the report format"):
        write_versions_report(planted, tmp_path / "sign-off.docx")
    path = write_versions_report(planted, tmp_path / "sign-off.pdf", paper="letter")
    assert path.read_bytes().startswith(b"%PDF")
    text = subprocess.run(
        ["pdftotext", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "Model change sign-off" in text and "age ≤ 29 and home is rent" in text
    assert planted["models"]["A"]["sha256"] in text and planted["models"]["B"]["sha256"] in text
    assert "approve model B" in text and "signature" in text
    pages = text.split("\f")[:-1]
    assert f"page 1 of {len(pages)}" in pages[0]
