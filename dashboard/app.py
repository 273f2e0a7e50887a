"""The whybox web app. Until the full dashboard lands: the built-in demos, listed."""

import streamlit as st

from model_zoo import demos

st.set_page_config(page_title="whybox", page_icon=":material/search_insights:", layout="wide")
st.title("whybox")
st.caption("Which inputs drove each prediction, and how that was computed.")

st.subheader("Built-in demo models")
st.table(
    [
        {"model": f"demo:{m.name}", "data": f"demo:{m.data}", "description": m.description}
        for m in demos.DEMO_MODELS.values()
    ]
)
st.subheader("Built-in demo data")
st.table(
    [{"data": f"demo:{d.name}", "description": d.description} for d in demos.DEMO_DATA.values()]
)
st.info(
    "Explain a demo from the command line: "
    "`whybox explain demo:credit-xgboost demo:credit --rows 0:100 --out runs/credit`"
)
