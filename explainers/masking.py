"""Coalition values, the inner loop of every model-agnostic Shapley method.

v(S) for a row x is the model's mean output over background rows b with the features in
S taken from x and the rest from b (interventional, as in SHAP). All coalitions of many
rows go through the model in large batches on the model's device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from explainers.base import Progress
from model_zoo import Model
from model_zoo.lazy import LazyModule

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

CPU_BATCH_BYTES = 512 * 2**20
"""Memory a batch of model rows may take on CPU (inputs plus a guess at activations)."""
ACTIVATION_WIDTH_GUESS = 256
"""Floats of work per model row beyond its inputs, for sizing batches safely."""


def model_rows_per_batch(model: Model, n_features: int) -> int:
    """How many model rows to evaluate at once: large, but never out of memory."""
    bytes_per_row = 4 * (n_features + ACTIVATION_WIDTH_GUESS)
    budget = CPU_BATCH_BYTES
    if model.device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        budget = int(free * 0.5)
    return max(1024, budget // bytes_per_row)


def coalition_values(
    model: Model,
    X: np.ndarray,
    masks: np.ndarray,
    background: np.ndarray,
    output_space: str,
    targets: np.ndarray,
    progress: Progress | None = None,
) -> np.ndarray:
    """v(S) for every row and coalition: (rows, coalitions).

    `masks` is boolean, (coalitions, features) shared by all rows or (rows, coalitions,
    features) per row; True takes the feature from the row, False from the background.
    """
    n_rows, n_features = X.shape
    n_masks = masks.shape[-2]
    n_background = len(background)
    module = model.torch_module(output_space)
    pairs_per_batch = max(1, model_rows_per_batch(model, n_features) // n_background)
    total = n_rows * n_masks
    values = np.empty(total)
    if module is not None:
        dev = model.device
        X, background, masks, targets = (
            torch.as_tensor(a, device=dev)
            for a in (X.astype(np.float32), background.astype(np.float32), masks, targets)
        )
    # Walk (row, coalition) pairs in flat order, as many per model call as memory allows.
    for start in range(0, total, pairs_per_batch):
        flat = np.arange(start, min(start + pairs_per_batch, total))
        rows, coalitions = flat // n_masks, flat % n_masks
        if module is not None:
            rows_t, coalitions_t = (
                torch.as_tensor(rows, device=dev),
                torch.as_tensor(coalitions, device=dev),
            )
            mask = masks[rows_t, coalitions_t] if masks.ndim == 3 else masks[coalitions_t]
            batch = torch.where(mask[:, None, :], X[rows_t][:, None, :], background[None, :, :])
            with torch.inference_mode():
                out = module(batch.reshape(-1, n_features)).reshape(len(flat), n_background, -1)
                chosen = out.gather(2, targets[rows_t][:, None, None].expand(-1, n_background, 1))
                values[flat] = chosen.mean(dim=(1, 2)).double().cpu().numpy()
        else:
            mask = masks[rows, coalitions] if masks.ndim == 3 else masks[coalitions]
            batch = np.where(mask[:, None, :], X[rows][:, None, :], background[None, :, :])
            out = model.predict(batch.reshape(-1, n_features), output_space).reshape(
                len(flat), n_background, -1
            )
            values[flat] = out[np.arange(len(flat)), :, targets[rows]].mean(axis=1)
        if progress is not None:
            progress(int(flat[-1]) + 1, total)
    return values.reshape(n_rows, n_masks)
