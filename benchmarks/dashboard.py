"""The dashboard's speed as a user meets it: `python -m benchmarks.dashboard`.

Starts `whybox dashboard` (demos cached) with Chromium already open, as a user's browser
would be, and measures the seconds from the server's start until the first page is
interactive (the sidebar's Explain button usable) and until its charts are drawn; then,
on the Local view, the latency from a click on Explain for one new row of the credit demo
until its waterfall and reasons are on screen, repeated for p50 and p95. Run it on an idle
machine; timings never gate a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import NamedTuple

from tests.e2e import browser
from whybox.model_zoo import demos

FRESH_RESULT = """() => {
    const button = [...document.querySelectorAll('[data-testid="stSidebar"] button')]
        .find(b => b.innerText.trim() === 'Explain');
    const chart = document.querySelector('[data-testid="stMain"] [data-testid="stPlotlyChart"]'
        + ' .main-svg');
    return button && button.disabled && chart && !chart.closest('[data-stale="true"]')
        && !document.querySelector('[data-testid="stStatusWidget"]');
}"""


def first_page(page, started: float) -> tuple[float, float]:
    """Seconds from `started` to the Explain button being enabled, and to the Overview's
    charts being drawn."""
    page.get_by_role("button", name="Explain", exact=True).wait_for(timeout=120 * browser.MS)
    interactive = time.perf_counter() - started
    page.wait_for_function(
        f"document.querySelectorAll('{browser.CHART}').length >= 1", timeout=120 * browser.MS
    )
    return interactive, time.perf_counter() - started


def local_latencies(page, rows: range, warm_up_s: float) -> list[float]:
    """Click-to-result seconds for one row at a time on the Local view."""
    browser.open_view(page, "Local")
    time.sleep(warm_up_s)  # the engine imports in the background after the first page
    latencies = []
    for row in rows:
        browser.fill(page, "Rows to explain (of 4039)", str(row))
        browser.wait_idle(page)
        started = time.perf_counter()
        browser.click_button(page, "Explain")
        page.wait_for_function(FRESH_RESULT, timeout=60 * browser.MS, polling=10)
        latencies.append(time.perf_counter() - started)
        browser.wait_idle(page)
    return latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


class Measurement(NamedTuple):
    """Seconds after the server's start: healthy, first page interactive, charts drawn;
    and the click-to-result seconds of each local explanation."""

    healthy: float
    interactive: float
    drawn: float
    latencies: list[float]


def measure(clicks: int = 20, warm_up_s: float = 10.0) -> Measurement:
    """Caches the demos (not timed), opens Chromium, starts `whybox dashboard` and times its
    first page, then `clicks` one-row local explanations after `warm_up_s` seconds."""
    for name in demos.DEMO_MODELS:  # trained and cached on first use, not timed here
        demos.resolve_model(f"demo:{name}")
    with browser.chromium() as context:
        page = context.new_page()
        page.goto("about:blank")
        started = time.perf_counter()
        with browser.dashboard_server() as url:
            healthy = time.perf_counter() - started
            page.goto(url)
            interactive, drawn = first_page(page, started)
            latencies = local_latencies(page, range(5, 5 + clicks), warm_up_s)
    return Measurement(healthy, interactive, drawn, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=20, help="local explanations to time")
    parser.add_argument(
        "--warm-up", type=float, default=10.0, help="seconds to wait before the first click"
    )
    args = parser.parse_args()
    healthy, interactive, drawn, latencies = measure(args.clicks, args.warm_up)
    print(
        f"server healthy {healthy:.2f} s, first page interactive {interactive:.2f} s after "
        f"start; charts drawn {drawn:.2f} s"
    )
    print(
        f"local explanation of one row, click to waterfall: first {latencies[0]:.2f} s, "
        f"p50 {percentile(latencies, 50):.2f} s, p95 {percentile(latencies, 95):.2f} s "
        f"over {len(latencies)} clicks"
    )


if __name__ == "__main__":
    main()
