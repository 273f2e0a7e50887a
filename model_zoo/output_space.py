"""Output spaces: what a model's raw output means, the spaces it can be read in, and the one
mapping between them.

`map_outputs` is written once, over a handful of array operations that numpy and torch
each supply: numpy for the predictions of tree, scikit-learn and ONNX Runtime models (which
then never import torch), torch for networks, where the mapping must stay differentiable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from whybox.model_zoo.lazy import LazyModule

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

OUTPUT_SPACES = ("probability", "margin", "value")
# What a model's raw output means, so it can be mapped to every output space.
MODULE_OUTPUTS = ("logit", "logits", "probability", "value")


def output_spaces_for(module_output: str) -> tuple[str, ...]:
    """The output spaces a raw output of meaning `module_output` can be read in."""
    return {
        "logit": ("probability", "margin"),
        "logits": ("probability", "margin"),
        "probability": ("probability",),
        "value": ("value",),
    }[module_output]


def class_count(module_output: str, width: int) -> int:
    """How many classes an output of `width` columns and meaning `module_output` stands for."""
    return 2 if module_output == "logit" or width == 1 else width


@dataclass(frozen=True)
class _Ops:
    """The array operations the mapping needs, from one library."""

    columns: Callable[[Any], Any]  # raw outputs as (rows, outputs)
    stack: Callable[[Sequence[Any]], Any]  # side by side, as columns
    sigmoid: Callable[[Any], Any]
    softmax: Callable[[Any], Any]  # along each row


def _numpy_softmax(z: np.ndarray) -> np.ndarray:
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


_NUMPY = _Ops(
    columns=lambda raw: np.asarray(raw, dtype=np.float64).reshape(len(raw), -1),
    stack=np.hstack,
    sigmoid=lambda z: np.exp(-np.logaddexp(0.0, -z)),  # a sigmoid that cannot overflow
    softmax=_numpy_softmax,
)
_TORCH = _Ops(
    columns=lambda raw: raw.reshape(raw.shape[0], -1),
    stack=lambda parts: torch.cat(list(parts), dim=1),
    sigmoid=lambda z: torch.sigmoid(z),
    softmax=lambda z: torch.softmax(z, dim=1),
)


def map_outputs(raw: Any, module_output: str, space: str) -> Any:
    """Raw model outputs of meaning `module_output` (a MODULE_OUTPUTS value) in `space`.

    A torch tensor is mapped with torch (differentiably, on its device), anything else
    with numpy as float64. The result is (rows, outputs): binary outputs become two
    columns, one per class, so a class index always selects its column: margin (-z, z),
    probability (1 - p, p).
    """
    ops = _TORCH if _is_tensor(raw) else _NUMPY
    raw = ops.columns(raw)
    if module_output == "value":
        return raw
    if module_output == "logit":
        if space == "margin":
            return ops.stack([-raw, raw])
        p = ops.sigmoid(raw)
        return ops.stack([1 - p, p])
    if module_output == "logits":
        return raw if space == "margin" else ops.softmax(raw)
    # probability
    return ops.stack([1 - raw, raw]) if raw.shape[1] == 1 else raw


def _is_tensor(raw: Any) -> bool:
    """Whether `raw` is a torch tensor, without importing torch where nothing has."""
    return "torch" in sys.modules and isinstance(raw, sys.modules["torch"].Tensor)
