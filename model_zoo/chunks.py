"""Rows in chunks of bounded bytes, so that evaluating a model on many rows never holds more
than one budget of input at once, whatever the rows are (table rows, images)."""

from __future__ import annotations

from collections.abc import Iterator

PREDICT_BATCH_BYTES = 64 * 2**20
"""Input bytes of one model call in `Model.predict`: large batches, bounded memory. A
model's own predict (XGBoost's, ONNX Runtime's, a network's) may copy, or widen into
activations, all the rows it is given at once, so the budget is on the input."""


def rows_per_chunk(row_nbytes: int, budget_bytes: int = PREDICT_BATCH_BYTES) -> int:
    """How many rows of `row_nbytes` bytes each fit in `budget_bytes`: at least one."""
    return max(1, budget_bytes // max(1, row_nbytes))


def chunk_slices(n_rows: int, rows: int) -> Iterator[slice]:
    """Consecutive slices of at most `rows` rows covering `n_rows` rows (none for no rows)."""
    for start in range(0, n_rows, rows):
        yield slice(start, min(start + rows, n_rows))
