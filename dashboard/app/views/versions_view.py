"""Versions: what changed between the first model (A, the current version) and a second one
(B, a candidate) on the session's data: which decisions flip, each model's performance and
the cohorts where B is worse, and which reasons changed. Both are explained alike, so the
differences shown are the models'."""

import time
from typing import Any

import pandas as pd
import streamlit as st

from whybox.dashboard.app import exports, session
from whybox.dashboard.reports import charts
from whybox.dashboard.reports.dictionary import coded_values
from whybox.dashboard.reports.versions_page import versions_record
from whybox.dashboard.reports.wording import plain, version_verdict
from whybox.model_zoo import demos

SEED = 0
NONE = "(none)"

inputs = session.require_inputs()
st.header("Versions")
second = session.second()
if second is None:
    pairs = [(demo.previous, name) for name, demo in demos.DEMO_MODELS.items() if demo.previous]
    st.info(
        "Compare this model (A, the current version) with another version of it (B, a "
        "candidate, e.g. retrained on newer data): which decisions flip, the cohorts of rows "
        "where B is worse, and which reasons changed, all on this data. Give B in the "
        "sidebar under **Second model (B, a candidate version)**: upload a model that takes "
        "the same inputs and predicts the same classes, or, with the built-in demos, choose "
        "a demo that has another version"
        + (
            " (" + "; ".join(f"{plain(a)}, with {plain(b)} as B" for a, b in pairs) + ")."
            if pairs
            else "."
        )
    )
    st.stop()


def interval(values: list[float] | None, signed: bool = False) -> str | None:
    """A 95 % interval as text (signed for a change)."""
    if values is None:
        return None
    low, high = values
    return f"{low:+.3f} to {high:+.3f}" if signed else f"{low:.3f} to {high:.3f}"


def reasons_text(reasons: list[dict[str, Any]]) -> str:
    """A row's top reasons under one model, on one line: `Records = yes (+1.66)`."""
    return "; ".join(f"{r['feature']} = {r['value']} ({r['attribution']:+.3g})" for r in reasons)


model_a, model_b = inputs.model, second.model
classification = model_a.task == "classification"
left, right = st.columns(2)
favourable = None
if classification:
    chosen, _ = st.session_state.get("report_options", (None, None))
    classes = [NONE, *model_a.output_names]
    favourable = left.selectbox(
        "Favourable class",
        classes,
        index=classes.index(chosen) if chosen in classes else 0,
        key="versions_favourable",
        help="The class that is good news for the row (approved, healthy): the rows that "
        "lose it under B and those that gain it are counted.",
    )
    favourable = None if favourable == NONE else favourable
seed = int(
    right.number_input(
        "Seed",
        min_value=0,
        value=SEED,
        step=1,
        key="versions_seed",
        help="Decides the halves the cohort search fits and tests on, the bootstrap "
        "resamples and the rows explained; the same seed gives the same numbers.",
    )
)
options = inputs.data_source.options if inputs.data_source else ()
coded = coded_values(st.session_state.get(session.DICTIONARY))
key = (
    "versions",
    model_a.sha256,
    model_b.sha256,
    inputs.data.sha256,
    options,
    favourable,
    seed,
    str(coded),
)

command = ["whybox", "diff", inputs.source[0], *second.source, "--out", "DIFF_DIR"]
command += (["--favourable", favourable] if favourable else []) + ["--seed", str(seed)]

