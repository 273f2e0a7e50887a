"""Exact Shapley values: tree SHAP through the libraries' native paths, and all 2^d coalitions."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from whybox.explainers.base import (
    BACKGROUND,
    Explainer,
    Explanation,
    Param,
    Progress,
    Support,
)
from whybox.explainers.masking import coalition_values
from whybox.model_zoo import Dataset, Model
from whybox.model_zoo.categories import decode
from whybox.model_zoo.limits import COALITIONS
from whybox.model_zoo.model import resolve_device

TREE_CHUNK_ROWS = 65_536
"""Rows per native-contribution call: memory stays bounded however many rows there are."""
MAX_COST = Param(
    int,
    2**23,
    "Most model evaluations per explained row (2^features x background) "
    "exact-shapley may spend before it refuses.",
    low=1,
    high=2**34,
)


def _class_columns(contributions: np.ndarray, n_classes: int) -> np.ndarray:
    """(rows, features+1) for a binary model's positive class -> (rows, 2, features+1)."""
    if contributions.ndim == 2 and n_classes == 2:
        return np.stack([-contributions, contributions], axis=1)
    if contributions.ndim == 2:
        return contributions[:, None, :]
    return contributions


def _xgboost_contributions(booster: Any, X: np.ndarray, device: str) -> np.ndarray:
    import xgboost

    booster.set_param({"device": device, "nthread": 0})
    try:
        # The booster's feature types make categorical columns' codes categories.
        matrix = xgboost.DMatrix(
            X,
            missing=np.nan,
            feature_names=booster.feature_names,
            feature_types=booster.feature_types,
        )
        return booster.predict(matrix, pred_contribs=True)
    finally:  # predictions stay on the CPU, where their rows are
        booster.set_param({"device": "cpu"})


def _lightgbm_contributions(booster: Any, X: np.ndarray, n_outputs: int) -> np.ndarray:
    flat = booster.predict(X, pred_contrib=True)
    if n_outputs > 2:
        return flat.reshape(len(X), n_outputs, -1)
    return flat


def _sklearn_contributions(estimator: Any, X: np.ndarray) -> np.ndarray:
    import shap

    explainer = shap.TreeExplainer(estimator)
    values = np.asarray(explainer.shap_values(X, check_additivity=False))
    base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    if values.ndim == 3:  # (rows, features, outputs) -> (rows, outputs, features)
        values = values.transpose(0, 2, 1)
        return np.concatenate(
            [values, np.broadcast_to(base[None, :, None], (len(X), len(base), 1))], axis=2
        )
    return np.concatenate([values, np.full((len(X), 1), base[0])], axis=1)


