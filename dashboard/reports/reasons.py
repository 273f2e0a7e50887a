"""Reason codes: the principal reasons for a classification decision, in the institution's words.

The reasons are the features that pushed the prediction toward the unfavourable outcome,
ranked by that push. A reason-text file maps features to the wording the institution uses
and marks the features that may never be given as reasons (protected attributes); those
are flagged instead when they drive a decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from whybox.dashboard.reports.charts import output_label
from whybox.dashboard.reports.values import feature_text, value_text
from whybox.dashboard.reports.wording import sentence
from whybox.explainers import Explanation
from whybox.model_zoo import WhyboxError
from whybox.model_zoo.settings_files import csv_entries, load_yaml, read_bytes, text_file
from whybox.model_zoo.tables import name_list

CSV_COLUMNS = ("feature", "statement", "allowed")
EXPECTED_CSV = "a CSV with a header line feature,statement[,allowed]"
EXPECTED_YAML = "YAML mapping each feature to a statement, or to {statement: ..., allowed: false}"
BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


@dataclass(frozen=True)
class ReasonText:
    """The institution's wording for one feature, and whether it may be given as a reason."""

    statement: str
    allowed: bool = True


@dataclass(frozen=True)
class Reason:
    feature: str
    value: float
    contribution: float
    """Attribution toward the unfavourable outcome: > 0 means adverse."""
    statement: str
    """Plain text (not escaped): the institution's wording, else a generated sentence."""
    shown: str
    """The value as a person reads it (`wording.value_text`): a category's name, 'missing'."""


@dataclass(frozen=True)
class Decision:
    row: int
    predicted_class: str
    favourable: bool
    prediction: float
    """The explained output's value, in the explanation's output space."""
    reasons: list[Reason]
    """The principal reasons, most adverse first: at most k, allowed features only."""
    flagged: list[Reason]
    """Features not allowed as reasons that ranked among the k most adverse."""


def load_reason_texts(path: Path) -> dict[str, ReasonText]:
    """Read a reason-text file: CSV (feature,statement[,allowed]) or YAML (.yaml, .yml)."""
    return parse_reason_texts(read_bytes(path, "reason-text file"), Path(path).name)


def parse_reason_texts(raw: bytes, name: str) -> dict[str, ReasonText]:
    """The reason texts in `raw`, a CSV or YAML file called `name` (e.g. an upload)."""
    suffix = Path(name).suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise WhyboxError(
            f"reason-text file {name}: expected a .csv, .yaml or .yml file, got {suffix!r}"
        )
    expected = EXPECTED_CSV if suffix == ".csv" else EXPECTED_YAML
    text = text_file(raw, f"reason-text file {name}", expected)
    return _read_csv(text, name) if suffix == ".csv" else _read_yaml(text, name)


def _read_csv(text: str, name: str) -> dict[str, ReasonText]:
    what = f"reason-text file {name}"
    texts: dict[str, ReasonText] = {}
    for where, entry in csv_entries(text, what, CSV_COLUMNS, CSV_COLUMNS[:2], EXPECTED_CSV):
        allowed = BOOLEANS.get(entry.get("allowed", "true").lower() or "true")
        if allowed is None:
            raise WhyboxError(
                f"{where}: allowed must be true or false (or yes/no, 1/0), got {entry['allowed']!r}"
            )
        _add(texts, entry["feature"], entry["statement"], allowed, where)
    return texts


