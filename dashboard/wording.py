"""Attributions in plain words: the sentences the Local view and the reports show."""

from __future__ import annotations

from dashboard.charts import output_label
from explainers import Explanation


def reasons(explanation: Explanation, position: int, k: int = 4) -> list[str]:
    """The `k` features that pushed this row's output up most, then the `k` that pushed it
    down most, as sentences: "Income = 1200 raised the log-odds of class 'good' by 0.42"."""
    what = output_label(explanation).removeprefix("attribution ").strip("()")
    sentences = []
    for sign, verb in ((1, "raised"), (-1, "lowered")):
        for name, value, attribution in explanation.top_reasons(k, position, sign):
            sentences.append(f"{name} = {value:.4g} {verb} the {what} by {abs(attribution):.3g}")
    return sentences
