"""The dashboard in a real browser: `whybox dashboard` served, Chromium driven by Playwright.

Uploads go through the sidebar's file inputs as a user's would. Needs Debian's Chromium
(`apt-get install chromium`); without it the tests skip, except under CI (`CI` set), where
a missing browser is a failure.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e import browser
from tests.model_zoo.categorical import explained_csv, skops_pipeline
from whybox.dashboard.reports.report import SECTIONS
from whybox.model_zoo import demos

browser.require_chromium()

MS = browser.MS


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """The demo cache this process and the server share (tests/conftest.py sets it)."""
    path = os.environ.get("WHYBOX_CACHE_DIR") or str(tmp_path_factory.mktemp("whybox-cache"))
    os.environ["WHYBOX_CACHE_DIR"] = path
    return Path(path)


@pytest.fixture(scope="module")
def files(cache_dir) -> dict[str, Path]:
    """The demo files to upload, trained here first so the server finds them cached."""
    return {
        "credit-model": demos.model_path("credit-xgboost"),
        "credit-data": demos.data_path("credit"),
        "digits-model": demos.model_path("digits-cnn"),
        "digits-data": demos.data_path("digits"),
        "reference": demos.data_path("credit-30-and-over"),
        "young": demos.data_path("credit-under-30"),
    }


@pytest.fixture(scope="module")
def server(cache_dir, files) -> str:
    with browser.dashboard_server(cache_dir) as url:
        yield url


@pytest.fixture(scope="module")
def context():
    with browser.chromium() as context:
        yield context


@pytest.fixture
def page(context, server, request, tmp_path):
    """A fresh page, so a fresh Streamlit session, with uploads chosen in the sidebar. When the
    test fails, a screenshot of the page is kept in its tmp_path."""
    page = browser.open_app(context, server)
    browser.choose_source(page, browser.UPLOAD)
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(tmp_path / "failure.png"))
        print(f"screenshot of the failed page: {tmp_path / 'failure.png'}")
    page.close()


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def test_tabular_upload_explains_shows_local_and_global_and_exports(page, files, tmp_path):
    browser.upload(page, 0, files["credit-model"])
    browser.upload(page, 1, files["credit-data"])
    browser.fill(page, "Label column (optional)", "Status")
    browser.fill(page, "Rows to explain", "0:20", exact=False)  # a PDF of 20 decisions
    message = browser.explain(page, timeout=120)
    assert re.match(r"tree-shap: 20 rows in [\d.]+ s", message), message

    browser.open_view(page, "Local")
    browser.wait_for_charts(page)
    reasons = page.locator('[data-testid="stMain"] li')
    reasons.first.wait_for()
    sentences = reasons.all_inner_texts()
    assert sentences and all(
        re.search(r"(raised|lowered) the log-odds of class 'good' by [\d.]+", s) for s in sentences
    ), sentences
    assert "Top reasons" in main_text(page)

    browser.open_view(page, "Global")
    browser.wait_for_charts(page, 2)
    assert "tree-shap on 20 rows" in main_text(page)
    assert browser.sidebar(page).locator(browser.ERROR).count() == 0

    sha256 = hashlib.sha256(files["credit-model"].read_bytes()).hexdigest()
    html = download(page, "Report (HTML)", tmp_path).read_text()
    assert sha256 in html and all(title in html for title in SECTIONS.values())
    command = re.search(r"whybox explain credit-xgboost.json credit.csv [^<]*", html)
    assert command and all(
        part in command[0] for part in ("--label Status", "--out RUN_DIR", "--rows 0:20")
    ), command
    pdf = download(page, "Report (PDF)", tmp_path)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True).stdout
    assert pdf.read_bytes().startswith(b"%PDF") and sha256 in text.decode()


def test_a_pipeline_and_a_csv_with_text_read_as_category_names(page, tmp_path):
    """A skops pipeline on raw text columns and a CSV with strings: the reasons name the
    category ('home = rent'), never its code."""
    raw, _ = skops_pipeline("one-hot")
    model, data = tmp_path / "pipeline.skops", tmp_path / "applicants.csv"
    model.write_bytes(raw)
    data.write_bytes(explained_csv())
    browser.upload(page, 0, model)
    browser.upload(page, 1, data)
    message = browser.explain(page, timeout=120)
    assert "8 rows" in message, message
    browser.open_view(page, "Local")
    browser.wait_for_charts(page)
    browser.fill(page, "Row (row number)", "1", role="spinbutton")
    reasons = page.locator('[data-testid="stMain"] li')
    reasons.filter(has_text="home = rent").first.wait_for(timeout=30 * MS)
    sentences = reasons.all_inner_texts()
    assert not any(re.search(r"home = \d", s) for s in sentences), sentences


def test_a_reference_upload_gives_typicality_and_the_shift_view(page, files):
    """Applicants under 30 explained against a reference of those 30 and over: the Local
    view's typicality badge, and the Shift view ranks Age first."""
    browser.upload(page, 0, files["credit-model"])
    browser.upload(page, 1, files["young"])
    browser.fill(page, "Label column (optional)", "Status")
    browser.upload(page, 3, files["reference"])  # after the data dictionary's box
    browser.fill(page, "Rows to explain", "0:20", exact=False)
    browser.explain(page, timeout=120)
    browser.open_view(page, "Local")
    browser.wait_for_charts(page)
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text(re.compile(r"typicality [\d.e-]+")).first.wait_for(timeout=30 * MS)
    assert "reference rows are this unusual" in main_text(page)
    browser.open_view(page, "Shift")
    browser.wait_for_charts(page, 2, timeout=120)
    warning = main.locator('[data-testid="stAlertContentWarning"]').first.inner_text()
    assert "Shift found in" in warning and ": Age," in warning, warning  # the icon's name first
    assert browser.sidebar(page).locator(browser.ERROR).count() == 0


