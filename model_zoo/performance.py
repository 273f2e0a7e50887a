"""How well a model does on labelled data: accuracy and AUC, or RMSE and R²."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics

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
    if model.task == "regression":
        truth = data.labels.to_numpy(dtype=np.float64)
        predicted = scores[:, 0]
        return {
            "rows": len(truth),
            "rmse": float(np.sqrt(metrics.mean_squared_error(truth, predicted))),
            "r2": float(metrics.r2_score(truth, predicted)),
        }
    truth = class_indices(model, data.labels)
    result = {"rows": len(truth), "accuracy": float((scores.argmax(axis=1) == truth).mean())}
    if space == "probability" and len(np.unique(truth)) == scores.shape[1]:
        result["auc"] = float(
            metrics.roc_auc_score(truth, scores[:, 1])
            if scores.shape[1] == 2
            else metrics.roc_auc_score(truth, scores, multi_class="ovr")
        )
    return result
