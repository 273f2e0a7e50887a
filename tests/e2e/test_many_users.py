"""Many users on one real server: sessions never see each other's uploads or results, and
ten sessions uploading and explaining at once all finish while the server stays healthy.

Each browser context is a separate user (its own cookies, its own Streamlit session).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e import browser
from whybox.model_zoo import demos

browser.require_chromium()

SESSIONS = 10
DISCONNECTED_TTL_S = 2  # Streamlit frees a closed session's state this long after it goes
HEALTH_LIMIT_S = 1.0


PROBE = """
import sys, time, urllib.request
url, pid = sys.argv[1], sys.argv[2]
while True:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.read() == b"ok"
    seconds = time.perf_counter() - began
    rss = [l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:")][0].split()[1]
    print(seconds, int(rss) / 1024, flush=True)
    time.sleep(0.2)
"""


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The credit demo's files, and a copy of its data with other rows: another user's upload."""
    data = demos.data_path("credit")
    lines = data.read_text().splitlines()
    other = tmp_path_factory.mktemp("other") / "applicants-b.csv"
    other.write_text("\n".join([lines[0], *lines[1:][::-1][:300]]) + "\n")
    return {"model": demos.model_path("credit-xgboost"), "data": data, "other": other}


@pytest.fixture(scope="module")
def server(files):
    env = {"STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(DISCONNECTED_TTL_S)}
    with browser.dashboard_process(env=env) as (url, process):
        yield url, process


def upload_and_explain(context, url: str, model: Path, data: Path, rows: str) -> str:
    """One user's work: upload a model and data, explain some rows; the sidebar's message."""
    page = browser.open_app(context, url, timeout=180)
    browser.choose_source(page, browser.UPLOAD)
    browser.upload(page, 0, model, timeout=180)
    browser.upload(page, 1, data, timeout=180)
    browser.fill(page, "Label column (optional)", "Status")
    browser.fill(page, "Rows to explain", rows, exact=False)
    return browser.explain(page, timeout=300)


def test_two_users_never_see_each_others_files_or_results(server, files):
    url, _ = server
    with browser.chromium() as first:
        second = first.browser.new_context()
        message_a = upload_and_explain(first, url, files["model"], files["data"], "0:50")
        message_b = upload_and_explain(second, url, files["model"], files["other"], "0:7")
        assert "50 rows" in message_a and "7 rows" in message_b
        page_a, page_b = first.pages[0], second.pages[0]
        for page, mine, theirs in (
            (page_a, "credit.csv", "applicants-b.csv"),
            (page_b, "applicants-b.csv", "credit.csv"),
        ):
            browser.open_view(page, "Runs")
            page.locator('[data-testid="stDataFrame"]').first.wait_for()
            browser.wait_idle(page)
            text = page.locator("body").inner_text()
            assert mine in text and theirs not in text
        fresh = browser.open_app(first.browser.new_context(), url)  # a third user, no uploads
        browser.open_view(fresh, "Runs")
        fresh.get_by_text("No runs yet").wait_for()
        assert "credit.csv" not in fresh.locator("body").inner_text()


def test_ten_sessions_at_once_finish_and_the_server_stays_healthy(server, files):
    url, process = server
    with browser.chromium() as context:  # warm: imports and the first demo loaded
        browser.open_app(context, url)
        browser.wait_idle(context.pages[0])
    time.sleep(DISCONNECTED_TTL_S + 3)
    start_mib = rss_mib(process.pid)
    # Health and memory are sampled by a process of their own: in this one, Playwright's
    # dispatcher would share the GIL with the probe.
    probe = subprocess.Popen(
        [sys.executable, "-c", PROBE, f"{url}/_stcore/health", str(process.pid)],
        stdout=subprocess.PIPE,
        text=True,
    )
    began = time.perf_counter()
    with browser.chromium(1200, 900) as first:
        contexts = [first] + [first.browser.new_context() for _ in range(SESSIONS - 1)]
        pages = []
        for index, context in enumerate(contexts):  # every session uploads its files...
            page = browser.open_app(context, url, timeout=180)
            browser.choose_source(page, browser.UPLOAD)
            browser.upload(page, 0, files["model"], timeout=180)
            browser.upload(page, 1, files["data"], timeout=180)
            browser.fill(page, "Label column (optional)", "Status")
            browser.fill(page, "Rows to explain", f"{index * 10}:{index * 10 + 20}", exact=False)
            pages.append(page)
        for page in pages:  # ...then all explain at once
            browser.wait_idle(page, timeout=180)
            browser.click_button(page, "Explain")
        messages = []
        for page in pages:
            done_message = browser.sidebar(page).locator('[data-testid="stAlertContentSuccess"]')
            done_message.wait_for(timeout=300 * browser.MS)
            messages.append(done_message.inner_text())
        for context in contexts[1:]:
            context.close()
    seconds = time.perf_counter() - began
    time.sleep(DISCONNECTED_TTL_S + 5)  # the closed sessions expire
    probe.terminate()
    samples = [tuple(map(float, line.split())) for line in probe.communicate()[0].splitlines()]
    health, peak = [s[0] for s in samples], [start_mib] + [s[1] for s in samples]
    end_mib = rss_mib(process.pid)
    print(
        f"{SESSIONS} sessions in {seconds:.1f} s; health max {max(health):.3f} s over "
        f"{len(health)} probes; server RSS {start_mib:.0f} MiB at start, peak {max(peak):.0f}, "
        f"{end_mib:.0f} after"
    )
    assert all(re.match(r"tree-shap: 20 rows in [\d.]+ s", m) for m in messages), messages
    assert max(health) < HEALTH_LIMIT_S
    grown = max(peak) - start_mib
    assert end_mib - start_mib < max(0.5 * grown, 64), (start_mib, max(peak), end_mib)
