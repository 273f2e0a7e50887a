"""Screenshots of every dashboard view on the built-in demos, for the docs.

    .venv/bin/python docs/make_screenshots.py [OUT_DIR]

Starts `whybox dashboard` and drives Debian's Chromium (`apt-get install chromium`) with
Playwright; writes overview.png, global.png, local.png, compare.png, quality.png, runs.png,
cohorts.png, rules.png, shift.png, versions.png and images.png to docs/screenshots (or
OUT_DIR). The demos train on first use into WHYBOX_CACHE_DIR (by default ~/.cache/whybox);
that takes a minute the first time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import browser  # noqa: E402
from whybox.model_zoo import demos  # noqa: E402

WIDTH, HEIGHT = 1400, 1600  # Streamlit's page scrolls inside; full_page would not grow
REFERENCE_UPLOADER = 1  # with a demo: the data dictionary's box, then the reference's
DECLINED_ROW = 2  # a credit applicant the demo model declines


def shoot(page, path: Path, charts: int = 1) -> None:
    browser.wait_for_charts(page, charts, timeout=120)
    page.mouse.move(0, HEIGHT - 1)  # no hover labels in the picture
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("credit-xgboost", "credit-xgboost-v2", "digits-cnn"):  # trained here, once
        demos.model_path(name)
    started = time.perf_counter()
    with browser.dashboard_server() as url, browser.chromium(WIDTH, HEIGHT) as context:
        page = browser.open_app(context, url)
        browser.choose_source(page, browser.DEMO)
        browser.select(page, "Demo model", "credit-xgboost")
        browser.explain(page)
        shoot(page, out / "overview.png")

        browser.open_view(page, "Global")
        shoot(page, out / "global.png", 2)
        # Local on a declined applicant, with what would change the decision
        browser.sidebar(page).get_by_text("Report", exact=True).click()
        browser.select(page, "Favourable class", "good")
        browser.open_view(page, "Local")
        browser.fill(page, "Row (row number)", str(DECLINED_ROW), role="spinbutton")
        page.get_by_text("If ", exact=False).first.wait_for(timeout=120 * browser.MS)
        shoot(page, out / "local.png")

        browser.open_view(page, "Compare")
        browser.select(page, "Compare tree-shap with", "permutation-shap")
        browser.click_button(page, "Run comparison")
        shoot(page, out / "compare.png")

        browser.open_view(page, "Global")  # the Quality panel, beside the comparison's method
        browser.click_button(page, "Check quality")
        table = page.locator('[data-testid="stMain"] [data-testid="stTable"]')
        table.filter(has_text="Deletion").first.wait_for(timeout=120 * browser.MS)
        browser.wait_idle(page)
        table.last.scroll_into_view_if_needed()
        shoot(page, out / "quality.png", charts=2)

        browser.open_view(page, "Runs")
        shoot(page, out / "runs.png")

        browser.open_view(page, "Cohorts")
        shoot(page, out / "cohorts.png")
        browser.open_view(page, "Rules")
        browser.click_button(page, "Train a glass-box model (EBM)")
        page.get_by_text("its shape in the EBM").first.wait_for(timeout=120 * browser.MS)
        shoot(page, out / "rules.png", charts=3)

        browser.upload(page, REFERENCE_UPLOADER, demos.data_path("credit-30-and-over"))
        browser.open_view(page, "Shift")
        shoot(page, out / "shift.png", charts=2)

        browser.open_view(page, "Versions")  # B: the demo's newer version, chosen to start with
        shoot(page, out / "versions.png", charts=2)

        browser.select(page, "Demo model", "digits-cnn")
        browser.explain(page)
        browser.open_view(page, "Images")
        shoot(page, out / "images.png", charts=8 + 3)  # the grid and three methods side by side
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots")
