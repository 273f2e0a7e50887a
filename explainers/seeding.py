"""Random generators keyed by the explainer's seed and the row explained.

Every seeded method draws from generators made here for each row, and never from numpy's
or torch's process-wide state: a row then gets the same values alone or in any batch, in
any position, and whatever else runs in the process (the dashboard explains for several
sessions in threads of one process; the job runner spreads rows over workers).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from whybox.model_zoo.lazy import LazyModule

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")


def row_entropy(seed: int, row: np.ndarray) -> np.random.SeedSequence:
    """The seed and a hash of the row's values (not its position, nor its dtype) as the
    entropy that both generators below are made from."""
    digest = hashlib.blake2b(np.ascontiguousarray(row, dtype=np.float64).tobytes(), digest_size=16)
    words = np.frombuffer(digest.digest(), dtype=np.uint32)
    return np.random.SeedSequence([seed, *words.tolist()])


def numpy_generator(seed: int, row: np.ndarray) -> np.random.Generator:
    """A numpy generator for `row` under `seed`."""
    return np.random.default_rng(row_entropy(seed, row))


def torch_generator(seed: int, row: np.ndarray, device: str | torch.device) -> torch.Generator:
    """A torch generator for `row` under `seed` on `device`, where the draws are used: a
    CUDA generator for a model on CUDA, so draws need no copy from the CPU."""
    (key,) = row_entropy(seed, row).generate_state(1, np.uint64)
    return torch.Generator(device=device).manual_seed(int(key))
