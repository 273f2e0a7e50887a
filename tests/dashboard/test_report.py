"""Reports: HTML and PDF of a tabular and an image run, their sections, what they load,
escaping of every user-provided name, reason codes, and the `whybox report` command."""

from __future__ import annotations

import base64
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from markupsafe import escape
from PIL import ImageFile
from plotly.offline import get_plotlyjs

from whybox.dashboard.cli.main import main
from whybox.dashboard.reports import report
from whybox.dashboard.reports.reasons import decide, load_reason_texts
from whybox.dashboard.runs.records import Run, load_run, save_run
from whybox.explainers import registry
from whybox.explainers.testing import (
    FEATURES,
    PATCH_SIDE,
    QUADRANTS,
    fixture,
    image_set,
    patch_images,
    synthetic_frame,
    synthetic_signal,
    trained_mlp,
)
from whybox.model_zoo import Dataset, WhyboxError, load_data
from whybox.model_zoo.architectures import SmallCNN
from whybox.model_zoo.wrap import wrap_torch

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = "</script><script>alert(1)</script>"
BOLD = "<b>x</b>"
FORMULA = '=HYPERLINK("http://evil.example","x")'
HOSTILE_FEATURES = [BREAKOUT, BOLD, FORMULA, "f3", "f4"]
HOSTILE_CLASSES = [BOLD, SCRIPT]


def _save(model, data, explainer: str, rows, out: Path) -> Run:
    explanation = registry.get(explainer)().explain(model, data, rows=rows)
    saved = save_run(model, data, explanation, out, command=["whybox", "explain", "test"])
    return load_run(saved.directory)


