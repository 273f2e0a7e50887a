"""The Quality panel in a real browser: the credit demo explained, its quality checked from
the Global view, the verdicts in the page and in the report downloaded from it.

Needs Debian's Chromium (`apt-get install chromium`); without it the test skips, except
under CI (`CI` set), where a missing browser is a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import browser

browser.require_chromium()

MS = browser.MS


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    yield from browser.demo_server(tmp_path_factory, "credit-xgboost")


def test_quality_is_checked_from_the_global_view_and_reaches_the_report(server, tmp_path):
    with browser.chromium(1400, 1600) as context:
        page = browser.open_app(context, server)
        try:
            browser.choose_source(page, browser.DEMO)
            browser.fill(page, "Rows to explain", "0:100", exact=False)
            browser.explain(page)
            browser.open_view(page, "Global")
            browser.wait_for_charts(page, 2, timeout=120)
            browser.click_button(page, "Check quality")
            main = page.locator('[data-testid="stMain"]')
            verdict = main.get_by_text("better than random orders (p =").first
            verdict.wait_for(timeout=120 * MS)
            browser.wait_idle(page)
            table = main.locator('[data-testid="stTable"]').filter(has_text="Deletion")
            text = table.first.inner_text()
            for title in ("Deletion", "Insertion", "Faithfulness correlation", "Infidelity"):
                assert title in text, text
            assert main.locator(browser.ERROR).count() == 0
            table.first.scroll_into_view_if_needed()
            page.mouse.move(1399, 0)  # no tooltip in the picture
            page.wait_for_timeout(500)
            page.screenshot(path=str(tmp_path / "quality.png"))
            button = page.get_by_role("button", name="Report (HTML)")
            with page.expect_download(timeout=120 * MS) as started:
                button.first.click()
            report = Path(tmp_path / started.value.suggested_filename)
            started.value.save_as(report)
            html = report.read_text()
            assert "Measured on this model" in html and "better than random orders" in html
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print(f"screenshot of the failed page: {tmp_path / 'failure.png'}")
            raise
