"""Attributions in plain words: the sentences the Local view and the reports show."""

from __future__ import annotations

import re

from whybox.dashboard.reports.charts import output_label
from whybox.dashboard.reports.values import feature_text, value_text
from whybox.explainers import Explanation

MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|$~])")


def plain(text: object) -> str:
    """A user-provided name (feature, class, file) as literal text inside Streamlit
    markdown: the characters that make emphasis, links, images, HTML, tables or LaTeX are
    escaped, and it stays on one line."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def sentence(feature: str, value: str, attribution: float, what: str) -> str:
    """One attribution as plain text (no markup, not escaped), `value` as `value_text` gives
    it: "Income = 1200 raised the log-odds of class 'good' by 0.42"; `what` is
    `output_label`."""
    verb = "raised" if attribution > 0 else "lowered"
    return f"{feature} = {value} {verb} the {what} by {abs(attribution):.3g}"


def reasons(explanation: Explanation, position: int, k: int = 4) -> list[str]:
    """The `k` features that pushed this row's output up most, then the `k` that pushed it
    down most, as sentences for Streamlit markdown (names escaped with `plain`)."""
    what = output_label(explanation, position)
    return [
        plain(
            sentence(
                feature_text(explanation, name),
                value_text(explanation, name, value),
                attribution,
                what,
            )
        )
        for sign in (1, -1)
        for name, value, attribution in explanation.top_reasons(k, position, sign)
    ]


def typicality_text(typicality: float, threshold: float) -> str:
    """A row's typicality as a person reads it (plain text): "fewer than 1 % of reference
    rows are this unusual", with the warning where it is below `threshold`."""
    if typicality < 0.01:
        said = "fewer than 1 % of reference rows are this unusual"
    else:
        said = f"about {100 * typicality:.0f} % of reference rows are this unusual or more"
    if typicality < threshold:
        said += "; outside the training data: this explanation describes an extrapolation"
    return said


def shift_verdict(found: dict, shown: int = 8) -> str:
    """What a shift report found (`ShiftReport.to_json()`, or shift.json), in a sentence of
    plain text: "Shift found in 2 of 13 features: Income, Debt." or "No feature shifted
    (Holm-corrected at 0.05).", and what the classifier test adds."""
    features, test = found["features"], found["classifier"]
    moved = [f["feature"] for f in features if f["shifted"]]
    if moved:
        more = f" and {len(moved) - shown} more" if len(moved) > shown else ""
        said = f"Shift found in {len(moved)} of {len(features)} features: "
        said += f"{', '.join(moved[:shown])}{more}."
    else:
        said = f"No feature shifted (Holm-corrected at {found['alpha']:g})."
    if test is not None and test["shifted"] and not moved:
        said += f" Yet a classifier tells the tables apart (AUC {test['auc']:.3f})."
    return said


VERDICT_METRIC = {"classification": "accuracy", "regression": "rmse"}
"""The metric a version verdict names: accuracy, or RMSE for a regressor."""
VERDICT_COHORTS = 3
"""Cohorts a version verdict names; the report lists them all."""


def version_verdict(record: dict) -> str:
    """What changed from model A to model B (diff.json, or `VersionDiff.to_json()`) in one
    or two sentences of plain text: "B flips 386 of 4,000 decisions (9.7 %); accuracy falls
    from 0.871 to 0.814 (95 % interval of the change -0.067 to -0.049). B is worse on 1
    cohort: age ≤ 29 and home = rent (343 rows)." or "... No cohort where B is
    significantly worse (Holm-corrected at 0.05)."""
    decisions, task = record["decisions"], record["task"]
    if task == "classification":
        flips = decisions["flips"]
        parts = [
            f"B flips {flips['rows']:,} of {record['rows']:,} decisions "
            f"({100 * flips['share']:.1f} %)"
        ]
        favourable = decisions.get("favourable")
        if favourable and flips["rows"]:
            parts[0] += (
                f": {favourable['lost']:,} lose {favourable['class']!r} and "
                f"{favourable['gained']:,} gain it"
            )
    else:
        change = decisions["change"]
        parts = [
            f"B changes the {decisions['output']} by {change['mean_absolute']:.3g} on average "
            f"over {record['rows']:,} rows (mean {change['mean']:+.3g})"
        ]
    performance = record["performance"]
    if performance is None:
        return parts[0] + "; the data has no labels, so performance is not compared."
    name = VERDICT_METRIC[task]
    metric = performance[name]
    interval = metric["change_interval"]
    label = "RMSE" if name == "rmse" else name
    if interval is not None and interval[0] <= 0 <= interval[1]:
        moved = f"{label} goes from {metric['a']:.3f} to {metric['b']:.3f}, within noise"
    else:
        verb = "rises" if metric["change"] > 0 else "falls"
        moved = f"{label} {verb} from {metric['a']:.3f} to {metric['b']:.3f}"
    if interval is not None:
        moved += f" (95 % interval of the change {interval[0]:.3f} to {interval[1]:.3f})"
    parts.append(moved)
    said = "; ".join(parts) + "."
    cohorts = record["cohorts"]
    if cohorts is None:
        return said + " Cohorts are looked for in tables only."
    if not cohorts:
        return said + (
            f" No cohort where B is significantly worse (Holm-corrected at {record['alpha']:g})."
        )
    named = ", ".join(f"{c['rule']} ({c['rows']:,} rows)" for c in cohorts[:VERDICT_COHORTS])
    more = len(cohorts) - VERDICT_COHORTS
    return (
        f"{said} B is worse on {len(cohorts)} cohort{'s' if len(cohorts) > 1 else ''}: {named}"
        + (f" and {more} more." if more > 0 else ".")
    )
