"""The Local view's recourse: for the row shown, what would have to change for the model to
give the outcome the person wants, kept to the operator's constraints file (the sidebar's
upload, else the demo's own) and to values typical of the data."""

from __future__ import annotations

import numpy as np
import streamlit as st

from whybox.dashboard.app import session
from whybox.dashboard.reports.dictionary import coded_values
from whybox.dashboard.reports.wording import plain

RECOURSE_HEADING = "**What would change it**"
AUTOMATIC_ROWS = 100_000
"""Up to this many rows the search runs as a row is shown; past it, when asked (its grid of
candidate values reads every row once)."""
CONSTRAINTS = "constraints"
"""Session state: the uploaded constraints file as (name, SHA-256, Constraints read against
the data), or None."""


def show_recourse(inputs: session.Inputs, row: int) -> None:
    """Under a row's reasons: up to three small sets of changes that get the desired class,
    each checked with the model, or why there is none."""
    from whybox.trust.typicality import MIN_REFERENCE_ROWS

    model, data = inputs.model, inputs.data
    if model.task != "classification":
        return
    st.markdown(RECOURSE_HEADING)
    if len(data) < MIN_REFERENCE_ROWS:
        st.caption(
            f"Recourse keeps to values typical of the data, which needs at least "
            f"{MIN_REFERENCE_ROWS} rows; this data has {len(data)}."
        )
        return
    asked = st.toggle(
        "Search what would change this decision",
        value=len(data) <= AUTOMATIC_ROWS,
        key="recourse_on",
        help="Small sets of changes the model answers with the desired outcome, kept to the "
        "constraints file (sidebar, Report) and to values typical of the data.",
    )
    if not asked:
        return
    probabilities = session.cached(
        ("row probabilities", *inputs.key, row),
        lambda: model.predict(data.values[row : row + 1], "probability")[0],
    )
    predicted = model.output_names[int(np.argmax(probabilities))]
    favourable, _ = st.session_state.get("report_options", (None, None))
    others = [c for c in model.output_names if c != predicted]
    if favourable is not None:
        if favourable == predicted:
            st.caption(
                f"The model already gives this row the favourable class, {plain(predicted)}."
            )
            return
        desired = favourable
    elif len(others) == 1:
        desired = others[0]
        st.caption(
            f"Toward {plain(desired)}, the class the model does not give this row; choose the "
            "favourable class in the sidebar's Report to search for unfavourable rows only."
        )
    else:
        desired = st.selectbox("Desired outcome", others, key="recourse_desired")
    with session.guard("searching what would change the decision"):
        from whybox.trust.recourse import RecourseSearch

        coded = coded_values(st.session_state.get(session.DICTIONARY))
        rules, source, which = _constraints(inputs, coded)
        search = session.cached(
            ("recourse search", *inputs.key, which, str(coded)),
            lambda: RecourseSearch(model, data, rules, coded=coded),
        )
        with st.spinner("Searching changes the model would answer differently..."):
            found = session.cached(
                ("recourse", *inputs.key, which, str(coded), row, desired),
                lambda: search.find(row, desired),
            )
        if desired == favourable:  # a report of this run shows it on the row's decision
            kept = session.report_analyses().get("recourse")
            if kept is None or (kept["file"], kept["desired"]) != (which, desired):
                kept = {"constraints": source, "file": which, "desired": desired, "rows": {}}
                session.report_analyses()["recourse"] = kept
            kept["rows"][str(row)] = found.to_dict()
        if found.counterfactuals:  # one element; numbered paragraphs, not a list: the
            # reasons above are the page's list
            st.markdown(
                "\n\n".join(
                    f"**{rank}.** {plain(c.sentence)}"
                    for rank, c in enumerate(found.counterfactuals, start=1)
                )
            )
        if found.found:
            st.caption(
                f"Each was predicted by the model and keeps to {plain(source)}; typicality "
                f"{', '.join(f'{c.typicality:.2g}' for c in found.counterfactuals)}."
            )
        else:
            st.info(plain(f"{found.message[0].upper()}{found.message[1:]}."))
            if found.closest is not None:
                st.caption(f"The closest tried: {plain(found.closest.sentence)}.")


def _constraints(inputs: session.Inputs, coded: dict) -> tuple[object, str, str]:
    """The session's constraints (the upload, else the demo data's own) read against the
    data, words for them, and what identifies their content (for cache keys)."""
    from whybox.model_zoo import demos
    from whybox.trust.constraints import load_constraints

    upload = st.session_state.get(CONSTRAINTS)
    if upload is not None:
        name, digest, rules = upload
        return rules, f"the constraints in {name}", digest
    source = inputs.data_source
    own_names = st.session_state.get("dictionary_file") is None  # the demo's names for codes
    path = demos.demo_constraints(source.demo) if source and source.demo and own_names else None
    if path is None:
        return None, "no constraints (every feature may change, at most 3 at once)", "none"
    rules = session.cached(
        ("constraints", str(path), *inputs.key, str(coded)),
        lambda: load_constraints(path, inputs.data, coded),
    )
    return rules, "the demo's constraints", str(path)
