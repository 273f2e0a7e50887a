"""How well a model does on labelled data: accuracy and AUC, or RMSE and R²."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as sk

from whybox.model_zoo.data import Dataset
from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.model import Model


def class_indices(model: Model, labels: pd.Series) -> np.ndarray:
    """Labels as output-column indices, matched to the class names as text."""
    names = [str(c) for c in model.output_names]
    text = labels.astype(str).to_numpy()
    unknown = sorted(set(text) - set(names))
    if unknown:
        raise WhyboxError(
            f"the label column has values {', '.join(map(repr, unknown[:5]))} that are not "
            f"among the model's classes ({', '.join(names)})"
        )
    return np.array([names.index(t) for t in text])


def score_space(model: Model) -> str:
    """The output space performance and the predictions' histogram are read in."""
    return "probability" if "probability" in model.output_spaces else model.default_output_space


def performance(model: Model, data: Dataset, scores: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy and AUC (one-vs-rest for several classes) or RMSE and R² on the labels.

    `scores` may pass `model.predict(data.values, score_space(model))` when already made.
    """
    if data.labels is None:
        raise WhyboxError("the data has no label column; name one to see performance")
    space = score_space(model)
    if scores is None:
        scores = model.predict(data.values, space)
    return metrics(model.task, truth(model, data.labels), scores, space)


def truth(model: Model, labels: pd.Series) -> np.ndarray:
    """The labels as `metrics` reads them: values for a regressor, else output columns."""
    if model.task == "regression":
        return labels.to_numpy(dtype=np.float64)
    return class_indices(model, labels)


def losses(task: str, truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each row's loss: 0/1 error for a classifier, absolute error for a regressor
    (`truth` and `scores` as `metrics` takes them)."""
    if task == "regression":
        return np.abs(scores[:, 0] - truth)
    return (scores.argmax(axis=1) != truth).astype(np.float64)


def metrics(
    task: str,
    truth: np.ndarray,
    scores: np.ndarray,
    space: str,
    weights: np.ndarray | None = None,
) -> dict[str, float]:
    """`performance` on arrays: `truth` holds values (regression) or output-column indices,
    `scores` the model's (rows, outputs) predictions in `space`. `weights` counts each row
    (a bootstrap resample as the times each row is drawn), so resampling copies nothing."""
    weights = np.ones(len(truth)) if weights is None else np.asarray(weights, dtype=np.float64)
    rows = int(round(weights.sum()))
    if task == "regression":
        predicted = scores[:, 0]
        return {
            "rows": rows,
            "rmse": float(np.sqrt(np.average((truth - predicted) ** 2, weights=weights))),
            "r2": float(sk.r2_score(truth, predicted, sample_weight=weights)),
        }
    correct = scores.argmax(axis=1) == truth
    result = {"rows": rows, "accuracy": float(np.average(correct, weights=weights))}
    present = np.bincount(truth, weights=weights, minlength=scores.shape[1]) > 0
    if space == "probability" and present.all():
        result["auc"] = float(
            binary_auc(truth, scores[:, 1], weights)
            if scores.shape[1] == 2
            else sk.roc_auc_score(truth, scores, multi_class="ovr", sample_weight=weights)
        )
    return result


def binary_auc(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The AUC of `scores` for 0/1 `truth` (rows counted `weights` times), as the
    Mann-Whitney statistic with ties counted a half: roc_auc_score's value in one sort and
    two counts, for the many calls of a bootstrap."""
    positive = np.asarray(truth) == 1
    weights = np.ones(len(positive)) if weights is None else weights
    _, groups = np.unique(scores, return_inverse=True)
    pos = np.bincount(groups, weights=weights * positive)
    neg = np.bincount(groups, weights=weights * ~positive, minlength=len(pos))
    below = np.cumsum(neg) - neg  # negatives scored below each distinct score
    return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))
