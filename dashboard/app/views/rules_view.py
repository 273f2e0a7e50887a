"""Rules: readable rules that mimic the model on the shown rows, with their fidelity on
held-out rows (overall, per rule, and against the number of rules), and a glass-box model
(an EBM) trained on the same rows to compare with the black box."""

import pandas as pd
import streamlit as st

from whybox.dashboard.app import session
from whybox.dashboard.reports import charts
from whybox.dashboard.reports.dictionary import coded_values
from whybox.dashboard.reports.wording import plain
from whybox.trust.rules import CLOSE, fit_rules

MOST_RULES = 16
SHAPES = 6  # the EBM's most important shape functions drawn

inputs = session.require_inputs()
st.header("Rules")
if inputs.images:
    st.info("Rules read a table's columns; for images see **Images**.")
    st.stop()
data = session.cohort_data(inputs.data)
coded = coded_values(st.session_state.get(session.DICTIONARY))
key = (*inputs.key, *session.cohort_key(), str(coded))

TRADE = "More rules mimic the model more closely and take longer to read: see the curve."
count = st.slider("Rules", 2, MOST_RULES, 8, key="rule_count", help=TRADE)
with session.guard("fitting the rules"):
    with st.spinner("Fitting rules to the model's answers..."):
        curve = session.cached(
            ("rules", MOST_RULES, *key),
            lambda: fit_rules(inputs.model, data, MOST_RULES, coded=coded),
        )
        surrogate = session.cached(
            ("rules", count, *key), lambda: fit_rules(inputs.model, data, count, coded=coded)
        )
    if session.cohort() is None:  # a run's report covers every row, not a cohort
        session.report_analyses()["rules"] = surrogate.to_dict()
    summary = plain(surrogate.summary)
    if surrogate.fidelity >= CLOSE and "no better than" not in surrogate.verdict:
        st.success(summary)
    else:
        st.warning(summary, icon=":material/warning:")
    st.caption(f"How: {plain(surrogate.method)}. " + " ".join(plain(n) for n in surrogate.notes))
    classifier = surrogate.measure == "agreement"
    rules = sorted(surrogate.rules, key=lambda r: -r.rows)
    table = {
        "rule": [" and ".join(c.text for c in r.conditions) or "every row" for r in rules],
        "then": [r.outcome for r in rules],
        "held-out rows": [r.rows for r in rules],
        "coverage": [r.coverage for r in rules],
    }
    if classifier:
        table["agreement"] = [r.agreement for r in rules]
        table["95 % interval"] = [
            "" if r.interval is None else f"{r.interval[0]:.3f} to {r.interval[1]:.3f}"
            for r in rules
        ]
    else:
        table["mean |model - rule|"] = [r.mean_error for r in rules]
    st.dataframe(
        pd.DataFrame(table),
        hide_index=True,
        width="stretch",
        column_config={
            "coverage": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1),
            "agreement": st.column_config.NumberColumn(format="percent"),
        },
    )
    st.plotly_chart(charts.fidelity_curve(curve), key="fidelity_curve")

st.subheader("Would a glass-box model do?")
if data.labels is None:
    st.info("Name the data's label column in the sidebar to train a glass-box model beside it.")
    st.stop()
glass_key = ("glass box", *key)
if not session.known(glass_key):
    st.caption(
        "An Explainable Boosting Machine (InterpretML) learns from these rows' labels: one "
        "shape per feature, added up, so each prediction reads off its charts exactly."
    )
    if not st.button("Train a glass-box model (EBM)", key="train_glass_box"):
        st.stop()
with session.guard("training the glass-box model"):
    from whybox.trust.glassbox import glass_box

    with st.spinner("Training an EBM on the labelled rows..."):
        found = session.cached(glass_key, lambda: glass_box(inputs.model, data, coded=coded))
    if session.cohort() is None:
        session.report_analyses()["glass_box"] = found.to_dict()
    (st.success if found.would_do else st.info)(plain(found.verdict))
    for note in found.notes:
        st.caption(plain(note))
    st.dataframe(
        pd.DataFrame(
            {
                "metric": list(found.performance),
                "model": [m["a"] for m in found.performance.values()],
                "EBM": [m["b"] for m in found.performance.values()],
                "EBM - model": [m["change"] for m in found.performance.values()],
                "95 % interval": [
                    f"{m['change_interval'][0]:.3f} to {m['change_interval'][1]:.3f}"
                    for m in found.performance.values()
                ],
            }
        ),
        hide_index=True,
    )
    output = next(iter(found.shapes[0].scores)) if found.shapes else None
    columns = st.columns(2)
    for k, shape in enumerate(found.shapes[:SHAPES]):
        columns[k % 2].plotly_chart(charts.shape_function(shape, output), key=f"shape_{k}")
