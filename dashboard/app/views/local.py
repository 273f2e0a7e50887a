"""Local: one row's explanation, its reasons in words, and what-if edits."""

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from whybox.dashboard import settings
from whybox.dashboard.app import exports, session
from whybox.dashboard.app.views.quality_panel import show_quality
from whybox.dashboard.app.views.recourse_panel import RECOURSE_HEADING, show_recourse
from whybox.dashboard.app.views.row_picker import pick_row
from whybox.dashboard.reports import charts
from whybox.dashboard.reports.values import feature_text, row_notes, value_text
from whybox.dashboard.reports.wording import plain, reasons, typicality_text
from whybox.explainers import Explanation
from whybox.model_zoo import Dataset

WHAT_IF_COLUMNS = 4

inputs = session.require_inputs()
st.header("Local")
if inputs.images:
    st.info("For images, see **Images**: each map is that image's local explanation.")
    st.stop()
explanation = session.require_explanation()
exports.download_buttons(session.current_run(), "local")


@st.fragment
def shown_row(inputs: session.Inputs, explanation: Explanation) -> None:
    """The row the search picks: a fragment, so that moving to another row runs and redraws
    only this part of the page, never the sidebar or the header."""
    picked = pick_row(explanation.rows, inputs.data, "local_row")
    if picked is None:
        return
    row, position = picked
    target = explanation.output_names[int(explanation.target[position])]
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(charts.waterfall(explanation, position), key="waterfall")
    with right:
        st.metric(
            f"Prediction ({explanation.output_space}, class {plain(target)})"
            if inputs.model.task == "classification"
            else f"Prediction ({explanation.output_space})",
            f"{explanation.predictions[position]:.4g}",
            help=f"base value {explanation.base_values[position]:.4g}",
        )
        # One element for the heading and the list: each element costs the browser about a
        # millisecond on every move to another row.
        st.markdown(
            "\n".join(["**Top reasons**", ""] + [f"- {s}" for s in reasons(explanation, position)])
        )
        for note in row_notes(explanation, position, inputs.model.categories, inputs.model.unseen):
            st.caption(plain(note))
        typicality(inputs, row)

    # The recourse search is the slowest part of a row: its place is kept (under its
    # heading, not the last row's answers), and it is filled last, once the rest is shown.
    recourse = st.empty()
    if inputs.model.task == "classification":
        recourse.markdown(RECOURSE_HEADING)

    ids = inputs.data.ids
    named = "" if ids is None else f" ({inputs.data.id_name} {ids.iloc[row]})"
    show_quality(explanation, inputs, [position], "local", f"row {row}{named}")

    what_if(inputs, explanation, row, position)

    with recourse.container():
        show_recourse(inputs, row)


def typicality(inputs: session.Inputs, row: int) -> None:
    """How typical the row is of the reference data, or where to give one."""
    scorer = session.reference()
    if scorer is None:
        st.caption(
            "Upload reference data (what the model learned from) in the sidebar to see how "
            "typical this row is."
        )
        return
    with session.guard("scoring the row's typicality"):
        one = inputs.data.subset([row])
        (typical,) = session.cached(
            ("typicality", scorer.reference.sha256, *inputs.key, row), lambda: scorer.score(one)
        )
        threshold = settings.typicality_threshold()
        outside = typical.typicality < threshold
        st.badge(
            f"typicality {typical.typicality:.3g}",
            icon=":material/warning:" if outside else ":material/check:",
            color="orange" if outside else "green",
        )
        st.caption(plain(typicality_text(typical.typicality, threshold)))
        for reason in typical.reasons if outside else []:
            st.caption(plain(f"Unlike the reference: {reason}"))


def what_if(inputs: session.Inputs, explanation: Explanation, row: int, position: int) -> None:
    """The row's values in boxes to edit; the edited row's prediction and explanation."""
    st.subheader("What if?")
    st.caption("Change the row's values below; the prediction and its explanation follow.")
    # The editor runs only while open: its boxes, one per column, would otherwise be sent and
    # laid out again on every move to another row.
    editor = st.expander("Edit the row's values", key="whatif_open", on_change="rerun")
    if not editor.open:
        return
    frame = inputs.data.frame
    original = frame.iloc[row].to_numpy(dtype=np.float64)
    columns = editor.columns(WHAT_IF_COLUMNS)
    shown = (inputs.key, row)
    reset = st.session_state.get("whatif_row") != shown
    st.session_state["whatif_row"] = shown
    values = tuple(
        _edit(columns[i % WHAT_IF_COLUMNS], inputs.data, explanation, str(name), value, reset)
        for i, (name, value) in enumerate(zip(frame.columns, original, strict=True))
    )
    if np.array_equal(values, original, equal_nan=True):
        return
    changed = None
    with session.guard("explaining the edited row"):
        params = {k: v for k, v in explanation.params.items() if k != "chosen_by"}
        key = (inputs.key, "what-if", explanation.method, row, values)
        spec = session.job_spec(
            inputs,
            explanation.method,
            params,
            [row],
            int(explanation.target[position]),
            edits=((row, values),),
        )
        session.submit(key, spec, inputs)
        changed = session.outcome(key)
    if changed is None:
        return
    changed = session.shown(changed)
    delta = changed.predictions[0] - explanation.predictions[position]
    st.metric("Edited prediction", f"{changed.predictions[0]:.4g}", f"{delta:+.4g}")
    st.plotly_chart(charts.waterfall(changed, 0), key="whatif_waterfall")
    st.dataframe(
        pd.DataFrame(
            {
                "original": explanation.values[position],
                "edited": changed.values[0],
                "change": changed.values[0] - explanation.values[position],
            },
            index=explanation.feature_names,
        ),
        width="stretch",
    )


def _coded(data: Dataset, explanation: Explanation, name: str, value: float) -> list[float]:
    """The codes a categorical column (missing included), or a numeric one whose codes the
    data dictionary names, may take; just the row's `value` for a plain number."""
    if name in data.categories:
        return [float(c) for c in range(len(data.categories[name]))] + [np.nan]
    named = explanation.dictionary.get(name, {}).get("values", {})
    codes = {float(c) for c in named if c.lstrip("-").replace(".", "", 1).isdigit()}
    return sorted(codes | {value}, key=lambda c: (np.isnan(c), c))


def _edit(
    where: DeltaGenerator,
    data: Dataset,
    explanation: Explanation,
    name: str,
    value: float,
    reset: bool,
) -> float:
    """A number box (empty for a missing value), or for a coded column a select box of its
    codes by name, set to the row's `value` when `reset` or where Streamlit dropped it (the page
    was left).

    Keyed by the column alone, not the row: moving to another row sets the same widgets'
    values instead of making new ones, which the browser would lay out again."""
    key = f"whatif:{name}"
    label = plain(feature_text(explanation, name))
    description = plain(explanation.dictionary.get(name, {}).get("description", "")) or None
    codes = _coded(data, explanation, name, value)
    if len(codes) < 2:
        if reset or key not in st.session_state:
            st.session_state[key] = None if np.isnan(value) else float(value)
        edited = where.number_input(label, key=key, help=description)
        return np.nan if edited is None else float(edited)
    if reset or key not in st.session_state:
        st.session_state[key] = next(c for c in codes if np.array_equal(c, value, equal_nan=True))
    return where.selectbox(
        label,
        codes,
        key=key,
        help=description,
        format_func=lambda code: value_text(explanation, name, code),
    )


shown_row(inputs, explanation)
