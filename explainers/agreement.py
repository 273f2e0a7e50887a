"""How far two explanations of the same rows agree: rank correlation, top-k overlap, signs.

Every measure works on each row's attributions flattened, so tabular rows (features) and
image maps (C, H, W) are handled alike. Rankings use |attribution|: two methods agree when
they find the same inputs important, whatever scale or output space they report in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

from whybox.explainers.base import Explanation
from whybox.model_zoo import WhyboxError


def _flat(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(len(values), -1) if values.ndim > 1 else values.reshape(1, -1)


def _same_shape(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _flat(a), _flat(b)
    if a.shape != b.shape:
        raise ValueError(f"attributions differ in shape: {a.shape} and {b.shape}")
    return a, b


def rank_agreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row Spearman correlation of |a| and |b| (rows, ...); 0 where a row is constant."""
    a, b = _same_shape(a, b)
    ranks_a = rankdata(np.abs(a), axis=1)
    ranks_b = rankdata(np.abs(b), axis=1)
    ranks_a -= ranks_a.mean(axis=1, keepdims=True)
    ranks_b -= ranks_b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((ranks_a**2).sum(axis=1) * (ranks_b**2).sum(axis=1))
    numerator = (ranks_a * ranks_b).sum(axis=1)
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, np.clip(numerator / safe, -1.0, 1.0), 0.0)


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k largest |values|; ties go to the earlier index."""
    return np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]


def _check_k(k: int, n_features: int) -> int:
    if int(k) < 1:
        raise WhyboxError(f"k must be at least 1, got {k}")
    return min(int(k), n_features)


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Per row, the share of the k largest |a| that are also among the k largest |b|.

    k larger than the number of features is taken as all of them; ties in |value| go to
    the earlier feature.
    """
    a, b = _same_shape(a, b)
    k = _check_k(k, a.shape[1])
    top_a, top_b = _top_k(a, k), _top_k(b, k)
    in_a = np.zeros(a.shape, dtype=bool)
    in_b = np.zeros(b.shape, dtype=bool)
    np.put_along_axis(in_a, top_a, True, axis=1)
    np.put_along_axis(in_b, top_b, True, axis=1)
    return (in_a & in_b).sum(axis=1) / k


def check_same_rows(a: Explanation, b: Explanation) -> None:
    """Raise `WhyboxError` unless `a` and `b` explain the same rows, targets and input shape."""
    if a.values.shape != b.values.shape:
        raise WhyboxError(
            f"the explanations differ in shape ({a.method}: {a.values.shape}, "
            f"{b.method}: {b.values.shape}); explain the same rows of the same data with both"
        )
    if not np.array_equal(np.asarray(a.rows), np.asarray(b.rows)):
        raise WhyboxError(
            f"{a.method} and {b.method} explain different rows; explain the same rows with both"
        )
    if not np.array_equal(np.asarray(a.target), np.asarray(b.target)):
        raise WhyboxError(
            f"{a.method} and {b.method} explain different target classes; choose the same target"
        )


def agreement(a: Explanation, b: Explanation, k: int = 5) -> dict[str, Any]:
    """How far two explanations of the same rows agree, as a JSON-ready dict.

    `sign_agreement` is the share, over all rows, of the features in the union of the two
    top-k sets whose attributions have the same sign (None where either method gives
    magnitudes only).
    """
    check_same_rows(a, b)
    values_a, values_b = _flat(a.values), _flat(b.values)
    k = _check_k(k, values_a.shape[1])
    correlations = rank_agreement(values_a, values_b)
    overlaps = top_k_overlap(values_a, values_b, k)
    sign_agreement = None
    if a.signed and b.signed:
        union = np.zeros(values_a.shape, dtype=bool)
        np.put_along_axis(union, _top_k(values_a, k), True, axis=1)
        np.put_along_axis(union, _top_k(values_b, k), True, axis=1)
        same_sign = np.sign(values_a) == np.sign(values_b)
        sign_agreement = float((same_sign & union).sum() / union.sum())
    return {
        "rows": len(values_a),
        "k": k,
        "mean_rank_correlation": float(correlations.mean()),
        "mean_top_k_overlap": float(overlaps.mean()),
        "per_row_rank_correlation": correlations.tolist(),
        "per_row_top_k_overlap": overlaps.tolist(),
        "sign_agreement": sign_agreement,
    }
