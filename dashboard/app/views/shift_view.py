"""Shift: has the population moved since the reference? Every feature's test ranked by
effect with both tables' histograms, the classifier test, and the model's view: its
predictions, performance and explanations in both tables."""

import pandas as pd
import streamlit as st

from whybox.dashboard.app import session
from whybox.dashboard.reports import charts
from whybox.dashboard.reports.dictionary import coded_values
from whybox.dashboard.reports.shift_page import shift_record, shift_report_bytes
from whybox.dashboard.reports.wording import plain, shift_verdict

inputs = session.require_inputs()
st.header("Shift")
if inputs.images:
    st.info("Shift tests compare tables; image data is not supported here yet.")
    st.stop()
scorer = session.reference()
if scorer is None:
    st.info(
        "Upload reference data (what the model learned from, or an earlier population) in "
        "the sidebar to see whether this data has moved from it."
    )
    st.stop()
reference, data = scorer.reference, session.cohort_data(inputs.data)
chosen = session.cohort()
if chosen is not None and chosen.filter is not None:
    reference = reference.subset(chosen.filter.members(reference))
    st.caption("The reference is filtered alike: the cohort against the reference's own.")
elif chosen is not None:
    st.caption(
        "This cohort has no filter to apply to the reference: it is compared with all of it."
    )
key = (reference.sha256, *inputs.key, *session.cohort_key())
with session.guard("testing for shift"):
    from whybox.trust.shift import model_shift, shift_report

    with st.spinner("Testing every feature and training the classifier..."):
        coded = coded_values(st.session_state.get(session.DICTIONARY))
        found = session.cached(
            ("shift", *key, str(coded)), lambda: shift_report(reference, data, coded=coded)
        )
    verdict = plain(shift_verdict(found.to_json()))
    compared = f"{found.rows:,} rows against {found.reference_rows:,} reference rows."
    if found.shifted:
        st.warning(f"{verdict} {compared}", icon=":material/warning:")
    else:
        st.success(f"{verdict} {compared}")
    model_key = ("model shift", *key)
    view = session.cached(model_key, lambda: None) if session.known(model_key) else None
    command = ["whybox", "shift", reference.name, data.name, "--out", "SHIFT_DIR"]
    if view is not None:
        command += ["--model", inputs.model.name]
    st.download_button(
        "Shift report (HTML)",
        lambda: shift_report_bytes(
            shift_record(command, reference, data, found, inputs.model, view), "html"
        ),
        file_name="whybox-shift.html",
        mime="text/html",
        key="shift_report",
        on_click="ignore",
        icon=":material/download:",
    )
    st.dataframe(
        pd.DataFrame(
            {
                "feature": [f.feature for f in found.features],
                "test": [f.test for f in found.features],
                "effect": [f.effect for f in found.features],
                "shift (SDs)": [f.shift_sd for f in found.features],
                "adjusted p": [f.p_adjusted for f in found.features],
                "shifted": [f.shifted for f in found.features],
                "reference": [f.histogram["reference"] for f in found.features],
                "data": [f.histogram["data"] for f in found.features],
            }
        ),
        column_config={
            "effect": st.column_config.ProgressColumn(
                "effect",
                help="On one scale for every feature: the share of rows that differ (the "
                "largest gap in cumulative shares, or the total variation distance).",
                format="%.3f",
                min_value=0.0,
                max_value=1.0,
            ),
            "adjusted p": st.column_config.NumberColumn(format="%.2g"),
            "shift (SDs)": st.column_config.NumberColumn(
                format="%.2f", help="Wasserstein distance in reference standard deviations."
            ),
            "reference": st.column_config.BarChartColumn("reference", y_min=0.0),
            "data": st.column_config.BarChartColumn("data", y_min=0.0),
        },
        hide_index=True,
        width="stretch",
    )
    chosen = st.selectbox("Feature", [f.feature for f in found.features], key="shift_feature")
    shown = next(f for f in found.features if f.feature == chosen)
    st.plotly_chart(charts.shift_histogram(shown), key="shift_histogram")

    test = found.classifier
    if test is not None:
        st.subheader("Can a classifier tell the tables apart?")
        left, right = st.columns([1, 2])
        left.metric(
            "Held-out AUC (0.5: no better than chance)",
            f"{test.auc:.3f}",
            help=f"95 % interval {test.interval[0]:.3f} to {test.interval[1]:.3f}; trained on "
            f"{test.train_rows:,} rows, tested on {test.test_rows:,}",
        )
        left.caption(
            f"95 % interval {test.interval[0]:.3f} to {test.interval[1]:.3f}; adjusted p "
            f"{test.p_adjusted:.2g}"
        )
        right.plotly_chart(
            charts.ranked_bars(test.importance, "mean |tree SHAP| telling data from reference"),
            key="shift_classifier",
        )

    st.subheader("The model's view")
    st.caption(
        "The model's predictions in both tables, its performance where both have labels, "
        "and each feature's mean |attribution| (explanation drift); this explains a sample "
        "of each table."
    )
    if st.button("Compare the model on both tables", key="shift_model"):
        with st.spinner("Predicting and explaining both tables..."):
            session.cached(model_key, lambda: model_shift(inputs.model, reference, data))
        st.rerun()  # the report's download above then includes the model's view
    if session.known(model_key):
        view = session.cached(model_key, lambda: None)
        st.plotly_chart(charts.shift_histogram(view.predictions), key="shift_predictions")
        if view.performance:
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "metric": metric,
                            "reference": values["reference"],
                            "data": values["data"],
                            "change": values["change"],
                            "95 % interval": None
                            if values["interval"] is None
                            else f"{values['interval'][0]:+.3f} to {values['interval'][1]:+.3f}",
                        }
                        for metric, values in view.performance.items()
                    ]
                ),
                hide_index=True,
            )
        if view.attributions:
            st.plotly_chart(
                charts.drift_bars(
                    view.attributions["features"],
                    f"mean |attribution| ({view.attributions['method']})",
                ),
                key="shift_attributions",
            )
