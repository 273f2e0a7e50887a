"""Local: one row's explanation, its reasons in words, and what-if edits."""

import numpy as np
import pandas as pd
import streamlit as st

from whybox.dashboard.app import exports, session
from whybox.dashboard.reports import charts
from whybox.dashboard.reports.wording import plain, reasons
from whybox.explainers import registry
from whybox.model_zoo import Dataset

WHAT_IF_COLUMNS = 4

inputs = session.require_inputs()
st.header("Local")
if inputs.images:
    st.info("For images, see **Images**: each map is that image's local explanation.")
    st.stop()
explanation = session.require_explanation()
exports.download_buttons(session.current_run(), "local")
row = st.selectbox("Row (type to search)", [int(r) for r in explanation.rows], key="local_row")
position = int(np.flatnonzero(explanation.rows == row)[0])
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
    st.markdown("**Top reasons**")
    for sentence in reasons(explanation, position):
        st.markdown(f"- {sentence}")

st.subheader("What if?")
st.caption("Change the row's values; the prediction and its explanation follow.")
frame = inputs.data.frame
original = frame.iloc[row].to_numpy(dtype=np.float64)
columns = st.columns(WHAT_IF_COLUMNS)
values = tuple(
    float(
        columns[i % WHAT_IF_COLUMNS].number_input(
            name, value=float(original[i]), key=f"whatif:{row}:{name}"
        )
    )
    for i, name in enumerate(frame.columns)
)
if values != tuple(original):
    with session.guard("explaining the edited row"):
        params = {k: v for k, v in explanation.params.items() if k != "chosen_by"}
        explainer = registry.get(explanation.method)(**params)

        def explain_edit():
            copy = frame.astype(np.float64)
            copy.iloc[row] = values
            what_if = Dataset(frame=copy, sha256=f"{inputs.data.sha256}:what-if", name="what-if")
            return explainer.explain(
                inputs.model, what_if, rows=[row], target=int(explanation.target[position])
            )

        changed = session.cached(
            (inputs.key, "what-if", explanation.method, row, values), explain_edit
        )
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