def download(page, label: str, folder: Path) -> Path:
    """Click a download button and save what it sends."""
    with page.expect_download(timeout=120 * MS) as started:
        browser.click_button(page, label)
    path = folder / started.value.suggested_filename
    started.value.save_as(path)
    return path


def test_image_upload_shows_overlays_named_by_file(page, files):
    browser.upload(page, 0, files["digits-model"])
    browser.upload(page, 1, files["digits-data"])
    browser.select(page, "Explainer", "grad-cam")
    browser.fill(page, "Rows to explain", "0:4", exact=False)
    message = browser.explain(page, timeout=120)
    assert re.match(r"grad-cam: 4 images in [\d.]+ s", message), message

    browser.open_view(page, "Images")
    browser.wait_for_charts(page, 4, timeout=90)
    charts = page.locator(browser.CHART.removesuffix(" .main-svg"))
    assert charts.count() >= 4
    titles = page.locator('[data-testid="stPlotlyChart"] .gtitle').all_text_contents()
    for name in ("digit_1597_label2.png", "digit_1598_label0.png", "digit_1600_label2.png"):
        assert any(title.startswith(name) for title in titles), titles
    assert browser.sidebar(page).locator(browser.ERROR).count() == 0


def test_unsafe_model_is_refused_with_a_message_not_a_traceback(page, tmp_path):
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps({"a": 1}))
    browser.upload(page, 0, model)
    error = page.locator(browser.ERROR)
    error.first.wait_for(timeout=30 * MS)
    assert "can run code" in error.first.inner_text()
    browser.wait_idle(page)
    text = page.locator("body").inner_text()
    assert "Traceback" not in text
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_file_over_the_upload_limit_is_refused_beside_the_limits_setting(
    context, cache_dir, tmp_path
):
    """Streamlit refuses it in the browser with its own words; the box's note names the
    operator's setting next to them."""
    big = tmp_path / "big.csv"
    big.write_bytes(b"a,b\n" + b"1,2\n" * 400_000)  # 1.5 MB
    env = {"WHYBOX_MAX_UPLOAD_MB": "1"}
    with browser.dashboard_process(cache_dir, env=env) as (url, _):
        page = browser.open_app(context, url)
        browser.choose_source(page, browser.UPLOAD)
        browser.wait_idle(page)
        uploader = page.locator('[data-testid="stFileUploader"]').first
        uploader.locator('input[type="file"]').set_input_files(str(big))
        deadline = time.monotonic() + 30
        while "or smaller" not in (text := browser.sidebar(page).inner_text()):
            assert time.monotonic() < deadline, text
            time.sleep(0.5)
        page.close()
    assert "1.0MB or smaller" in text.replace(" MB", "MB")
    assert "Files up to 1 MB, a limit the operator sets with WHYBOX_MAX_UPLOAD_MB" in text
