"""The dashboard on many rows: `python -m benchmarks.scale_dashboard [--rows N]`.

Writes a synthetic table (`features` numeric columns, Parquet) and an XGBoost binary
classifier (.ubj) to a temporary server data folder, starts `whybox dashboard` with
WHYBOX_DATA_DIR on it, chooses both in Chromium, explains every row with tree-shap, then
measures what a user meets: the seconds from opening the Global view until its charts are
drawn, the seconds to move to another row in the Local view (its row search), and the
peak memory of the server's process tree (the Streamlit process and its job workers). Run
it on an idle machine; timings never gate a test.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.e2e import browser
from whybox.dashboard.app.sidebar import SERVER, TABLE_DATA
from whybox.dashboard.settings import DATA_DIR_ENV, STORE_ENV

MODEL, DATA = "model.ubj", "data.parquet"
TRAINING_ROWS = 20_000
MOVES = 15
MB = 2**20
SAMPLE_S = 0.2

CHARTS = f"""[...document.querySelectorAll('{browser.CHART}')].filter(
        svg => svg.closest('[data-stale="true"]') === null).length >= 1"""
DRAWN = f"() => {CHARTS} && {browser.IDLE}"


def write_inputs(folder: Path, rows: int, features: int, seed: int = 0) -> None:
    """A table of `rows` x `features` standard normal columns with a binary label, and an
    XGBoost classifier trained on its first TRAINING_ROWS rows, in `folder`."""
    import xgboost

    rng = np.random.default_rng(seed)
    columns = [f"x{j}" for j in range(features)]
    frame = pd.DataFrame(rng.standard_normal((rows, features)), columns=columns)
    weights = rng.standard_normal(features)
    logits = frame.to_numpy() @ weights / np.sqrt(features)
    frame["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    frame.to_parquet(folder / DATA)
    train = frame.iloc[:TRAINING_ROWS]
    booster = xgboost.XGBClassifier(n_estimators=100, max_depth=4, random_state=seed)
    booster.fit(train[columns], train["label"])
    booster.save_model(folder / MODEL)


class MemoryPeak:
    """Samples the memory of a process and its descendants every SAMPLE_S in a thread: the
    peak of the tree's resident memory, of its proportional memory (PSS: pages shared
    between the processes, such as the libraries every worker maps, counted once), of the
    process alone, and the latest of each (`children`: each descendant's resident memory)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.peak_tree = self.peak_pss = self.peak_main = self.tree = self.main = 0
        self.children: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> MemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(SAMPLE_S):
            try:
                main = self.root.memory_full_info()
                children = []
                for child in self.root.children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):  # a child just ended
                        children.append(child.memory_full_info())
            except psutil.NoSuchProcess:
                return
            self.main, self.children = main.rss, [c.rss for c in children]
            tree = self.tree = self.main + sum(self.children)
            self.peak_pss = max(self.peak_pss, main.pss + sum(c.pss for c in children))
            self.peak_tree, self.peak_main = (
                max(self.peak_tree, tree),
                max(self.peak_main, self.main),
            )


def wait_drawn(page: Any, timeout: float, settle: float = 1.0) -> float:
    """Seconds (perf_counter) when the current run's charts were drawn and the page went
    idle, confirmed by `settle` seconds of quiet."""
    deadline = time.monotonic() + timeout
    since = None
    while True:
        if page.evaluate(DRAWN):
            since = since or time.perf_counter()
            if time.perf_counter() - since >= settle:
                return since
        else:
            since = None
        if time.monotonic() > deadline:
            raise TimeoutError(f"the charts were not drawn after {timeout:.0f} s")
        page.wait_for_timeout(20)


def enter_row(page: Any, row: int) -> None:
    """Type `row` into the Local view's row search (the first input in the main area
    labelled "Row...": a number box, a text box or a searchable select box, whichever the
    view uses) and commit it with Enter."""
    main = page.locator('[data-testid="stMain"]')
    for role in ("spinbutton", "textbox", "combobox"):
        found = main.get_by_role(role, name=re.compile(r"^Row"))
        if found.count():
            box = found.first
            if role == "combobox":  # a select box: type to filter its options
                box.click()
                page.keyboard.type(str(row))
            else:
                box.fill(str(row))
            page.keyboard.press("Enter")
            return
    raise RuntimeError("the Local view has no input labelled 'Row...'")


WATCH_MOVE = f"""(timeout) => {{
    const main = document.querySelector('[data-testid="stMain"]');
    const before = main.textContent;
    let committed = null;
    const onKey = event => {{
        if (event.key === "Enter" && committed === null) committed = performance.now();
    }};
    document.addEventListener("keydown", onKey, {{capture: true}});
    window.__move = new Promise((resolve, reject) => {{
        const observer = new MutationObserver(() => {{
            if (committed !== null && main.textContent !== before && {CHARTS}
                && {browser.IDLE}) {{
                stop();
                resolve((performance.now() - committed) / 1000);
            }}
        }});
        const stop = () => {{
            observer.disconnect();
            document.removeEventListener("keydown", onKey, {{capture: true}});
        }};
        observer.observe(document.body,
            {{subtree: true, childList: true, attributes: true, characterData: true}});
        setTimeout(() => {{
            stop();
            reject(new Error(`no other row after ${{timeout}} ms`));
        }}, timeout);
    }});
}}"""
"""Watches, in the page, for the row change that the next Enter commits, until the page
shows another row with its chart drawn and is idle; timed by the page's clock on its own
changes (polling from here would add its interval, and each poll takes the page's time)."""