def _pipeline_contributions(model: Model, X: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """A pipeline's trees explained on the columns its steps make, summed per input column:
    a sum of contributions adds up as they do, so the values stay exact and additive."""
    encoded = model.native[:-1].transform(decode(X, model.feature_names, model.categories))
    encoded = np.asarray(encoded.toarray() if hasattr(encoded, "toarray") else encoded, float)
    raw = _sklearn_contributions(model.native[-1], encoded)
    into = np.zeros((len(sources) + 1, model.n_features + 1))
    into[np.arange(len(sources)), sources] = 1.0
    into[-1, -1] = 1.0  # the base value
    return raw @ into


def _is_pipeline(model: Model) -> bool:
    """Whether the model is a scikit-learn pipeline (told without importing scikit-learn)."""
    kind = type(model.native)
    return kind.__name__ == "Pipeline" and kind.__module__.startswith("sklearn.")


def _pipeline_sources(model: Model) -> np.ndarray | None:
    """Where the model is a scikit-learn pipeline: its encoded columns' input columns."""
    from whybox.model_zoo.sklearn_models import encoded_sources

    return encoded_sources(model.native) if _is_pipeline(model) else None


def native_tree_space(model: Model) -> str:
    """The output space in which the model's trees add up: raw leaf sums."""
    if model.task == "regression":
        return "value"
    if model.format == "skops" or model.format in {"pickle", "joblib"}:
        from sklearn.ensemble._forest import ForestClassifier
        from sklearn.tree import BaseDecisionTree

        from whybox.model_zoo.sklearn_models import final_estimator

        if isinstance(final_estimator(model.native), (ForestClassifier, BaseDecisionTree)):
            return "probability"
    return "margin"


class TreeShap(Explainer):
    name = "tree-shap"
    display_name = "Tree SHAP (exact)"
    summary = (
        "Exact Shapley values of tree ensembles via XGBoost, LightGBM or SHAP's tree algorithm."
    )
    additive = True

    def supports(self, model: Model, dataset: Dataset | None = None) -> Support:
        if model.kind != "tree":
            return Support(False, f"needs a tree model, and this is a {model.kind} model")
        if _is_pipeline(model) and _pipeline_sources(model) is None:
            return Support(
                False,
                "the pipeline's steps mix its input columns into the columns its trees "
                "take, so their contributions cannot be given per input column; use "
                "exact-shapley or permutation-shap",
            )
        space = native_tree_space(model)
        if self.output_space not in ("auto", space):
            return Support(
                False,
                f"its exact values are in {space} space; choose that output space, "
                "or exact-shapley / permutation-shap for another",
            )
        return Support(True)

    def _explain(
        self,
        *,
        model: Model,
        X: np.ndarray,
        targets: np.ndarray,
        output_space: str,
        progress: Progress,
        **_: Any,
    ) -> Explanation:
        import lightgbm
        import xgboost

        # XGBoost (a CUDA build) computes contributions on the GPU itself (the model's own
        # predictions, and so `model.device`, stay on the CPU); the others only on the CPU.
        gpu_capable = isinstance(model.native, xgboost.Booster) and xgboost.build_info().get(
            "USE_CUDA", False
        )
        device = resolve_device(self.device) if gpu_capable else "cpu"
        sources = _pipeline_sources(model)
        # Chunks stream into the result: beyond it, memory holds one chunk's contributions.
        values, base_values = np.empty(X.shape), np.empty(len(X))
        for start in range(0, len(X), TREE_CHUNK_ROWS):
            stop = min(start + TREE_CHUNK_ROWS, len(X))
            part = X[start:stop]
            if isinstance(model.native, xgboost.Booster):
                raw = _xgboost_contributions(model.native, part, device)
            elif isinstance(model.native, lightgbm.Booster):
                raw = _lightgbm_contributions(model.native, part, model.n_outputs)
            elif sources is not None:
                raw = _pipeline_contributions(model, part, sources)
            else:
                raw = _sklearn_contributions(model.native, part)
            per_class = _class_columns(raw, model.n_outputs)
            chosen = per_class[np.arange(len(part)), targets[start:stop]]
            values[start:stop], base_values[start:stop] = chosen[:, :-1], chosen[:, -1]
            progress(stop, len(X))
        explanation = self.new_explanation(model, X, targets, output_space, values, base_values)
        explanation.device = device
        return explanation


@lru_cache(maxsize=8)
def shapley_weights(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """All coalitions as masks (2^d, d) and the matrix W (2^d, d) with phi = v @ W (cached:
    do not write to them).

    phi_i = sum over S without i of |S|!(d-|S|-1)!/d! (v(S + i) - v(S)), so v(T) enters
    phi_i with +w(|T|-1) when i is in T and -w(|T|) when it is not.
    """
    d = n_features
    codes = np.arange(2**d, dtype=np.int64)
    masks = ((codes[:, None] >> np.arange(d)) & 1).astype(bool)
    sizes = masks.sum(axis=1)
    weight = np.array(
        [math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d) for k in range(d)]
        + [0.0]
    )
    W = np.where(masks, weight[np.maximum(sizes - 1, 0)][:, None], -weight[sizes][:, None])
    return masks, W


class ExactShapley(Explainer):
    """Interventional Shapley values from every coalition, with no sampling error.

    They are linear in the game, and the game is the mean over background rows b of the
    game with b alone, so each row's values are the mean over b of exact Shapley values of
    a game over the features where the row and b differ (see `differing_features`).
    """

    name = "exact-shapley"
    display_name = "Exact Shapley (all coalitions)"
    summary = "Interventional Shapley values over all 2^d coalitions; exact, up to ~20 features."
    background = BACKGROUND
    max_cost = MAX_COST
    additive = True

    def cost(self, model: Model, dataset: Dataset) -> int:
        """Model evaluations per explained row."""
        return 2**model.n_features * min(self.background, len(dataset))

    def supports(self, model: Model, dataset: Dataset | None = None) -> Support:
        if model.modality != "tabular":
            return Support(False, "works on tabular models only")
        coalitions = Support.within(
            COALITIONS,
            2**model.n_features,
            f"{model.n_features} features make {2**model.n_features:,} coalitions",
            "use permutation-shap or kernel-shap",
        )
        if not coalitions:
            return coalitions
        if dataset is not None and self.cost(model, dataset) > self.max_cost:
            return Support(
                False,
                f"it needs {self.cost(model, dataset):,} model evaluations per row "
                f"(2^{model.n_features} coalitions x background), "
                f"over max_cost = {self.max_cost:,}; "
                "raise max_cost, shrink the background, or use permutation-shap",
            )
        return Support(True)

    def _explain(
        self,
        *,
        model: Model,
        dataset: Dataset,
        X: np.ndarray,
        targets: np.ndarray,
        output_space: str,
        progress: Progress,
        **_: Any,
    ) -> Explanation:
        background = dataset.background(self.background, self.seed)
        differs = differing_features(X, background)
        sizes = differs.sum(axis=2)
        total, done = int((2**sizes).sum()), 0
        values, base_values = np.zeros(X.shape), np.zeros(len(X))
        for size in np.unique(sizes).tolist():
            rows, references = np.nonzero(sizes == size)
            features = np.nonzero(differs[rows, references])[1].reshape(len(rows), size)
            masks, W = shapley_weights(size)
            # Column 0 keeps v(empty coalition), the base value; the others are phi.
            reduced = coalition_values(
                model,
                X[rows],
                masks,
                background[references][:, None, :],
                output_space,
                targets[rows],
                progress=lambda n, _, done=done: progress(done + n, total),
                features=None if size == X.shape[1] else features,
                reduce=np.concatenate([np.eye(len(W), 1), W], axis=1),
            )
            np.add.at(values, (rows[:, None], features), reduced[:, 1:])
            np.add.at(base_values, rows, reduced[:, 0])
            done += len(rows) * 2**size
        n = len(background)
        return self.new_explanation(model, X, targets, output_space, values / n, base_values / n)


def differing_features(X: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(rows, background rows, features): True where the row and the background row differ.

    Only those features change the model's input from one coalition to another, so for
    each pair the game has 2^(differing) distinct coalitions, not 2^features, and the
    features they share are null players with value 0 (SHAP's ExactExplainer saves the
    same evaluations). Missing values (NaN) in both count as equal.
    """
    a, b = X[:, None, :], background[None, :, :]
    return ~((a == b) | (np.isnan(a) & np.isnan(b)))


def exact_model_rows(X: np.ndarray, background: np.ndarray) -> int:
    """Model rows exact-shapley evaluates for rows `X`: 2^(differing features) per pair."""
    return int((2 ** differing_features(X, background).sum(axis=2)).sum())
