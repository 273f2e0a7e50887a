"""Cohorts: groups of rows defined by filters and saved by name, which every view can
show (the sidebar's Cohort), and the error analysis: the cohorts where the model errs
most, each one click from its explanations."""

import pandas as pd
import streamlit as st

from whybox.dashboard.app import session
from whybox.dashboard.reports import charts
from whybox.dashboard.reports.dictionary import coded_values
from whybox.dashboard.reports.wording import plain
from whybox.model_zoo import WhyboxError
from whybox.model_zoo.performance import score_space
from whybox.trust.cohorts import EXAMPLE, cohort
from whybox.trust.error_analysis import error_analysis

SHOWN_COHORTS = 8  # error cohorts given a button each, the highest error first

inputs = session.require_inputs()
st.header("Cohorts")
if inputs.images:
    st.info("Cohorts filter a table's columns; image data has none.")
    st.stop()
data = inputs.data
coded = coded_values(st.session_state.get(session.DICTIONARY))


def use(name: str, rule: str, members, filter=None) -> None:
    """Save a cohort and show it in every view (a button's callback runs before the
    sidebar's Cohort box is drawn, so it may set it)."""
    session.save_cohort(name, rule, members, filter)
    st.session_state[session.COHORT] = name


FILTER_ERROR = "cohort_filter_error"


def save_filtered() -> None:
    """The form's cohort, saved and shown; a bad filter's one-line error kept to show."""
    st.session_state.pop(FILTER_ERROR, None)
    try:
        found = cohort(
            st.session_state["cohort_name"], st.session_state["cohort_filter"], data, coded
        )
    except WhyboxError as exc:
        st.session_state[FILTER_ERROR] = str(exc)
        return
    use(found.name, found.text, found.members(data), found)


with st.form("new_cohort", border=True):
    st.markdown("**A cohort by filters**")
    st.text_input("Name", placeholder="young renters", key="cohort_name")
    st.text_area(
        "Filters (joined by *and*, or one per line)",
        placeholder=EXAMPLE,
        key="cohort_filter",
        help="A number compared (Age >= 30, 20 < Age <= 40), categories (Home = rent, Home "
        "in rent, parents, Home not owner), or missing values (Income is missing).",
    )
    st.form_submit_button("Save and show this cohort", type="primary", on_click=save_filtered)
if FILTER_ERROR in st.session_state:
    st.error(plain(st.session_state[FILTER_ERROR]), icon=":material/error:")

saved_cohorts = session.cohorts()
if saved_cohorts:
    st.dataframe(
        pd.DataFrame(
            {
                "cohort": [c.name for c in saved_cohorts.values()],
                "rule": [c.rule for c in saved_cohorts.values()],
                "rows": [len(c.members) for c in saved_cohorts.values()],
            }
        ),
        hide_index=True,
        width="stretch",
    )

st.subheader("Where the model errs")
if data.labels is None:
    st.info("Name the data's label column in the sidebar to find where the model errs.")
    st.stop()
with session.guard("analysing the model's errors"):
    space = score_space(inputs.model)
    scores = session.cached(
        (inputs.key, "predictions", space), lambda: inputs.model.predict(data.values, space)
    )
    analysis = session.cached(
        ("error analysis", *inputs.key, str(coded)),
        lambda: error_analysis(inputs.model, data, coded=coded, scores=scores),
    )
    overall = analysis.overall
    st.caption(
        f"A tree of each row's {analysis.metric} over your columns, fitted on "
        f"{analysis.fitted_rows:,} rows; each cohort's {analysis.metric} and 95 % interval are "
        f"measured on the other {analysis.held_out_rows:,}, which the tree did not see. Overall "
        f"{overall.held_out_error:.3g} ({overall.interval[0]:.3g} to {overall.interval[1]:.3g})."
    )
    st.plotly_chart(charts.error_tree(analysis), key="error_tree")
    ranked = analysis.ranked
    st.dataframe(
        pd.DataFrame(
            {
                "cohort": [c.rule for c in ranked],
                "rows": [c.rows for c in ranked],
                analysis.metric: [c.held_out_error for c in ranked],
                "95 % interval": [f"{c.interval[0]:.3g} to {c.interval[1]:.3g}" for c in ranked],
                "held-out rows": [c.held_out_rows for c in ranked],
            }
        ),
        hide_index=True,
        width="stretch",
    )
    for rank, found in enumerate(ranked[:SHOWN_COHORTS], start=1):
        st.button(
            f"Show cohort {rank}: {plain(found.rule)}",
            key=f"error_cohort_{found.node}",
            on_click=use,
            args=(f"errors {rank}", found.rule, found.members),
            help="Every view then shows these rows: their explanations, performance and rules.",
        )
