"""Global: which features matter across the explained rows, and how."""

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
classes = sorted({int(t) for t in explanation.target})
if len(classes) > 1:
    names = [explanation.output_names[c] for c in classes]
    chosen = st.selectbox("Rows explained for class", ["all", *names], key="global_class")
    if chosen != "all":
        keep = np.flatnonzero(explanation.target == classes[names.index(chosen)])
        explanation = explanation.subset(keep)
st.caption(
    f"{explanation.method} on {len(explanation.values)} rows; "
    f"{plain(charts.output_label(explanation))}"
)
ranking, swarm = st.tabs(["Ranking", "Beeswarm"])
with ranking:
    st.plotly_chart(charts.importance_bar(explanation), key="importance")
with swarm:
    st.plotly_chart(charts.beeswarm(explanation), key="beeswarm")

st.subheader("Dependence")
order = np.argsort(-np.abs(explanation.values).mean(axis=0))
features = [explanation.feature_names[i] for i in order]
left, right = st.columns(2)
feature = left.selectbox("Feature", features, key="dependence_feature")
others = ["auto", "none", *[f for f in features if f != feature]]
colour = right.selectbox("Colour by", others, key="dependence_colour")
st.plotly_chart(
    charts.dependence(explanation, feature, None if colour == "none" else colour),
    key="dependence",
)

positions, scope = sample(explanation)
show_quality(explanation, inputs, positions, "global", scope)
