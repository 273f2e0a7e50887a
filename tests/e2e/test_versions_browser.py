"""The Versions view in a real browser: the credit demo against its newer version
(credit-xgboost-v2, retrained without the applicants with past records), which the sidebar
chooses as the second model (B) to start with.

Needs Debian's Chromium (`apt-get install chromium`); without it the test skips, except
under CI (`CI` set), where a missing browser is a failure.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e import browser
from whybox.model_zoo import demos

browser.require_chromium()

MS = browser.MS
PAIR = ("credit-xgboost", "credit-xgboost-v2")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    yield from browser.demo_server(tmp_path_factory, *PAIR)


def test_the_versions_view_names_the_planted_cohort_and_offers_the_report(server, tmp_path):
    with browser.chromium(1400, 1600) as context:
        page = browser.open_app(context, server)
        try:
            browser.choose_source(page, browser.DEMO)
            box = page.get_by_role("combobox", name="Second model (B, a candidate version)")
            box.wait_for(timeout=60 * MS)
            assert box.input_value().startswith("credit-xgboost-v2")
            browser.open_view(page, "Versions")
            browser.wait_for_charts(page, 2, timeout=300)  # the change and the importance
            main = page.locator('[data-testid="stMain"]')
            verdict = main.locator('[data-testid="stAlertContentWarning"]').first.inner_text()
            assert "B is worse on" in verdict and "Records" in verdict, verdict
            cohort = main.locator("li").filter(has_text=re.compile(r"Records .*: B wrong on"))
            cohort.first.wait_for(timeout=30 * MS)
            assert cohort.first.is_visible()
            button = page.get_by_role("button", name="Versions report (HTML)")
            button.wait_for(timeout=30 * MS)
            assert button.is_visible()
            assert browser.sidebar(page).locator(browser.ERROR).count() == 0
            page.mouse.move(0, 1599)  # no hover labels in the picture
            page.screenshot(path=str(tmp_path / "versions.png"))
            with page.expect_download(timeout=120 * MS) as started:
                button.click()
            report = Path(tmp_path / started.value.suggested_filename)
            started.value.save_as(report)
            html = report.read_text()
            for name in PAIR:
                assert demos.resolve_model(f"demo:{name}").sha256 in html
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print(f"screenshot of the failed page: {tmp_path / 'failure.png'}")
            raise