with session.guard("comparing the two versions"):
    from whybox.trust.versions import diff_models

    if not session.known(key):
        holder = st.empty()  # the stages while comparing, gone once compared
        with holder.status("Comparing the two versions...") as status:

            def say(stage: str) -> None:
                status.update(label=f"Comparing the two versions: {stage}...")

            def compare() -> tuple[Any, dict[str, Any]]:
                """The diff and its record, saved to the audit trail once per comparison."""
                started = time.perf_counter()
                found = diff_models(
                    model_a,
                    inputs.data,
                    model_b,
                    second.data,
                    favourable=favourable,
                    seed=seed,
                    coded=coded,
                    progress=say,
                )
                record = versions_record(command, model_a, model_b, inputs.data, found)
                session.record_comparison(record, time.perf_counter() - started)
                return found, record

            session.cached(key, compare)
        holder.empty()
    diff, record = session.cached(key, lambda: None)
    names = {"A": plain(model_a.name), "B": plain(model_b.name)}
    st.markdown(
        f"**A** {names['A']} (`{model_a.sha256[:12]}`) · **B** {names['B']} "
        f"(`{model_b.sha256[:12]}`) · {diff.rows:,} rows of {plain(inputs.data.name)}"
    )
    verdict = plain(version_verdict(record))
    if diff.cohorts:
        st.warning(verdict, icon=":material/warning:")
    else:
        st.info(verdict, icon=":material/info:")
    exports.versions_report_button(record, "versions_report")
    for note in diff.notes:
        st.caption(plain(note))

    decisions = diff.decisions
    st.subheader("Decisions")
    counts, spread = st.columns([1, 2])
    flips = decisions.get("flips")
    if flips is not None:
        counts.metric(
            "Predictions that flip",
            f"{flips['rows']:,}",
            help=f"{flips['share']:.1%} of the rows get another class from B than from A.",
        )
        turned = decisions.get("favourable")
        if turned is not None:
            good = plain(turned["class"])
            lost, gained = counts.columns(2)
            lost.metric(f"Lose '{good}' under B", f"{turned['lost']:,}")
            gained.metric(f"Gain '{good}' under B", f"{turned['gained']:,}")
        if flips["pairs"]:
            counts.dataframe(
                pd.DataFrame(flips["pairs"]).rename(
                    columns={"a": "A predicts", "b": "B predicts", "rows": "rows"}
                ),
                hide_index=True,
                key="versions_flips",
            )
    change = decisions["change"]
    spread.plotly_chart(
        charts.change_histogram(change["edges"], change["counts"], decisions["output"]),
        key="versions_change",
    )
    quantiles = change["quantiles"]
    spread.caption(
        f"Change in the {plain(decisions['output'])}, B minus A: mean {change['mean']:+.3g}, "
        f"mean absolute {change['mean_absolute']:.3g}, 90 % of rows between "
        f"{quantiles['0.05']:+.3g} and {quantiles['0.95']:+.3g}."
    )
    st.markdown("**The rows that changed most** (flipped rows first)")
    largest = pd.DataFrame(decisions["largest"]).rename(
        columns={"class_a": "A predicts", "class_b": "B predicts", "a": "A", "b": "B"}
    )
    if largest["id"].isna().all():
        largest = largest.drop(columns="id")
    st.dataframe(largest, hide_index=True, height=250, key="versions_largest")

    st.subheader("Performance")
    if diff.performance is None:
        st.caption("The data has no label column: performance and cohorts need labels.")
    else:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "metric": metric,
                        "A": values["a"],
                        "A 95 % interval": interval(values["a_interval"]),
                        "B": values["b"],
                        "B 95 % interval": interval(values["b_interval"]),
                        "change": values["change"],
                        "change 95 % interval": interval(values["change_interval"], True),
                    }
                    for metric, values in diff.performance.items()
                ]
            ),
            column_config={
                name: st.column_config.NumberColumn(format="%.4f") for name in ("A", "B")
            }
            | {"change": st.column_config.NumberColumn(format="%+.4f")},
            hide_index=True,
            key="versions_performance",
        )
        st.caption(
            "Intervals from paired bootstrap resamples: both models scored on the same "
            "resampled rows, so the interval of the change is the one to read."
        )

    if diff.cohorts is not None:
        st.subheader("Cohorts where B is worse")
        search = diff.cohort_search
        loss = "error rate" if classification else "mean absolute error"
        gap = (
            f"{100 * search['min_gap']:.0f} points of error rate"
            if classification
            else f"{100 * search['min_gap']:.0f} % more mean absolute error than A's"
        )
        how = (
            f"A tree of depth {search['depth']} was fitted to the change in each row's "
            f"{'error' if classification else 'absolute error'} on {search['fitted_rows']:,} "
            f"rows; its {search['candidates']} leaves where B was worse were tested on the other "
            f"{search['tested_rows']:,} rows, which the tree never saw (a one-sided sign test, "
            f"Holm-corrected at {diff.alpha:g}). A cohort is reported where that test holds and "
            f"B is worse there by at least {gap}."
        )
        if diff.cohorts:
            st.markdown(
                "\n".join(
                    f"- **{plain(cohort.rule)}**: "
                    + (
                        f"B wrong on {cohort.b_loss:.0%} of {cohort.rows:,} rows, A on "
                        f"{cohort.a_loss:.0%}"
                        if classification
                        else f"B's mean absolute error {cohort.b_loss:.3g} against A's "
                        f"{cohort.a_loss:.3g} on {cohort.rows:,} rows"
                    )
                    for cohort in diff.cohorts
                )
            )
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "rule": cohort.rule,
                            "rows": cohort.rows,
                            f"A {loss}": cohort.a_loss,
                            f"B {loss}": cohort.b_loss,
                            "held-out rows B worse": cohort.worse,
                            "held-out rows B better": cohort.better,
                            "adjusted p": cohort.p_adjusted,
                            "gap 95 % interval": interval(list(cohort.gap_interval), True),
                        }
                        for cohort in diff.cohorts
                    ]
                ),
                column_config={
                    f"A {loss}": st.column_config.NumberColumn(format="%.3f"),
                    f"B {loss}": st.column_config.NumberColumn(format="%.3f"),
                    "adjusted p": st.column_config.NumberColumn(format="%.2g"),
                },
                hide_index=True,
                key="versions_cohorts",
            )
            st.caption(how)
        else:
            st.success(f"No cohort where B is worse was found. {how}")

    reasons = diff.reasons
    if reasons is not None:
        st.subheader("Reasons")
        features = reasons["features"]
        st.plotly_chart(
            charts.drift_bars(
                {f["feature"]: {"A": f["a"], "B": f["b"]} for f in features},
                f"mean |attribution| ({reasons['method']})",
                sides=charts.VERSION_COLOURS,
                errors={f["feature"]: {"A": f["a_se"], "B": f["b_se"]} for f in features},
            ),
            key="versions_importance",
        )
        st.dataframe(
            pd.DataFrame(features).rename(
                columns={
                    "a": "A",
                    "a_se": "A SE",
                    "b": "B",
                    "b_se": "B SE",
                    "change_se": "change SE",
                    "rank_a": "rank A",
                    "rank_b": "rank B",
                }
            ),
            column_config={"change": st.column_config.NumberColumn(format="%+.4f")},
            hide_index=True,
            key="versions_features",
        )
        if reasons["rows"]:
            st.markdown("**The changed rows' reasons, side by side**")
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "row": row["row"],
                            **({"id": row["id"]} if row["id"] is not None else {}),
                            "reasons under A": reasons_text(row["a"]),
                            "reasons under B": reasons_text(row["b"]),
                            "appeared": ", ".join(row["appeared"]),
                            "disappeared": ", ".join(row["disappeared"]),
                            "changed sign": ", ".join(row["changed_sign"]),
                        }
                        for row in reasons["rows"]
                    ]
                ),
                hide_index=True,
                key="versions_rows",
            )
        target = "" if reasons["target"] is None else f", class '{plain(reasons['target'])}'"
        st.caption(
            f"Both models were explained by {plain(reasons['method'])} with the same "
            f"background rows, output space ({plain(reasons['output_space'])}{target}) and "
            f"seed ({reasons['seed']}), on the same {reasons['rows_explained']:,} sampled rows "
            "and the rows that changed most: the differences are the models', not the method's."
        )
