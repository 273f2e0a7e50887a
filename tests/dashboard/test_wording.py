"""Reasons in words, and user-provided names kept literal inside Streamlit markdown."""

import re

import numpy as np

from whybox.dashboard.reports.wording import plain, reasons
from whybox.explainers import Explanation

HOSTILE = "**x** [click](javascript:alert(1)) <img src=x onerror=alert(1)> $\\pi$ |a|"


def explanation(names: list[str]) -> Explanation:
    return Explanation(
        values=np.array([[0.5, -0.25, 0.0]]),
        base_values=np.array([1.0]),
        data=np.array([[3.0, 40.0, 7.0]]),
        predictions=np.array([1.25]),
        feature_names=names,
        output_names=["bad", "good"],
        target=np.array([1]),
        output_space="margin",
        method="test",
        params={},
        seed=0,
        device="cpu",
    )


def test_reasons_name_the_features_values_direction_and_output_space() -> None:
    assert reasons(explanation(["Income", "Debt", "Age"]), 0) == [
        "Income = 3 raised the log-odds of class 'good' by 0.5",
        "Debt = 40 lowered the log-odds of class 'good' by 0.25",
    ]


def test_user_provided_names_cannot_make_markdown_html_or_latex() -> None:
    escaped = plain(HOSTILE + "\nsecond line")
    assert re.search(r"(?<!\\)[*\[\]<>$|]", escaped) is None  # each one escaped
    assert "\n" not in escaped
    assert escaped.replace("\\", "") == (HOSTILE + " second line").replace("\\", "")
    sentence = reasons(explanation([HOSTILE, "Debt", "Age"]), 0)[0]
    assert sentence.startswith(plain(HOSTILE) + " = 3 raised")
