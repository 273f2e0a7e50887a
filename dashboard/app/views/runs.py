"""Runs: the explanation runs of this user (or, without a signed-in user, this browser
session), reopened from the audit trail to read and export again."""

import json
import shlex
from pathlib import Path

import pandas as pd
import streamlit as st

from whybox.dashboard.app import exports, session
from whybox.dashboard.reports import charts
from whybox.dashboard.reports.wording import plain, version_verdict
from whybox.dashboard.runs.audit import RunEntry, RunStore
from whybox.dashboard.runs.records import load_run


def _identifiers(entry: RunEntry, shown: int = 3) -> str:
    """The explained rows' identifiers, the first few, e.g. "customer_id C-001, C-002 +4"."""
    if not entry.identifiers:
        return ""
    more = len(entry.identifiers) - shown
    listed = ", ".join(entry.identifiers[:shown]) + (f" +{more}" if more > 0 else "")
    return f"{entry.id_column} {listed}"


def _models(entry: RunEntry) -> str:
    return f"{entry.model_name} vs {entry.model_b_name}" if entry.comparison else entry.model_name


def _method(entry: RunEntry) -> str:
    return f"diff: {entry.explainer}" if entry.comparison else entry.explainer


def _comparison(entry: RunEntry) -> None:
    """A recorded comparison of two model versions: its verdict and its sign-off report."""
    record = session.cached(
        ("comparison", entry.run_id),
        lambda: json.loads((Path(entry.directory) / "diff.json").read_text()),
    )
    st.info(plain(version_verdict(record)), icon=":material/compare_arrows:")
    exports.versions_report_button(record, "runs_versions_report")


st.header("Runs")
user = session.user()
with session.guard("reading the run history"):
    store = RunStore(create=False)
    entries = store.runs(user=user) if user else store.runs(session=session.session_id())
    if not entries:
        st.info("No runs yet: each explanation you run is recorded here and in the audit trail.")
        st.stop()
    st.caption(
        f"Runs of {plain(user)}" if user else "Runs of this browser session (no signed-in user)"
    )
    table = pd.DataFrame(
        {
            "time": [e.created for e in entries],
            "model": [_models(e) for e in entries],
            "data": [e.data_name for e in entries],
            "explainer": [_method(e) for e in entries],
            "rows": [e.rows for e in entries],
            "identifiers": [_identifiers(e) for e in entries],
            "seconds": [round(e.seconds, 3) for e in entries],
            "run id": [e.run_id for e in entries],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")
    by_id = {e.run_id: e for e in entries}
    chosen = st.selectbox(
        "Reopen run",
        list(by_id),
        format_func=lambda i: f"{by_id[i].created} · {_method(by_id[i])} · {_models(by_id[i])}",
        key="reopen_run",
    )
    entry = by_id[chosen]
    changed = store.verify(chosen)
    if changed:
        st.warning(
            "Files of this run changed after it was recorded: " + ", ".join(map(plain, changed))
        )
    else:
        st.success(f"All {len(entry.files)} files of the run match their recorded SHA-256.")
    if entry.comparison:
        _comparison(entry)
        st.code(shlex.join(entry.command), language=None, wrap_lines=True)
        st.stop()
    run = session.cached(("run", chosen), lambda: load_run(entry.directory))
    exports.download_buttons(run, "runs")
    st.code(shlex.join(entry.command), language=None, wrap_lines=True)
    if not run.images:
        st.plotly_chart(charts.importance_bar(run.explanation), key="run_importance")
