"""Images: attribution maps over the images, and several methods side by side on one."""

import html

import numpy as np
import streamlit as st

from whybox.dashboard import settings
from whybox.dashboard.app import exports, session
from whybox.dashboard.app.sidebar import supported_explainers
from whybox.dashboard.app.views.quality_panel import show_quality
from whybox.dashboard.app.views.row_picker import pick_row
from whybox.dashboard.reports import charts

GRID_COLUMNS, GRID_MAX = 4, 12
SIGNS = {
    "both": lambda v: v,
    "for the class": lambda v: np.clip(v, 0, None),
    "against the class": lambda v: np.clip(v, None, 0),
}

inputs = session.require_inputs()
st.header("Images")
if not inputs.images:
    st.info("This model takes tabular data; see **Global** and **Local**.")
    st.stop()
explanation = session.require_explanation()
exports.download_buttons(session.current_run(), "images")
data = inputs.data

controls = st.columns(4)
colormap = controls[0].selectbox(
    "Colour map", ["diverging", "magnitude"], index=0 if explanation.signed else 1, key="colormap"
)
sign = controls[1].selectbox("Evidence", list(SIGNS), key="sign")
normalization = controls[2].selectbox("Scale", ["percentile", "max"], key="normalization")
opacity = controls[3].slider("Opacity", 0.0, 1.0, 0.6, 0.05, key="opacity")


def figure(values: np.ndarray, row: int, signed: bool, title: str):
    """One overlay, without its colour bar (the caption states the scale)."""
    fig = charts.image_overlay(
        data.display[row],
        SIGNS[sign](values),
        signed=signed,
        colormap=colormap,
        opacity=opacity,
        normalization=normalization,
    )
    fig.update_traces(showscale=False, selector={"type": "heatmap"})
    fig.update_layout(title=title, height=300, margin={"l": 0, "r": 0, "t": 40, "b": 0})
    return fig


st.caption(
    f"{explanation.method}; {charts.output_label(explanation)}. Colours run from blue (against "
    f"the class) through white to vermillion (for it), each map scaled to its own "
    f"{'99th percentile' if normalization == 'percentile' else 'maximum'} of |value|."
)
shown = min(len(explanation.values), GRID_MAX)
scorer = session.reference()
typical = None
with session.guard("scoring the images' typicality"):
    if scorer is not None:
        rows = [int(r) for r in explanation.rows[:shown]]
        typical = session.cached(
            ("typicality", scorer.reference.sha256, *inputs.key, tuple(rows)),
            lambda: scorer.score(data.subset(rows)),
        )
        threshold = settings.typicality_threshold()
        outside = sum(t.typicality < threshold for t in typical)
        st.caption(
            f"{outside} of these {shown} images are outside the reference (typicality below "
            f"{threshold:g}): their maps explain an extrapolation, however confident the "
            "model is."
        )
    else:
        st.caption(
            "Upload reference images (what the model learned from) in the sidebar to see "
            "how typical each image is."
        )
for start in range(0, shown, GRID_COLUMNS):
    for column, position in zip(
        st.columns(GRID_COLUMNS), range(start, min(start + GRID_COLUMNS, shown)), strict=False
    ):
        row = int(explanation.rows[position])
        target = explanation.output_names[int(explanation.target[position])]
        title = (
            f"{html.escape(data.sources[row])}<br>{html.escape(target)} "
            f"({explanation.predictions[position]:.3g})"
        )
        if typical is not None:
            title += f", typicality {typical[position].typicality:.2g}"
        column.plotly_chart(
            figure(explanation.values[position], row, explanation.signed, title),
            key=f"grid_{position}",
        )
if len(explanation.values) > shown:
    st.caption(f"The first {shown} of {len(explanation.values)} explained images are shown.")
show_quality(
    explanation,
    inputs,
    range(shown),
    "images",
    "the image shown" if shown == 1 else f"the {shown} images shown",
)

st.subheader("Methods side by side")
picked = pick_row(explanation.rows, data, "side_row", label="Image")
if picked is None:
    st.stop()
row, position = picked
methods = [m for m in supported_explainers(inputs) if m != "auto"]
defaults = [m for m in dict.fromkeys((explanation.method, "grad-cam", "occlusion")) if m in methods]
chosen = st.multiselect(
    "Methods (default parameters)", methods, default=defaults, key="side_methods"
)
target = int(explanation.target[position])
for column, method in zip(st.columns(max(1, len(chosen))), chosen, strict=False):
    with column, session.guard(f"running {method}"):
        key = (inputs.key, "side", method, row, target)
        session.submit(key, session.job_spec(inputs, method, {}, [row], target), inputs)
        result = session.outcome(key)
        if result is not None:
            column.plotly_chart(
                figure(result.values[0], row, result.signed, method), key=f"side_{method}"
            )
