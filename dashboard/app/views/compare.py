"""Compare: a second explainer on the same rows, and how far the two agree."""

import pandas as pd
import streamlit as st

from whybox.dashboard.app import exports, session
from whybox.dashboard.app.sidebar import explain_command, param_widgets, supported_explainers
from whybox.dashboard.app.views.row_picker import pick_row
from whybox.dashboard.reports import charts
from whybox.dashboard.reports.wording import plain
from whybox.explainers import quality, registry
from whybox.explainers.agreement import agreement

inputs = session.require_inputs()
st.header("Compare")


def _ranking_table(ranking: list[quality.Ranked], unit: str) -> pd.DataFrame:
    def interval(r: quality.Ranked, metric: str) -> str:
        low_high = r.intervals.get(metric)
        return "" if low_high is None else f"{low_high[0]:.3g} to {low_high[1]:.3g}"

    return pd.DataFrame(
        [
            {
                "method": r.method,
                "faithfulness": r.faithfulness,
                "deletion": r.scores.get("deletion"),
                "deletion 95 %": interval(r, "deletion"),
                "insertion": r.scores.get("insertion"),
                "insertion 95 %": interval(r, "insertion"),
                "faithfulness correlation": r.scores.get("faithfulness_correlation"),
                f"seconds per {unit}": r.seconds_per_row,
                "not ranked": plain(r.reason),
            }
            for r in ranking
        ]
    )


with st.expander("Which method for this model?"):
    unit = "image" if inputs.images else "row"
    st.caption(
        f"Every method that fits, on the same {quality.RANKING_ROWS[inputs.model.modality]} "
        f"{unit}s drawn with seed 0, ranked by faithfulness: the mean of the deletion and "
        "insertion ratios against random orders (1: no better than random). "
        "The auto explainer takes the first with choose = quality."
    )
    rank_key = (inputs.key, "rank-methods")
    if session.known(rank_key) or st.button("Rank the methods", key="rank_methods"):
        with session.guard("ranking the methods"):
            bar = st.progress(0.0, text="ranking the methods")
            ranking = session.cached(
                rank_key,
                lambda: quality.rank_methods(
                    inputs.model,
                    inputs.data,
                    progress=lambda done, total: bar.progress(
                        done / total, text=f"{done} of {total} methods"
                    ),
                ),
            )
            bar.empty()
            st.dataframe(_ranking_table(ranking, unit), hide_index=True)

explanation = session.require_explanation()
exports.download_buttons(session.current_run(), "compare")
others = [m for m in supported_explainers(inputs) if m not in ("auto", explanation.method)]
if not others:
    st.info("No other explainer supports this model and data.")
    st.stop()
left, right = st.columns([1, 2])
with left:
    method = st.selectbox(f"Compare {explanation.method} with", others, key="compare_method")
    cls = registry.get(method)
    st.caption(cls.summary)
    with st.expander("Parameters"):
        params = param_widgets(cls, "compare")
    k = st.number_input("Top k", 1, 50, 5, key="compare_k")
key = (
    inputs.key,
    "compare",
    st.session_state.get("current"),
    method,
    tuple(sorted(params.items())),
)
with session.guard(f"running {method}"):
    if not session.known(key) and not session.pending(key):
        if not st.button("Run comparison", type="primary", key="compare_run"):
            st.stop()
        target = explanation.target[0] if len(set(explanation.target.tolist())) == 1 else None
        target = None if target is None else int(target)
        rows = f"{explanation.rows[0]}:{explanation.rows[-1] + 1}"  # the sidebar's A:B
        name = "auto" if target is None else explanation.output_names[target]
        command = explain_command(inputs, method, params, rows, name)
        cls(**params)  # a bad value is refused here, before the queue
        spec = session.job_spec(inputs, method, params, explanation.rows, target)
        session.submit(key, spec, inputs, command)
    other = session.outcome(key)
    if other is None:
        st.stop()
    summary = session.cached(  # once: it ranks every row's attributions
        (key, "agreement", int(k)),
        lambda: {
            name: value
            for name, value in agreement(explanation, other, k=int(k)).items()
            if not name.startswith("per_row")  # a number per row, not shown here
        },
    )
    with right:
        a, b = st.columns(2)
        a.metric(
            "Mean rank correlation (Spearman of |values|)",
            f"{summary['mean_rank_correlation']:.3f}",
        )
        b.metric(f"Mean top-{int(k)} overlap", f"{summary['mean_top_k_overlap']:.0%}")
        if summary.get("sign_agreement") is not None:
            st.caption(f"Signs agree on {summary['sign_agreement']:.0%} of the top features.")
    picked = pick_row(explanation.rows, inputs.data, "compare_row")
    if picked is None:
        st.stop()
    _, position = picked
    st.plotly_chart(charts.agreement_scatter(explanation, other, position), key="agreement")
