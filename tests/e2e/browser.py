"""Drive the real dashboard in Chromium: start `whybox dashboard`, open a page, work the
sidebar's widgets. Shared by tests/e2e and docs/make_screenshots.py.

Streamlit pages are not ready at the `load` event; every helper here waits for the element
it needs instead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

from whybox.model_zoo import demos

WHYBOX = str(Path(sys.executable).with_name("whybox"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHART = '[data-testid="stPlotlyChart"] .main-svg'
ERROR = '[data-testid="stAlertContentError"]'
MS = 1000  # Playwright takes milliseconds
DEMO, UPLOAD = "Built-in demo", "Upload files"  # the sidebar's choices (dashboard/sidebar.py)


def chromium_path() -> str | None:
    """Debian's Chromium (Playwright's own download does not work here), if installed."""
    for candidate in (os.environ.get("WHYBOX_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> None:
    """Skip the calling test module without Chromium, except under CI (`CI` set), where a
    missing browser is a failure."""
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed; CI needs it for tests/e2e", pytrace=False)
        pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


def demo_server(tmp_path_factory: Any, *models: str) -> Iterator[str]:
    """The dashboard served on the demo cache this process shares, with the demo `models`
    trained here first so the server finds them."""
    cache = os.environ.get("WHYBOX_CACHE_DIR") or str(tmp_path_factory.mktemp("whybox-cache"))
    os.environ["WHYBOX_CACHE_DIR"] = cache
    for name in models:
        demos.model_path(name)
    with dashboard_server(cache) as url:
        yield url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dashboard_server(cache_dir: str | Path | None = None, timeout: float = 90) -> Iterator[str]:
    """Serve `whybox dashboard` on a free port; yields its URL (see `dashboard_process`)."""
    with dashboard_process(cache_dir, timeout) as (url, _):
        yield url


@contextmanager
def dashboard_process(
    cache_dir: str | Path | None = None, timeout: float = 90, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Serve `whybox dashboard` on a free port; yields its URL and process. `cache_dir`
    (WHYBOX_CACHE_DIR) is where it finds the demos, by default the one this process uses;
    `env` adds environment variables.

    The server runs in its own process group, and the whole group is stopped at the end, so
    nothing it may start outlives the test.
    """
    port = free_port()
    env = {**os.environ, **(env or {})}
    if cache_dir is not None:
        env["WHYBOX_CACHE_DIR"] = str(cache_dir)
    url = f"http://localhost:{port}"
    with tempfile.TemporaryFile(prefix="whybox-dashboard-") as log:
        server = subprocess.Popen(
            [WHYBOX, "dashboard", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            _wait_healthy(url, server, timeout, log)
            yield url, server
        finally:
            _stop(server)


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float, log: IO[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            output = log.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"the dashboard did not come up at {url}:\n{output}")
        time.sleep(0.3)


def _stop(server: subprocess.Popen) -> None:
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=15)


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A Playwright browser context (one viewport size) on Debian's Chromium."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError("Chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            yield context
            context.close()
        finally:
            browser.close()


def open_app(context: Any, url: str, timeout: float = 60) -> Any:
    """A new page on the app, once the sidebar's first widget is there."""
    page = context.new_page()
    page.set_default_timeout(30 * MS)
    page.goto(url)
    page.get_by_text("Model and data").first.wait_for(timeout=timeout * MS)
    return page


def sidebar(page: Any) -> Any:
    return page.locator('[data-testid="stSidebar"]')


def choose_source(page: Any, label: str, timeout: float = 180) -> None:
    """'Built-in demo' or 'Upload files' in the sidebar's radio, once the page has redrawn:
    until then the demo's own upload boxes (its data dictionary, its reason texts) are
    still there, and the first of them would take a file meant for the model."""
    sidebar(page).get_by_text(label, exact=True).click()
    wait_idle(page, timeout)


def upload(page: Any, index: int, path: str | Path, timeout: float = 60) -> None:
    """Put `path` into the index-th file uploader, and wait until Streamlit has it."""
    uploaders = page.locator('[data-testid="stFileUploader"]')
    uploaders.nth(index).wait_for(timeout=timeout * MS)
    uploaders.nth(index).locator('input[type="file"]').set_input_files(str(path))
    chip = f'[data-testid="stFileChipName"][title="{Path(path).name}"]'
    uploaders.nth(index).locator(chip).wait_for(timeout=timeout * MS)


def fill(page: Any, label: str, text: str, exact: bool = True, role: str = "textbox") -> None:
    """Type into a text input (a number input: `role="spinbutton"`) and commit it with Enter
    (`exact=False`: label starts so)."""
    box = page.get_by_role(role, name=label, exact=exact)
    box.fill(text)
    box.press("Enter")


def select(page: Any, label: str, option: str, timeout: float = 30) -> None:
    """Pick the option that starts with `option` in the selectbox labelled `label`."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    wait_idle(page, timeout)
    box = page.get_by_role("combobox", name=label, exact=True)
    starts = re.compile("^" + re.escape(option))
    choice = page.get_by_role("option").filter(has_text=starts).first
    deadline = time.monotonic() + timeout
    while True:  # a page run under way redraws the box and closes its list: open it again
        box.click(timeout=timeout * MS)
        try:
            choice.click(timeout=5 * MS)
            break
        except PlaywrightTimeout:
            if time.monotonic() > deadline:
                raise
            page.keyboard.press("Escape")
    expect(box).to_have_value(starts, timeout=timeout * MS)


def click_button(page: Any, name: str, timeout: float = 30) -> None:
    page.get_by_role("button", name=name, exact=True).click(timeout=timeout * MS)


def open_view(page: Any, title: str, timeout: float = 30) -> None:
    """Go to a page through the sidebar's navigation and wait for its header."""
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_role("link", name=title).click(timeout=timeout * MS)
    page.locator('[data-testid="stMain"] h2', has_text=title).first.wait_for(timeout=timeout * MS)


def explain(page: Any, timeout: float = 120) -> str:
    """Press Explain once the page is idle, wait for the run to end; returns the sidebar's
    success message."""
    wait_idle(page, timeout)
    click_button(page, "Explain")
    done = sidebar(page).locator('[data-testid="stAlertContentSuccess"]')
    done.wait_for(timeout=timeout * MS)
    wait_idle(page, timeout)
    return done.inner_text()


def wait_for_charts(page: Any, count: int = 1, timeout: float = 60) -> None:
    """Wait until at least `count` plotly charts of the current run have drawn their SVG,
    and Streamlit is idle."""
    fresh = f"""[...document.querySelectorAll('{CHART}')].filter(
        svg => svg.closest('[data-stale="true"]') === null).length >= {count}"""
    page.wait_for_function(fresh, timeout=timeout * MS)
    wait_idle(page, timeout)


IDLE = """!document.querySelector('[data-testid="stStatusWidget"]')
    && !document.querySelector('[data-stale="true"]')"""


def wait_idle(page: Any, timeout: float = 60, settle: float = 1.0) -> None:
    """Wait until no script runs and no element is stale (left over from the last run), for
    `settle` seconds in a row: a run that a click started may not have shown up yet."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while True:
        if page.evaluate(IDLE):
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle:
                return
        else:
            quiet_since = None
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page was still running after {timeout:.0f} s")
        page.wait_for_timeout(100)
