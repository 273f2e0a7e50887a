"""Overview: the model card, the data's schema, performance on labelled data, predictions."""

import numpy as np
import pandas as pd
import streamlit as st

from whybox.dashboard.app import session
from whybox.dashboard.reports import charts
from whybox.dashboard.reports.wording import plain
from whybox.model_zoo.categories import names
from whybox.model_zoo.performance import performance, score_space

PAGE_ROWS = 100  # the Rows table shows this many rows at a time: a browser never gets all

inputs = session.require_inputs()
model, data = inputs.model, session.cohort_data(inputs.data)
key = (*inputs.key, *session.cohort_key())
chosen = session.cohort()
numbers = np.arange(len(data)) if chosen is None else chosen.members
st.header("Overview")

card, schema = st.columns([2, 3])
with card:
    st.subheader("Model")
    summary = model.summary()
    rows = {
        "name": summary["name"],
        "format": summary["format"],
        "kind": summary["kind"],
        "task": summary["task"],
        "inputs": f"{summary['modality']} {tuple(summary['input_shape'])}",
        "classes": ", ".join(summary["class_names"] or []) or "-",
        "output spaces": ", ".join(summary["output_spaces"]),
        "SHA-256": summary["sha256"],
    }
    st.table(pd.DataFrame({"value": list(rows.values())}, index=list(rows)))
    for note in summary["notes"]:
        st.caption(plain(note))

with schema:
    st.subheader("Data")
    for note in data.notes:  # e.g. columns the model does not use, left out
        st.info(plain(note))
    if inputs.images:
        st.metric("images", len(data))
        st.json({"shape": list(data.values.shape[1:]), "preprocessing": data.preprocessing})
    else:
        frame = data.frame
        st.caption(
            f"{len(frame):,} rows, {frame.shape[1]} features, label: {plain(data.label_name)}"
        )
        schema = session.cached(  # once: it reads every row
            (key, "schema"),
            lambda: pd.DataFrame(
                {
                    "type": frame.dtypes.astype(str),
                    "min": frame.min(),
                    "mean": frame.mean(),
                    "max": frame.max(),
                    "missing": frame.isna().sum(),
                }
            ),
        )
        st.dataframe(schema, width="stretch")

space = score_space(model)
outputs = session.cached((key, "predictions", space), lambda: model.predict(data.values, space))
if not inputs.images and data.labels is not None:
    st.subheader("Performance on the labelled data")
    with session.guard("measuring performance"):
        scores = session.cached((key, "performance"), lambda: performance(model, data, outputs))
        for column, (name, value) in zip(st.columns(len(scores)), scores.items(), strict=True):
            column.metric(name.upper() if name in ("auc", "rmse") else name, f"{value:.4g}")

st.subheader("Predictions")
if model.task == "regression":
    column, label = outputs[:, 0], "predicted value"
elif outputs.shape[1] == 2:
    column, label = outputs[:, 1], f"{space} of class '{model.output_names[1]}'"
else:
    column, label = outputs.max(axis=1), f"{space} of the predicted class"
st.plotly_chart(charts.prediction_histogram(np.asarray(column), label), key="histogram")

if not inputs.images:
    st.subheader("Rows")
    pages = -(-len(data) // PAGE_ROWS)
    page = st.number_input(
        f"Page (of {pages:,}; {PAGE_ROWS} rows each)", 1, pages, 1, key="overview_page"
    )
    shown = slice((page - 1) * PAGE_ROWS, min(page * PAGE_ROWS, len(data)))
    table = data.frame.iloc[shown].copy()
    for name, categories in data.categories.items():
        table[name] = names(categories, table[name].to_numpy())
    table.insert(0, label, np.asarray(column)[shown])
    if data.labels is not None:
        table.insert(0, str(data.label_name), data.labels.iloc[shown].to_numpy())
    if data.ids is not None:
        table.insert(0, str(data.id_name), data.ids.iloc[shown].to_numpy())
    table.index = pd.Index(numbers[shown], name="row")
    st.caption(f"Rows {shown.start:,} to {shown.stop - 1:,} of {len(data):,}.")
    st.dataframe(table, width="stretch")
