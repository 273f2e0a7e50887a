"""Global: which features matter across the explained rows, and how.

The ranking is over every explained row; the beeswarm and the dependence plot draw a seeded
sample of at most `charts.BEESWARM_ROWS` and `charts.DEPENDENCE_ROWS` rows, so a browser
draws them quickly at any row count, and say so.
"""

import numpy as np
import streamlit as st

from whybox.dashboard.app import exports, session
from whybox.dashboard.app.views.quality_panel import sample, show_quality
from whybox.dashboard.reports import charts
from whybox.dashboard.reports.wording import plain

inputs = session.require_inputs()
st.header("Global")
if inputs.images:
    st.info("Global views are for tabular models; see **Images** for attribution maps.")
    st.stop()
explanation = session.require_explanation()
exports.download_buttons(session.current_run(), "global")
classes = np.flatnonzero(np.bincount(explanation.target))  # np.unique would sort every row
chosen = "all"
if len(classes) > 1:
    names = [explanation.output_names[c] for c in classes]
    chosen = st.selectbox("Rows explained for class", ["all", *names], key="global_class")
    if chosen != "all":
        keep = np.flatnonzero(explanation.target == classes[names.index(chosen)])
        explanation = explanation.subset(keep)
count = len(explanation.values)
means = session.cached(
    ("mean |attribution|", st.session_state.get("current"), chosen),
    lambda: charts.mean_abs(explanation),
)
st.caption(f"{explanation.method} on {count:,} rows; {plain(charts.output_label(explanation))}")
ranking, swarm = st.tabs(["Ranking", "Beeswarm"])
with ranking:
    st.plotly_chart(charts.importance_bar(explanation, means=means), key="importance")
with swarm:
    drawn = charts.sample_note(count, charts.BEESWARM_ROWS)
    st.caption(f"The beeswarm draws {drawn}; the ranking uses every row.")
    st.plotly_chart(
        charts.beeswarm(explanation, rows=charts.BEESWARM_ROWS, means=means), key="beeswarm"
    )

st.subheader("Dependence")
features = [explanation.feature_names[i] for i in np.argsort(-means, kind="stable")]
left, right = st.columns(2)
feature = left.selectbox("Feature", features, key="dependence_feature")
others = ["auto", "none", *[f for f in features if f != feature]]
colour = right.selectbox("Colour by", others, key="dependence_colour")
st.caption(f"The dependence plot draws {charts.sample_note(count, charts.DEPENDENCE_ROWS)}.")
st.plotly_chart(
    charts.dependence(
        explanation, feature, None if colour == "none" else colour, charts.DEPENDENCE_ROWS
    ),
    key="dependence",
)

positions, scope = sample(explanation)
show_quality(explanation, inputs, positions, "global", scope)
