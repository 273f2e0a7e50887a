"""Downloads of a run: its report (HTML, PDF) and its attributions, and the report's
options (favourable class, reason texts) that the sidebar collects."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import replace

import streamlit as st

from whybox.dashboard.app import session
from whybox.dashboard.reports.reasons import ReasonText, parse_reason_texts
from whybox.dashboard.reports.wording import plain
from whybox.dashboard.runs.records import Run
from whybox.model_zoo.model import sha256_of

NO_FAVOURABLE = "(none: top features each way)"
REPORT_FORMATS = {"html": "text/html", "pdf": "application/pdf"}


def report_options(loaded: session.Inputs) -> None:
    """Sidebar widgets for the report: the favourable class and a reason-text file."""
    if loaded.model.task != "classification" or loaded.images:
        st.session_state["report_options"] = (None, None)
        return
    with st.expander("Report"):
        favourable = st.selectbox(
            "Favourable class",
            [NO_FAVOURABLE, *loaded.model.output_names],
            key="favourable",
            help="With a favourable class, each unfavourable decision lists its principal "
            "reasons: the features that pushed toward the unfavourable outcome.",
        )
        upload = st.file_uploader(
            "Reason texts (CSV or YAML)",
            type=["csv", "yaml", "yml"],
            key="reason_texts",
            help="feature,statement[,allowed]: the wording for each reason; allowed=false "
            "marks features never to give as reasons (they are flagged if they drive one).",
        )
        rules = st.file_uploader(
            "Recourse constraints (YAML)",
            type=["yaml", "yml"],
            key="constraints_file",
            help="What a person can change and how, for **What would change it** in Local: "
            "max_changes, immutable, monotone, ranges, transitions (see docs/rules.md).",
        )
    _constraints_upload(loaded, rules)
    texts = None
    if upload is not None:
        raw = upload.getvalue()
        texts = session.cached(
            ("reason_texts", upload.name, sha256_of(raw)),
            lambda: parse_reason_texts(raw, upload.name),
        )
    chosen = None if favourable == NO_FAVOURABLE else favourable
    st.session_state["report_options"] = (chosen, texts)


def _constraints_upload(loaded: session.Inputs, upload) -> None:
    """Keep the uploaded constraints file for the Local view's recourse, checked against the
    data now so a bad line shows here, as one line."""
    from whybox.dashboard.app.views.recourse_panel import CONSTRAINTS
    from whybox.dashboard.reports.dictionary import coded_values
    from whybox.trust.constraints import parse_constraints

    st.session_state[CONSTRAINTS] = None
    if upload is None:
        return
    raw = upload.getvalue()
    digest = sha256_of(raw)
    coded = coded_values(st.session_state.get(session.DICTIONARY))
    parsed = session.cached(
        ("constraints", upload.name, digest, *loaded.key, str(coded)),
        lambda: parse_constraints(raw, loaded.data, upload.name, coded),
    )
    st.session_state[CONSTRAINTS] = (upload.name, digest, parsed)


def download_buttons(run: Run | None, where: str) -> None:
    """Report (HTML, PDF) and attribution downloads for `run`; each file is made on click."""
    if run is None:
        st.caption("This result was not saved as a run, so it cannot be exported.")
        return
    favourable, texts = st.session_state.get("report_options", (None, None))
    # The session's results and the run's key, not what they hold now: the report reads
    # the quality measured up to the click.
    results = st.session_state.setdefault("results", {})
    source = st.session_state.get("current")
    stem = f"whybox-{run.explanation.method}-{run.run_id[:8]}"
    analyses = dict(session.report_analyses())  # the Rules view's, as shown now
    *reports, values = st.columns(3)
    for column, (fmt, mime) in zip(reports, REPORT_FORMATS.items(), strict=True):
        column.download_button(
            f"Report ({fmt.upper()})",
            lambda fmt=fmt: _report(run, fmt, favourable, texts, source, results, analyses),
            file_name=f"{stem}.{fmt}",
            mime=mime,
            key=f"{where}:{fmt}",
            on_click="ignore",
            icon=":material/download:",
        )
    name = "attributions.npy" if run.images else "attributions.csv"
    values.download_button(
        f"Attributions ({name.rsplit('.', 1)[1].upper()})",
        lambda: (run.directory / name).read_bytes(),
        file_name=f"{stem}-{name}",
        mime="application/octet-stream" if run.images else "text/csv",
        key=f"{where}:values",
        on_click="ignore",
        icon=":material/download:",
    )
    st.caption(f"Run {plain(run.run_id)}, recorded in the audit trail.")


def _report(
    run: Run,
    fmt: str,
    favourable: str | None,
    texts: dict[str, ReasonText] | None,
    source: Hashable,
    results: dict[Hashable, object],
    analyses: dict[str, object],
):
    from whybox.dashboard.app.views.quality_panel import report_quality
    from whybox.dashboard.reports.report import report_bytes

    record = analyses | run.record
    if "quality" not in record and (measured := report_quality(run.explanation, source, results)):
        record = record | {"quality": measured}
    return report_bytes(
        replace(run, explanation=session.shown(run.explanation), record=record),
        fmt,
        favourable,
        texts,
    )


def versions_report_button(record: dict, key: str) -> None:
    """A download of a comparison's sign-off report (HTML), made when clicked."""
    from whybox.dashboard.reports.versions_page import versions_report_bytes

    st.download_button(
        "Versions report (HTML)",
        lambda: versions_report_bytes(record, "html"),
        file_name="whybox-versions.html",
        mime="text/html",
        key=key,
        on_click="ignore",
        icon=":material/download:",
    )
