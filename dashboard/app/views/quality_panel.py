"""The Quality panel of the Global, Local and Images views: how far to trust the explanation
of the rows shown (`whybox.explainers.quality`), with the agreement of a second method where
the session has one.

Nothing is computed until asked: "Check quality" measures the cheap metrics, and each costly
metric (it explains the rows again, many times) has its own button that states its estimated
time first. Results are kept in the session's own results (`session.cached`), keyed by the
explanation's result key and the rows measured, so a rerun or a change of view never
recomputes and no other session ever sees them.

Not a page: the views import it (st.navigation lists the pages it runs).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from whybox.dashboard.app import session
from whybox.dashboard.reports.charts import row_sample
from whybox.dashboard.reports.wording import plain
from whybox.explainers import Explanation
from whybox.explainers.agreement import agreement
from whybox.explainers.quality import (
    CHEAP,
    METRICS,
    Quality,
    Score,
    assess,
    estimate_seconds,
    not_applicable,
)

SAMPLE_ROWS = 200
"""The Global view measures at most this many of the explained rows, a seeded sample."""
SAMPLE_SALT = 0x0A11
COSTLY = tuple(name for name, metric in METRICS.items() if metric.costly)
BATCHES: tuple[tuple[str, ...], ...] = (CHEAP, *((name,) for name in COSTLY))
"""What one button computes: the cheap metrics together, each costly one alone."""
STAGES = {"deletion and insertion": "deletion and insertion"} | {
    name: metric.title.lower() for name, metric in METRICS.items()
}
AGREEMENT_K = 5
NONE = "—"


def sample(explanation: Explanation, limit: int = SAMPLE_ROWS) -> tuple[np.ndarray, str]:
    """Positions of at most `limit` of `explanation`'s rows, drawn without replacement by
    its seed (all of them where there are no more), and what they are, in words."""
    count = len(explanation.values)
    positions = row_sample(explanation, limit, SAMPLE_SALT)
    if count <= limit:
        return positions, f"all {count:,} rows shown"
    return positions, (
        f"a sample of {limit:,} of the {count:,} rows shown (drawn with seed {explanation.seed})"
    )


def show_quality(
    explanation: Explanation,
    inputs: session.Inputs,
    positions: Sequence[int] | np.ndarray,
    key: str,
    scope: str,
) -> None:
    """The panel for the rows at `positions` of `explanation` (the session's current one,
    possibly a subset of it); `scope` says which rows those are, in plain words; `key`
    prefixes the widgets' keys, one per view."""
    st.subheader("Quality")
    source = st.session_state.get("current")
    mine = _part(explanation, positions, _explained(explanation))
    rows = tuple(int(r) for r in mine.rows)
    st.caption(
        f"How far to trust {plain(explanation.method)} on {plain(scope)}: each metric measures "
        f"the model again around {_these(inputs, len(rows))} and compares what it sees with "
        "what the attributions claim, against a control. Computed when you ask, kept for this "
        "session."
    )
    mine_quality: list[Quality] = []
    with session.guard("checking the explanation's quality"):
        _buttons(mine, inputs, source, rows, key)
        mine_quality = _known(source, rows)
        if mine_quality:
            _table(mine_quality, len(rows))
    with session.guard("comparing with the other explanation"):
        _second(mine, inputs, source, rows, key, mine_quality)


def report_quality(
    explanation: Explanation, source: Hashable, results: dict[Hashable, object]
) -> dict | None:
    """The Global view's quality of `explanation` (stored at `source`) as run.json's
    `quality`, every batch measured so far merged, from the session's `results`; None
    where none was measured. Read when a report is made, so a check made after the
    download button was drawn is in it."""
    positions, _ = sample(explanation)
    rows = tuple(int(r) for r in np.asarray(explanation.rows)[positions])
    found = [q for b in BATCHES if isinstance(q := results.get(_key(source, rows, b)), Quality)]
    if not found:
        return None
    notes = list(dict.fromkeys(note for quality in found for note in quality.notes))
    return replace(found[0], scores=_scores(found), notes=notes).record()


