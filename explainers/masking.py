"""Coalition values, the inner loop of every model-agnostic Shapley method.

v(S) for a row x is the model's mean output over background rows b with the features in
S taken from x and the rest from b (interventional, as in SHAP). All coalitions of many
rows go through the model in batches on the model's device: on CUDA as large as memory
allows, on CPU sized so that the network's activations stay in the processor's cache
(a small network then runs several times faster per row than in batches of 100,000s).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from whybox.explainers.base import Progress
from whybox.explainers.memory import cuda_free_bytes, module_outputs
from whybox.model_zoo import Model
from whybox.model_zoo.chunks import rows_per_chunk
from whybox.model_zoo.lazy import LazyModule

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

CPU_BATCH_BYTES = 512 * 2**20
"""Memory a batch of model rows may take on CPU (inputs plus a guess at activations)."""
ACTIVATION_WIDTH_GUESS = 256
"""Floats of work per model row beyond its inputs, for sizing batches safely."""
CPU_CACHE_BYTES = 2 * 2**20
"""On CPU, a forward-only batch whose widest activation takes about this much: measured
fastest per row for MLPs 32 to 256 wide on 1 and 2 threads (L2 cache of 1 MiB a core)."""
MIXABLE = 2.0**126
"""Inputs below this magnitude mix by `torch.lerp`: x - r stays within float32's range."""
MIN_CPU_ROWS = 1024
"""Fewer rows per call and torch's per-operation overhead dominates."""


def model_rows_per_batch(model: Model, n_features: int) -> int:
    """How many model rows to evaluate at once: large, but never out of memory."""
    bytes_per_row = 4 * (n_features + ACTIVATION_WIDTH_GUESS)
    budget = CPU_BATCH_BYTES
    if model.device == "cuda":
        budget = int(cuda_free_bytes() * 0.5)
    return max(1024, rows_per_chunk(bytes_per_row, budget))