@pytest.fixture(scope="module")
def tabular_run(tmp_path_factory) -> Run:
    model = fixture("binary-xgboost")
    frame = synthetic_frame(60)
    labels = pd.Series((synthetic_signal(frame.to_numpy()) > 0).astype(int))
    data = Dataset(frame, sha256="1" * 64, name="synthetic.csv", labels=labels, label_name="y")
    return _save(model, data, "tree-shap", range(5), tmp_path_factory.mktemp("tabular"))


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Run:
    torch.manual_seed(0)  # an untrained network: the report needs maps, not good ones
    network = SmallCNN(1, len(QUADRANTS), (PATCH_SIDE, PATCH_SIDE), (8, 8, 8)).eval()
    model = wrap_torch(network, network.input_shape, "logits", class_names=QUADRANTS)
    images, _, _ = patch_images(3, seed=1)
    directory = tmp_path_factory.mktemp("images")
    return _save(model, image_set(images), "grad-cam", None, directory)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> Run:
    """A run whose model, class, feature, label and file names are all markup, loaded the
    way an upload is: a CSV file read by `load_data`."""
    model = wrap_torch(
        trained_mlp("binary"),
        len(FEATURES),
        "logit",
        name=f"{BOLD} model",
        feature_names=HOSTILE_FEATURES,
        class_names=HOSTILE_CLASSES,
        sha256="ab" * 32,
    )
    frame = synthetic_frame(40).set_axis(HOSTILE_FEATURES, axis=1)
    frame[SCRIPT] = np.where(synthetic_signal(frame.to_numpy()) > 0, SCRIPT, BOLD)
    data = load_data(frame.to_csv(index=False).encode(), model, label=SCRIPT, name=f"{SCRIPT}.csv")
    return _save(model, data, "exact-shapley", range(12), tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def hostile_texts(tmp_path_factory):
    path = tmp_path_factory.mktemp("texts") / "texts.csv"
    rows = [(name, f"{SCRIPT} {BOLD} statement") for name in HOSTILE_FEATURES]
    pd.DataFrame(rows, columns=["feature", "statement"]).to_csv(path, index=False)
    return load_reason_texts(path)


class _Page(HTMLParser):
    """Every URL an HTML page's tags point at, and the text of its style sheets."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.urls += [v for k, v in attrs if k in ("src", "href", "srcset", "data") and v]
        self._in_style = tag == "style"

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def _html(run: Run, **options) -> str:
    return report.report_bytes(run, "html", **options).decode()


def _pdf_text(run: Run, tmp_path: Path, **options) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(report.report_bytes(run, "pdf", **options))
    return subprocess.run(
        ["pdftotext", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


@pytest.mark.parametrize("which", ["tabular_run", "image_run"])
def test_html_is_self_contained_with_interactive_charts(which, request):
    run = request.getfixturevalue(which)
    html = _html(run)
    page = _Page()
    page.feed(html)
    remote = [u for u in page.urls if re.match(r"\s*(https?:)?//", u, re.IGNORECASE)]
    assert not remote
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", "".join(page.styles))
    assert html.count(get_plotlyjs()) == 1
    ours = html.replace(get_plotlyjs(), "")
    decisions = len(run.explanation.values)
    charts = 1 + (0 if run.images else decisions)  # importance, and a waterfall per row
    assert ours.count("Plotly.newPlot(") == charts
    assert ours.count('class="decision"') == decisions
    assert ours.count('src="data:image/png;base64,') == (decisions if run.images else 0)
    for heading in report.SECTIONS.values():
        assert f">{heading}</h2>" in html


@pytest.mark.parametrize("which", ["tabular_run", "image_run"])
def test_pdf_holds_every_section_on_the_page_its_contents_give(which, request, tmp_path):
    run = request.getfixturevalue(which)
    text = _pdf_text(run, tmp_path, paper="letter")
    pages = text.split("\f")[:-1]  # pdftotext ends each page with a form feed
    contents = re.findall(r"^\d+\. (.+?) \.{3,} (\d+)$", pages[0], re.MULTILINE)
    assert [title for title, _ in contents] == list(report.SECTIONS.values())
    for title, page in contents:
        assert title in pages[int(page) - 1]
    decisions = [int(p) for t, p in contents if t in ("Decisions", "Quality of the explanations")]
    assert decisions[1] - decisions[0] == len(run.explanation.values)  # a page per decision
    for number, page in enumerate(pages, start=1):
        assert f"page {number} of {len(pages)}" in page
    assert run.record["model"]["sha256"] in pages[0] and run.record["run_id"] in pages[-1]
    if not run.images:
        assert "Row 4, tree-shap" in text  # the last decision's static waterfall


def test_every_user_provided_string_is_escaped(hostile_run, hostile_texts):
    html = _html(hostile_run, favourable=SCRIPT, texts=hostile_texts)
    assert "<script>alert" not in html
    assert "<b>x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # class and file names, texts
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in html  # a feature name
    assert "&lt;b&gt;x&lt;/b&gt; model" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;b&gt;x&lt;/b&gt; statement" in html
    # Chart text holds names entity-escaped (plotly would render tags), and the JSON
    # escapes "/", so no </script> ends a script early.
    assert '"&lt;\\u002fscript&gt;&lt;script&gt;alert(1)' in html
    scripts = html.replace(get_plotlyjs(), "")
    assert scripts.count("<script") == scripts.count("</script>")


def test_run_record_holds_the_schema_background_and_sources(tabular_run, hostile_run, image_run):
    schema = tabular_run.record["data"]["schema"]
    frame = synthetic_frame(60)
    assert [c["name"] for c in schema] == FEATURES
    assert schema[2]["type"] == "float64" and schema[2]["missing"] == 0
    assert schema[2]["mean"] == pytest.approx(frame["f2"].mean())
    assert schema[2]["max"] == pytest.approx(frame["f2"].max())
    assert tabular_run.record["background"] is None  # tree-shap takes none
    assert hostile_run.record["background"] == {"rows": 40, "of": 40, "seed": 0}
    assert image_run.record["data"]["explained_sources"] == [f"patches[{i}]" for i in range(3)]


def test_csv_exports_neutralise_formula_injection(hostile_run):
    columns = pd.read_csv(hostile_run.directory / "attributions.csv").columns
    assert "'" + FORMULA in columns and FORMULA not in columns
    assert BREAKOUT in columns  # other names are kept as they are


def test_decisions_give_principal_reasons_for_unfavourable_outcomes(tabular_run):
    explanation = tabular_run.explanation
    predicted = tabular_run.record["predicted_classes"]
    html = _html(tabular_run, favourable="1")
    unfavourable = [i for i, c in enumerate(predicted) if c != "1"]
    assert 0 < len(unfavourable) < len(predicted)
    assert html.count("Decision: <strong>unfavourable</strong>") == len(unfavourable)
    assert html.count("Decision: <strong>favourable</strong>") == len(predicted) - len(unfavourable)
    first = decide(explanation, unfavourable[0], "1", predicted[unfavourable[0]])
    assert first.reasons and f"{first.reasons[0].contribution:+.4g}" in html
    assert html.count("<h4>Principal reasons</h4>") == len(unfavourable)
    plain = _html(tabular_run)  # no favourable class: the top features each way
    assert "Principal reasons" not in plain
    assert plain.count("The features that pushed each way") == len(predicted)


def test_image_decisions_show_the_outcome_and_the_map(image_run):
    favourable = QUADRANTS[0]
    html = _html(image_run, favourable=favourable)
    predicted = image_run.record["predicted_classes"]
    outcomes = re.findall(r"Decision: <strong>(\w+)</strong>", html)
    assert outcomes == ["favourable" if c == favourable else "unfavourable" for c in predicted]
    overlay = sorted((image_run.directory / "overlays").glob("00001_*.png"))[0]
    assert base64.b64encode(overlay.read_bytes()).decode() in html


def test_decisions_beyond_the_cap_are_left_out_with_a_note(tabular_run, monkeypatch):
    monkeypatch.setattr(report, "MAX_DECISIONS", 2)
    html = _html(tabular_run)
    assert html.count('class="decision"') == 2
    text = " ".join(html.split())
    assert "The first 2 rows are shown; 3 more were explained" in text
    assert "Only the first 2 of 5 decisions are shown" in text


def test_method_section_lists_every_parameter_with_its_help(image_run):
    html = _html(image_run)
    for spec in registry.get("grad-cam").params:
        assert f"<td>{spec.name}</td>" in html
        assert str(escape(spec.help)) in html


def test_report_options_are_checked(tabular_run, tmp_path):
    with pytest.raises(WhyboxError, match="not one of the model's classes: '0', '1'"):
        report.report_bytes(tabular_run, "html", favourable="good")
    with pytest.raises(WhyboxError, match="a4 or letter"):
        report.report_bytes(tabular_run, "pdf", paper="a3")
    assert report.report_format(tmp_path / "r.PDF") == "pdf"
    assert report.report_format(tmp_path / "r", "html") == "html"
    with pytest.raises(WhyboxError, match="does not match"):
        report.report_format(tmp_path / "r.html", "pdf")


def test_pdf_without_chromium_says_to_install_it(monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    with pytest.raises(WhyboxError, match="install it"):
        report.start_chart_browser()


def test_report_command(tabular_run, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", str(tabular_run.directory), "--out", str(out)]) == 0
    assert tabular_run.run_id in capsys.readouterr().out
    assert tabular_run.record["model"]["sha256"] in out.read_text()
    for args in (
        [str(tmp_path), "--out", str(out)],  # not a run directory
        [str(tabular_run.directory), "--out", str(out), "--format", "pdf"],
        [str(tabular_run.directory), "--out", str(out), "--reason-texts", "t.csv"],
    ):
        assert main(["report", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1


def test_explain_writes_its_report(tmp_path, capsys):
    out, html = tmp_path / "run", tmp_path / "run.html"
    status = main(
        [
            "explain",
            "demo:credit-xgboost",
            "demo:credit",
            "--rows",
            "0:3",
            "--out",
            str(out),
            "--store",
            str(tmp_path / "runs.sqlite"),
            "--report",
            str(html),
            "--favourable",
            "good",
        ]
    )
    assert status == 0, capsys.readouterr().err
    run = load_run(out)
    text = html.read_text()
    assert run.run_id in text and "Decision: <strong>" in text


def test_pdf_reports_leave_damaged_uploads_refused(tabular_run) -> None:
    """weasyprint makes Pillow accept truncated images on import; a report must not."""
    report.report_bytes(tabular_run, "pdf")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