def _these(inputs: session.Inputs, count: int) -> str:
    noun = "image" if inputs.images else "row"
    return f"this {noun}" if count == 1 else f"these {noun}s"


def _explained(explanation: Explanation) -> int:
    """How many rows the run that made `explanation` explained (its time is theirs)."""
    full = session.current_explanation()
    return len(full.values) if full is not None else len(explanation.values)


def _part(
    explanation: Explanation, positions: Sequence[int] | np.ndarray, total: int
) -> Explanation:
    """`explanation` at `positions`, with its time scaled to those rows: the costly metrics'
    estimates are multiples of it."""
    positions = np.asarray(positions, dtype=np.int64)
    part = explanation.subset(positions)
    return replace(part, seconds=explanation.seconds * len(positions) / max(total, 1))


def _key(source: Hashable, rows: tuple[int, ...], batch: tuple[str, ...]) -> tuple:
    return ("quality", source, rows, batch)


def _known(source: Hashable, rows: tuple[int, ...]) -> list[Quality]:
    """The quality batches computed for these rows of the explanation stored at `source`."""
    found = []
    for batch in BATCHES:
        key = _key(source, rows, batch)
        if session.known(key):
            found.append(session.cached(key, lambda: None))
    return found


def _buttons(
    explanation: Explanation,
    inputs: session.Inputs,
    source: Hashable,
    rows: tuple[int, ...],
    key: str,
) -> None:
    """The Check quality button for the cheap metrics and a button per costly one. A click
    reruns the page with the button's state set: its batch is measured here (with a
    progress bar) before the buttons are drawn, so they show at once what is done."""
    buttons = {CHEAP: f"{key}_quality", **{(name,): f"{key}_quality_{name}" for name in COSTLY}}
    for batch, button in buttons.items():
        if st.session_state.get(button) and not session.known(_key(source, rows, batch)):
            with session.guard("checking the explanation's quality"):  # the buttons stay
                _compute(explanation, inputs, source, rows, batch, key)
    row = st.container(horizontal=True)  # one element, where columns would be one per button
    for batch, button in buttons.items():
        if batch == CHEAP:
            label, kind = "Check quality", "primary"
            about = (
                "Deletion, insertion, faithfulness correlation and infidelity: they run the "
                "model a few hundred times per row, and explain nothing again."
            )
        else:
            metric = METRICS[batch[0]]
            label = f"{metric.title} ({_estimate(batch[0], explanation, inputs)})"
            kind = "secondary"
            about = (
                f"{metric.measures} It explains {_these(inputs, len(rows))} again, many "
                "times: the estimate is from the explanation's own time."
            )
            if reason := not_applicable(batch[0], inputs.model):
                about = f"{metric.measures} It does not apply to this model: {reason}."
        done = session.known(_key(source, rows, batch))
        row.button(label, type=kind, key=button, disabled=done, help=about)


def _estimate(metric: str, explanation: Explanation, inputs: session.Inputs) -> str:
    """About how long `metric` takes here, in words, or that it does not apply."""
    if not_applicable(metric, inputs.model):
        return "not applicable here"
    try:
        seconds = estimate_seconds(metric, explanation, inputs.model)
    except Exception:  # an estimate is a courtesy: a model it cannot size still gets the button
        return "time unknown"
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    return f"about {seconds / 60:.0f} min"


