"""Would a glass-box model do? An Explainable Boosting Machine (InterpretML's EBM: one
shape function per feature, added up, so every prediction reads off the charts exactly)
trained on the same labelled rows as the black box is judged on, and compared with it.

Both are scored on the same held-out rows (the EBM never sees them; the black box was
trained elsewhere), and their metrics differ with 95 % intervals from paired bootstrap
resamples (`versions.paired_performance`). The EBM "would do" where it is at most
`MARGIN` worse than the model on the main metric (accuracy, or R² for a regressor) at the
interval's low end: a non-inferiority claim, not "no difference seen".

The EBM is fitted with main effects only (no pairwise interactions) and `OUTER_BAGS`
bags: its shape functions are then the whole model, and fitting takes seconds, not
minutes, on a laptop. Rows beyond `MAX_ROWS` are a seeded sample, as the result says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.trust.tree_rules import category_names

MARGIN = 0.01
HELD_OUT = 0.3
MAX_ROWS = 20_000
OUTER_BAGS = 2
MIN_ROWS = 100
MAIN_METRIC = {"classification": "accuracy", "regression": "r2"}


@dataclass(frozen=True)
class Shape:
    """One feature's shape function: its contribution (log-odds of each class for a
    classifier, the value for a regressor) at each bin (`x`: a bin's lower edge, or a
    category's name), and its importance (mean |contribution| over the training rows)."""

    feature: str
    categorical: bool
    x: list[float] | list[str]
    scores: dict[str, list[float]]
    importance: float


@dataclass(frozen=True)
class GlassBox:
    """The EBM beside the model: both models' metrics on the held-out rows, their
    difference (EBM minus model) with intervals, whether the EBM would do, its shapes."""

    metric: str
    performance: dict[str, dict[str, Any]]
    would_do: bool
    shapes: list[Shape]
    trained_rows: int
    held_out_rows: int
    notes: list[str]

    @property
    def verdict(self) -> str:
        main = self.performance[self.metric]
        name = "accuracy" if self.metric == "accuracy" else "R²"
        low, high = main["change_interval"]
        scores = f"the EBM's {name} is {main['b']:.3f} against the model's {main['a']:.3f}"
        if self.would_do:
            return (
                f"A glass-box model would do: {scores}, at worst {-low:.3f} lower (95 % "
                f"interval), within the {MARGIN} margin."
            )
        if high < 0:
            return f"The model is more accurate than a glass-box model: {scores}."
        return (
            f"Not decided: {scores}, but it may be up to {-low:.3f} lower (95 % interval), "
            f"beyond the {MARGIN} margin; more held-out rows would tell."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "performance": self.performance,
            "would_do": self.would_do,
            "verdict": self.verdict,
            "trained_rows": self.trained_rows,
            "held_out_rows": self.held_out_rows,
            "notes": self.notes,
            "shapes": [vars(s) for s in self.shapes],
        }


def glass_box(
    model: Model,
    data: Dataset,
    seed: int = 0,
    coded: Mapping[str, Mapping[float, str]] | None = None,
) -> GlassBox:
    """An EBM trained on `HELD_OUT`'s complement of `data`'s labelled rows, compared with
    `model` on the rest. `coded` names numeric columns holding category codes."""
    from interpret.glassbox import ExplainableBoostingClassifier, ExplainableBoostingRegressor

    from whybox.model_zoo.performance import score_space, truth
    from whybox.trust.versions import paired_performance

    if data.labels is None:
        raise WhyboxError("a glass-box model needs labels to learn from; name the label column")
    if model.modality != "tabular":
        raise WhyboxError("a glass-box model is for tabular models, not images")
    if len(data) < MIN_ROWS:
        raise WhyboxError(
            f"a glass-box model needs at least {MIN_ROWS} rows; the data has {len(data)}"
        )
    rng = np.random.default_rng(seed)
    labels = truth(model, data.labels)
    order = rng.permutation(len(data))
    cut = int(round(len(data) * (1 - HELD_OUT)))
    train, held_out = np.sort(order[:cut][:MAX_ROWS]), np.sort(order[cut:])
    notes = [
        "Both are scored on rows the EBM did not learn from; where the model learned from "
        "this data, its score here flatters it: compare on data it never saw."
    ]
    if cut > MAX_ROWS:
        notes.append(f"The EBM learned from a seeded sample of {MAX_ROWS:,} of {cut:,} rows.")
    frame, categorical = _frame(data, coded or {})
    settings = {
        "interactions": 0,
        "outer_bags": OUTER_BAGS,
        "random_state": seed,
        "n_jobs": 1,
        "feature_types": ["nominal" if c else "continuous" for c in categorical],
    }
    if model.task == "regression":
        ebm = ExplainableBoostingRegressor(**settings).fit(frame.iloc[train], labels[train])
        glass = ebm.predict(frame.iloc[held_out])[:, None]
    else:
        ebm = ExplainableBoostingClassifier(**settings).fit(frame.iloc[train], labels[train])
        glass = np.zeros((len(held_out), len(model.output_names)))
        glass[:, ebm.classes_] = ebm.predict_proba(frame.iloc[held_out])
    space = score_space(model)
    scores = model.predict(data.values[held_out], space)
    performance = paired_performance(model.task, labels[held_out], scores, glass, space, rng)
    metric = MAIN_METRIC[model.task]
    return GlassBox(
        metric=metric,
        performance=performance,
        would_do=performance[metric]["change_interval"][0] >= -MARGIN,
        shapes=_shapes(ebm, model, categorical),
        trained_rows=len(train),
        held_out_rows=len(held_out),
        notes=notes,
    )


def _frame(
    data: Dataset, coded: Mapping[str, Mapping[float, str]]
) -> tuple[pd.DataFrame, list[bool]]:
    """The features as the EBM takes them: categories by name, numbers as they are."""
    columns, categorical = {}, []
    for name in data.feature_names:
        values = data.frame[name].to_numpy(dtype=np.float64)
        named = name in data.categories or name in coded
        columns[name] = category_names(data, name, values, coded) if named else values
        categorical.append(named)
    return pd.DataFrame(columns), categorical


def _shapes(ebm: Any, model: Model, categorical: list[bool]) -> list[Shape]:
    """Each feature's shape function, most important first."""
    importances = ebm.term_importances()
    if model.task == "regression":
        outputs = ["value"]
    elif len(ebm.classes_) == 2:
        outputs = [str(model.output_names[ebm.classes_[1]])]
    else:
        outputs = [str(model.output_names[c]) for c in ebm.classes_]
    shapes = []
    for term, name in enumerate(ebm.term_names_):
        bins = ebm.bins_[term][0]  # a feature's bins at the main-effect resolution
        # term_scores_ holds [missing, bin..., unseen]: the bins alone are the shape
        scores = np.asarray(ebm.term_scores_[term])[1:-1].reshape(-1, len(outputs))
        if categorical[term]:
            x: list = sorted(bins, key=bins.get)
        else:
            x = [float("-inf"), *map(float, bins)]
        shapes.append(
            Shape(
                feature=name,
                categorical=categorical[term],
                x=x,
                scores={o: scores[:, k].tolist() for k, o in enumerate(outputs)},
                importance=float(importances[term]),
            )
        )
    return sorted(shapes, key=lambda s: -s.importance)