def forward_rows_per_batch(model: Model, module: torch.nn.Module | None, n_features: int) -> int:
    """Model rows per forward-only call: `model_rows_per_batch`, but on CPU no more than
    keep the widest activation of the network (measured on one row) within the cache."""
    rows = model_rows_per_batch(model, n_features)
    if module is None or model.device == "cuda":
        return rows
    leaves = module_outputs(module, torch.zeros(1, n_features), leaves_only=True)
    # A network run as one opaque module (an ONNX graph) shows no activations: guess.
    sizes = [size for _, _, size in leaves] if len(leaves) > 1 else [4 * ACTIVATION_WIDTH_GUESS]
    widest = max(*sizes, 4 * n_features)
    return min(rows, max(MIN_CPU_ROWS, CPU_CACHE_BYTES // widest))


def coalition_values(
    model: Model,
    X: np.ndarray,
    masks: np.ndarray,
    background: np.ndarray,
    output_space: str,
    targets: np.ndarray,
    progress: Progress | None = None,
    features: np.ndarray | None = None,
    reduce: np.ndarray | None = None,
) -> np.ndarray:
    """v(S) for every row and coalition: (rows, coalitions); or, given `reduce`
    (coalitions, m), v @ reduce: (rows, m), computed batch by batch on the model's device,
    so that only m numbers a row come back and v is never held whole.

    `masks` is boolean, (coalitions, k) shared by all rows or (rows, coalitions, k) per
    row; True takes the feature from the row, False from the background. Mask column j is
    feature j, or where `features` (rows, k) is given, feature `features[row, j]`; the
    features it does not name come from the background. `background` is (n, features)
    shared by all rows or (rows, n, features) per row.
    """
    n_rows, n_features = X.shape
    n_masks = masks.shape[-2]
    n_background = background.shape[-2]
    module = model.torch_module(output_space)
    pairs_per_batch = max(1, forward_rows_per_batch(model, module, n_features) // n_background)
    values = np.zeros((n_rows, n_masks if reduce is None else reduce.shape[1]))
    if module is not None:
        # Inputs whose differences cannot overflow float32 (so finite ones) mix exactly with
        # 0/1 float weights, 4x faster than torch.where on CPU.
        bounded = bool(np.abs(X).max() < MIXABLE and np.abs(background).max() < MIXABLE)
        X, background, targets = (
            torch.as_tensor(a, device=model.device)
            for a in (X.astype(np.float32), background.astype(np.float32), targets)
        )
        # Sent as booleans (a quarter of the bytes), made floats on the device.
        masks = torch.as_tensor(masks).to(model.device)
        masks = masks.to(torch.float32 if bounded else torch.bool)
        if features is not None:
            features = torch.as_tensor(features, device=model.device)
        if reduce is not None:
            reduce = torch.as_tensor(reduce, dtype=torch.float64, device=model.device)
    # Each batch is a block of rows x coalitions: one row and a run of its coalitions, or
    # several whole rows. Slices, not gathers, build it.
    for r0, r1, c0, c1 in blocks(n_rows, n_masks, pairs_per_batch):
        mask = masks[None, c0:c1] if masks.ndim == 2 else masks[r0:r1, c0:c1]
        if features is not None:
            mask = _scatter_columns(mask, features[r0:r1], n_features)
        reference = background[None] if background.ndim == 2 else background[r0:r1]
        batch = _mix(mask[:, :, None, :], X[r0:r1, None, None, :], reference[:, None, :, :])
        shape = (r1 - r0, c1 - c0, n_background, -1)
        if module is not None:
            with torch.inference_mode():
                out = module(batch.reshape(-1, n_features)).reshape(shape)
                index = targets[r0:r1, None, None, None].expand(*shape[:3], 1)
                v = out.gather(3, index).mean(dim=(2, 3)).double()
                v = (v if reduce is None else v @ reduce[c0:c1]).cpu().numpy()
        else:
            out = model.predict(batch.reshape(-1, n_features), output_space).reshape(shape)
            v = out[np.arange(r1 - r0), ..., targets[r0:r1]].mean(axis=2)
            v = v if reduce is None else v @ reduce[c0:c1]
        if reduce is None:
            values[r0:r1, c0:c1] = v
        else:
            values[r0:r1] += v
        if progress is not None:
            progress((r1 - 1) * n_masks + c1, n_rows * n_masks)
    return values


def blocks(n_rows: int, n_masks: int, per_batch: int) -> Iterator[tuple[int, int, int, int]]:
    """(first row, end row, first mask, end mask) of each batch of at most `per_batch`
    (row, mask) pairs, in order: several whole rows, or one row's consecutive masks."""
    if n_masks >= per_batch:
        for row in range(n_rows):
            for c0 in range(0, n_masks, per_batch):
                yield row, row + 1, c0, min(c0 + per_batch, n_masks)
    else:
        step = per_batch // n_masks
        for r0 in range(0, n_rows, step):
            yield r0, min(r0 + step, n_rows), 0, n_masks


def _mix(mask: Any, x: Any, reference: Any) -> Any:
    """Inputs with the features `mask` marks from `x`, the others from `reference`
    (broadcast). A float mask of 0s and 1s needs inputs below `MIXABLE`: torch's lerp
    computes r + 0 (x - r) below a weight of 0.5 and x - (x - r) 0 above, exactly r and x
    while x - r is finite."""
    if isinstance(mask, np.ndarray):
        return np.where(mask, x, reference)
    if mask.dtype == torch.bool:
        return torch.where(mask, x, reference)
    return torch.lerp(reference, x, mask)


def _scatter_columns(mask: Any, columns: Any, n_features: int) -> Any:
    """(rows, coalitions, features) masks, numpy or torch, from `mask` (rows or 1,
    coalitions, k): column j goes to feature `columns[row, j]`; the rest are 0 (False)."""
    shape = (len(columns), mask.shape[1], columns.shape[1])
    if isinstance(mask, np.ndarray):
        full = np.zeros((*shape[:2], n_features), dtype=bool)
        index = np.broadcast_to(columns[:, None, :], shape)
        np.put_along_axis(full, index, np.broadcast_to(mask, shape), axis=2)
        return full
    full = torch.zeros(*shape[:2], n_features, dtype=mask.dtype, device=mask.device)
    return full.scatter_(2, columns[:, None, :].expand(shape), mask.expand(shape))