def move_to(page: Any, row: int, timeout: float) -> float:
    """Seconds from committing `row` in the row search until the view shows another row,
    drawn and idle (its recourse, searched last, included)."""
    page.evaluate(WATCH_MOVE, timeout * browser.MS)
    enter_row(page, row)
    seconds = page.evaluate("() => window.__move")
    browser.wait_idle(page, timeout)
    return seconds


def measure(rows: int = 1_000_000, features: int = 50) -> dict:
    """Explain every row of a `rows` x `features` table in the dashboard (server folder,
    XGBoost, tree-shap) and time the Global and Local views in Chromium; returns seconds
    and resident memory in MB (`server_peak_mb`: Streamlit process and job workers)."""
    with tempfile.TemporaryDirectory(prefix="whybox-scale-") as tmp:
        folder, store = Path(tmp) / "data", Path(tmp) / "store" / "runs.sqlite"
        folder.mkdir()
        started = time.perf_counter()
        write_inputs(folder, rows, features)
        written = time.perf_counter() - started
        env = {  # the run, recorded as the dashboard does, goes with the folder
            DATA_DIR_ENV: str(folder),
            STORE_ENV: str(store),
            "WHYBOX_JOB_TIMEOUT": "7200",
        }
        with (
            browser.chromium() as context,
            browser.dashboard_process(env=env, timeout=180) as (url, server),
            MemoryPeak(server.pid) as memory,
        ):
            page = browser.open_app(context, url, timeout=180)
            explained = explain_all(page, rows)
            after_explain = memory.tree
            _log(f"explained in {explained:.1f} s; server {after_explain / MB:,.0f} MB")
            global_s = open_global(page, timeout=600)
            _log(f"Global drawn in {global_s:.2f} s; peak {memory.peak_tree / MB:,.0f} MB")
            moves = local_moves(page, rows, timeout=120)
            peak_tree, peak_main, last_main = memory.peak_tree, memory.peak_main, memory.main
            peak_pss = memory.peak_pss
            last_children = memory.children
    return {
        "rows": rows,
        "features": features,
        "write_s": written,
        "explain_s": explained,
        "global_drawn_s": global_s,
        "local_move_s": statistics.median(moves),
        "local_moves_s": moves,
        "server_peak_mb": peak_tree / MB,
        "server_peak_pss_mb": peak_pss / MB,
        "streamlit_peak_mb": peak_main / MB,
        "server_after_explain_mb": after_explain / MB,
        "streamlit_end_mb": last_main / MB,
        "workers_end_mb": [rss / MB for rss in last_children],
    }


def explain_all(page: Any, rows: int, timeout: float = 3600) -> float:
    """Choose the server folder's model and data, explain every row with tree-shap; returns
    the seconds from the click to the result."""
    browser.choose_source(page, SERVER)
    browser.select(page, "Model file", MODEL)
    browser.select(page, f"Data file ({TABLE_DATA})", DATA, timeout=600)
    browser.wait_idle(page, timeout)
    browser.fill(page, "Label column (optional)", "label")
    browser.wait_idle(page, timeout)
    browser.select(page, "Explainer", "tree-shap")
    browser.fill(page, f"Rows to explain (of {rows})", f"0:{rows}")
    browser.wait_idle(page, timeout)
    started = time.perf_counter()
    browser.explain(page, timeout)
    return time.perf_counter() - started


def open_global(page: Any, timeout: float) -> float:
    """Seconds from the click on the Global view to its charts drawn."""
    nav = page.locator('[data-testid="stSidebarNav"]')
    started = time.perf_counter()
    nav.get_by_role("link", name="Global").click()
    page.locator('[data-testid="stMain"] h2', has_text="Global").first.wait_for(
        timeout=timeout * browser.MS
    )
    return wait_drawn(page, timeout) - started


def local_moves(page: Any, rows: int, timeout: float) -> list[float]:
    """Seconds of MOVES moves to rows spread over the table, after a first one not timed
    (the view's own first run)."""
    browser.open_view(page, "Local", timeout)
    browser.wait_for_charts(page, timeout=timeout)
    targets = np.random.default_rng(1).choice(rows, size=MOVES + 1, replace=False)
    move_to(page, int(targets[0]), timeout)
    return [move_to(page, int(row), timeout) for row in targets[1:]]


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    args = parser.parse_args()
    result = measure(args.rows, args.features)
    for name, value in result.items():
        shown = [round(v, 3) for v in value] if isinstance(value, list) else round(value, 3)
        print(f"{name}: {shown}")


if __name__ == "__main__":
    main()
