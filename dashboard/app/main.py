"""The whybox web app: choose a model, data and explainer in the sidebar; read the views.

Run with `whybox dashboard` (or `make run`). Every upload and result belongs to the browser
session that made it (see dashboard/session.py).
"""

from pathlib import Path

import streamlit as st

from whybox.dashboard.app import sidebar

VIEWS = Path(__file__).with_name("views")

st.set_page_config(page_title="whybox", page_icon=":material/search_insights:", layout="wide")
navigation = st.navigation(
    [
        st.Page(VIEWS / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page(VIEWS / "global_view.py", title="Global", icon=":material/bar_chart:"),
        st.Page(VIEWS / "local.py", title="Local", icon=":material/person_search:"),
        st.Page(VIEWS / "images_view.py", title="Images", icon=":material/image:"),
        st.Page(VIEWS / "compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page(VIEWS / "cohorts_view.py", title="Cohorts", icon=":material/group:"),
        st.Page(VIEWS / "rules_view.py", title="Rules", icon=":material/rule:"),
        st.Page(VIEWS / "shift_view.py", title="Shift", icon=":material/difference:"),
        st.Page(VIEWS / "versions_view.py", title="Versions", icon=":material/commit:"),
        st.Page(VIEWS / "runs.py", title="Runs", icon=":material/history:"),
    ]
)
sidebar.render()
navigation.run()
sidebar.warm_up_engine()