def _read_yaml(text: str, name: str) -> dict[str, ReasonText]:
    data = load_yaml(text, f"reason-text file {name}", EXPECTED_YAML)
    if not isinstance(data, dict):
        raise WhyboxError(f"reason-text file {name}: expected a {EXPECTED_YAML}")
    texts: dict[str, ReasonText] = {}
    for key, entry in data.items():
        where = f"reason-text file {name}, key {str(key)!r}"
        fields: dict[str, Any] = entry if isinstance(entry, dict) else {"statement": entry}
        unknown = [str(f) for f in fields if f not in ("statement", "allowed")]
        if unknown:
            raise WhyboxError(
                f"{where}: unknown field {', '.join(unknown)}; expected statement and allowed"
            )
        statement, allowed = fields.get("statement"), fields.get("allowed", True)
        if not isinstance(statement, str):
            raise WhyboxError(f"{where}: the statement must be text, got {statement!r}")
        if not isinstance(allowed, bool):
            raise WhyboxError(f"{where}: allowed must be true or false, got {allowed!r}")
        _add(texts, str(key).strip(), statement.strip(), allowed, where)
    return texts


def _add(texts: dict[str, ReasonText], feature: str, statement: str, allowed: bool, where: str):
    if not feature or not statement:
        raise WhyboxError(f"{where}: the feature and its statement must not be empty")
    if feature in texts:
        raise WhyboxError(f"{where}: feature {feature!r} is given twice")
    texts[feature] = ReasonText(statement, allowed)


def decide(
    explanation: Explanation,
    position: int,
    favourable: str,
    predicted_class: str,
    texts: dict[str, ReasonText] | None = None,
    k: int = 4,
) -> Decision:
    """The decision on row `position` of `explanation` and its principal reasons.

    The explanation must be of the favourable class, or, for a binary classifier, of the
    other class (its attributions then count toward the unfavourable outcome as they are).
    Reasons are given whatever the decision; a report shows them for unfavourable ones.
    """
    names = explanation.output_names
    if explanation.values.ndim != 2 or explanation.output_space == "value" or len(names) < 2:
        raise WhyboxError("reason codes need a classifier's attributions of tabular features")
    if not explanation.signed:
        raise WhyboxError(
            f"{explanation.method} gives magnitudes, not which way a feature pushed the "
            "decision; choose a signed explainer for reason codes"
        )
    for role, name in (("favourable", favourable), ("predicted", predicted_class)):
        if name not in names:
            raise WhyboxError(
                f"the {role} class {name!r} is not one of the model's classes: {name_list(names)}"
            )
    if k < 1:
        raise WhyboxError(f"the number of reasons must be at least 1, got {k}")
    texts = texts or {}
    features = explanation.feature_names
    unknown = sorted(set(texts) - set(features))
    if unknown:
        raise WhyboxError(
            f"the reason texts name features the model does not have: {name_list(unknown)}; "
            f"its features are {name_list(features)}"
        )
    explained = names[int(explanation.target[position])]
    if explained == favourable:
        toward_unfavourable = -1.0
    elif len(names) == 2:
        toward_unfavourable = 1.0
    else:
        raise WhyboxError(
            f"this explanation is of class {explained!r}; reason codes for a decision among "
            f"{len(names)} classes need the favourable class explained (--target {favourable})"
        )

    attributions = explanation.values[position]
    contributions = toward_unfavourable * attributions
    what = output_label(explanation, position)
    adverse = [i for i in np.argsort(-contributions, kind="stable") if contributions[i] > 0]
    reasons: list[Reason] = []
    flagged: list[Reason] = []
    for rank, i in enumerate(adverse):
        text = texts.get(features[i])
        allowed = text is None or text.allowed
        if (allowed and len(reasons) == k) or (not allowed and rank >= k):
            continue
        value = float(explanation.data[position, i])
        shown = value_text(explanation, features[i], value)
        label = feature_text(explanation, features[i])
        statement = text.statement if text else sentence(label, shown, attributions[i], what)
        (reasons if allowed else flagged).append(
            Reason(features[i], value, float(contributions[i]), statement, shown)
        )
    return Decision(
        row=int(explanation.rows[position]),
        predicted_class=predicted_class,
        favourable=predicted_class == favourable,
        prediction=float(explanation.predictions[position]),
        reasons=reasons,
        flagged=flagged,
    )