def _compute(
    explanation: Explanation,
    inputs: session.Inputs,
    source: Hashable,
    rows: tuple[int, ...],
    batch: tuple[str, ...],
    key: str,
) -> Quality:
    """`batch` measured on `explanation` once per session, with a progress bar and a Stop
    button (any click reruns the page, which ends the measuring; nothing is kept then)."""
    pair = ("deletion", "insertion")  # measured together, one progress stage
    stages = list(dict.fromkeys("deletion and insertion" if m in pair else m for m in batch))
    bar = st.progress(0.0, text="Checking quality: starting")
    stop = st.empty()
    stop.button(
        "Stop", key=f"{key}_quality_stop_{batch[0]}", help="Stop measuring; nothing is kept."
    )

    def progress(stage: str, done: int, total: int) -> None:
        index = stages.index(stage) if stage in stages else 0
        bar.progress(
            min(1.0, (index + done / max(total, 1)) / len(stages)),
            text=f"Checking quality: {STAGES.get(stage, stage)}, {done:,} of {total:,}",
        )

    try:
        return session.cached(
            _key(source, rows, batch),
            lambda: assess(explanation, inputs.model, inputs.data, batch, progress=progress),
        )
    finally:
        bar.empty()
        stop.empty()


def _scores(qualities: list[Quality]) -> dict[str, Score]:
    """Every metric measured, in METRICS' order."""
    found = {name: s for quality in qualities for name, s in quality.scores.items()}
    return {name: found[name] for name in METRICS if name in found}


def _number(value: float | None) -> str:
    return NONE if value is None else f"{value:.3g}"


def _value(score: Score) -> str:
    if not score.applicable:
        return "not applicable"
    said = _number(score.value)
    if score.interval is not None:
        said += f" (95 % interval {score.interval[0]:.3g} to {score.interval[1]:.3g})"
    return said


def _control(score: Score) -> str:
    if not score.applicable:
        return NONE
    said = METRICS[score.metric].control
    return said if score.reference is None else f"{said}: {score.reference:.3g}"


def _verdict(score: Score) -> str:
    if not score.applicable:
        return f"not applicable: {score.reason}"
    return score.verdict or NONE


def _table(qualities: list[Quality], rows: int) -> None:
    """One line per metric measured: what it measures, value, control, p-value, verdict."""
    table = pd.DataFrame(
        [
            {
                "metric": METRICS[name].title,
                "what it measures": METRICS[name].measures,
                "value": _value(score),
                "control": _control(score),
                "p-value": _number(score.p_value) if score.applicable else NONE,
                "verdict": _verdict(score),
            }
            for name, score in _scores(qualities).items()
        ]
    )
    st.table(table.map(plain), hide_index=True)  # st.table reads its cells as Markdown
    first = qualities[0]
    said = f"Each removed input is set to {first.baseline}; seed {first.seed}."
    if rows < 2:
        said += " Intervals and p-values need two rows or more: a single row gets neither."
    st.caption(plain(said))
    for note in dict.fromkeys(note for quality in qualities for note in quality.notes):
        st.caption(plain(note))


def _others(
    mine: Explanation, inputs: session.Inputs, source: Hashable
) -> dict[str, tuple[Hashable, Explanation]]:
    """The session's other explanations of these same rows (same inputs, targets and input
    values) by another method, per method, at these rows: the Compare view's of the current
    explanation first, then any other (another Explain run, an image's side-by-side map)."""
    results = st.session_state.get("results", {})
    candidates = sorted(
        (
            (k, v)
            for k, v in results.items()
            if isinstance(v, Explanation)
            and isinstance(k, tuple)
            and k
            and k[0] == inputs.key
            and k != source
            and v.method != mine.method
        ),
        key=lambda item: item[0][1:3] != ("compare", source),
    )
    found: dict[str, tuple[Hashable, Explanation]] = {}
    for key, other in candidates:
        if other.method in found:
            continue
        part = _same_rows(mine, other)
        if part is not None:
            found[other.method] = (key, part)
    return found


def _same_rows(mine: Explanation, other: Explanation) -> Explanation | None:
    """`other` at `mine`'s rows where it explains them all alike (same targets, same input
    values: not an edited row), else None."""
    order = np.argsort(other.rows, kind="stable")  # quick where they are in order already
    found = np.searchsorted(other.rows, mine.rows, sorter=order)
    positions = order[np.minimum(found, len(order) - 1)]
    if not np.array_equal(other.rows[positions], mine.rows):
        return None
    part = _part(other, positions, len(other.values))
    if part.values.shape != mine.values.shape or not np.array_equal(part.target, mine.target):
        return None
    try:
        same = np.array_equal(
            np.asarray(part.data, dtype=np.float64),
            np.asarray(mine.data, dtype=np.float64),
            equal_nan=True,
        )
    except (TypeError, ValueError):
        same = False
    return part if same else None


def _second(
    mine: Explanation,
    inputs: session.Inputs,
    source: Hashable,
    rows: tuple[int, ...],
    key: str,
    mine_quality: list[Quality],
) -> None:
    """How far another method's explanation of these rows agrees, and both methods'
    quality side by side once the other's is computed."""
    others = _others(mine, inputs, source)
    if not others:
        noun = "images" if inputs.images else "rows"
        st.caption(
            f"Explain the same {noun} with another method (the **Compare** view) to see here "
            "how far the two agree, and both methods' quality side by side."
        )
        return
    methods = list(others)
    method = methods[0]
    if len(methods) > 1:
        method = st.selectbox(
            "Compare with",
            methods,
            key=f"{key}_quality_other",
            format_func=plain,
            help="The session's other explanations of these same rows.",
        )
    other_key, other = others[method]
    summary = agreement(mine, other, k=AGREEMENT_K)
    a, b = st.columns(2)
    a.metric(
        f"Rank correlation with {plain(method)} (Spearman of |values|)",
        f"{summary['mean_rank_correlation']:.3f}",
    )
    b.metric(
        f"Top-{summary['k']} overlap with {plain(method)}", f"{summary['mean_top_k_overlap']:.0%}"
    )
    if summary["sign_agreement"] is not None:
        st.caption(f"Signs agree on {summary['sign_agreement']:.0%} of the top features.")
    theirs = _known(other_key, rows)
    wanted = [q for q in BATCHES if session.known(_key(source, rows, q))] or [CHEAP]
    missing = [batch for batch in wanted if not session.known(_key(other_key, rows, batch))]
    if missing:
        costly = [name for batch in missing for name in batch if METRICS[name].costly]
        estimate = "; ".join(
            f"{METRICS[name].title.lower()} {_estimate(name, other, inputs)}" for name in costly
        )
        label = f"Check quality of {plain(method)} too" + (f" ({estimate})" if estimate else "")
        button = f"{key}_quality_other_check"
        if st.session_state.get(button):  # measured before the button is drawn, as above
            with session.guard(f"checking the quality of {plain(method)}"):
                for batch in missing:
                    _compute(other, inputs, other_key, rows, batch, f"{key}_other")
            theirs = _known(other_key, rows)
        if any(not session.known(_key(other_key, rows, batch)) for batch in missing):
            st.button(
                label,
                key=button,
                help="The same metrics on the other method's explanation of these rows.",
            )
    if theirs:
        _side_by_side({mine.method: mine_quality, method: theirs})


def _side_by_side(qualities: dict[str, list[Quality]]) -> None:
    """Each metric measured for either method, a column per method."""
    scores = {method: _scores(found) for method, found in qualities.items()}
    names = [name for name in METRICS if any(name in s for s in scores.values())]

    def cell(score: Score | None) -> str:
        if score is None:
            return "not computed"
        if not score.applicable:
            return f"not applicable: {score.reason}"
        return f"{_value(score)}: {score.verdict}" if score.verdict else _value(score)

    table = pd.DataFrame(
        [
            {
                "metric": METRICS[name].title,
                "better": METRICS[name].better,
                **{method: cell(found.get(name)) for method, found in scores.items()},
            }
            for name in names
        ]
    )
    table = table.map(plain).rename(columns=plain)
    st.markdown("**Both methods on these rows**")
    st.table(table, hide_index=True)
