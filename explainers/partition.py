"""SHAP's Partition explainer for image models: Owen values of nested pixel blocks.

It needs no gradients, only the model's predictions, so it runs on any image model.

Two things decide which blocks SHAP refines within its evaluation budget, and both are
made to depend on the image and the seed alone, never on what else runs:
- the batch size (blocks taken from its queue at a time), fixed by the image's size
  rather than by the memory free at the time;
- the order of blocks whose priorities tie exactly (as when hiding a block leaves the
  output unchanged, which a ReLU network often does), which SHAP breaks with
  `np.random.randn()` from numpy's global generator. Its module is given a stand-in for
  numpy (`_NumpyForShap`) whose `random.randn` draws, in the thread explaining an image,
  from that image's own generator; everywhere else it is numpy's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from types import SimpleNamespace
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from whybox.explainers.base import (
    Explainer,
    Explanation,
    Param,
    Progress,
)
from whybox.explainers.seeding import numpy_generator
from whybox.model_zoo import Dataset, Model
from whybox.model_zoo.limits import SAMPLES

SHAP_BATCH_BYTES = 2**28
"""Masked images (SHAP builds them as float64) per batch of SHAP's refinement."""


class PartitionShap(Explainer):
    """SHAP's Partition explainer with its image masker: Owen values over a hierarchy of
    pixel blocks, hidden by blurring. They add up exactly to the output minus the output on
    the fully blurred image, SHAP's base value."""

    name = "partition-shap"
    display_name = "Partition SHAP (blur)"
    summary = (
        "SHAP's Partition explainer: Shapley values of nested pixel blocks, with hidden "
        "blocks blurred; adds up to the prediction minus the blurred image's; needs no "
        "gradients."
    )
    evaluations = Param(
        int,
        500,
        "Model evaluations per image; more, finer blocks.",
        low=10,
        limit=SAMPLES,
    )
    blur = Param(
        float,
        0.0,
        "Gaussian blur radius in pixels for hidden blocks; 0 picks a tenth of the "
        "shorter image side.",
        low=0.0,
    )
    modalities = ("image",)
    additive = True

    def _explain(
        self,
        *,
        model: Model,
        dataset: Dataset,
        X: np.ndarray,
        targets: np.ndarray,
        output_space: str,
        device: str,
        progress: Progress,
    ) -> Explanation:
        import shap

        values = np.empty(X.shape, dtype=np.float32)
        base_values = np.empty(len(X))
        for i, (image, target) in enumerate(zip(X, targets, strict=True)):
            hwc = np.ascontiguousarray(image.transpose(1, 2, 0), dtype=np.float64)
            masker = shap.maskers.Image(self._blurred(hwc), hwc.shape)
            explainer = shap.PartitionExplainer(_output(model, output_space, int(target)), masker)
            with _tie_breaks(numpy_generator(self.seed, image)):
                result = explainer(
                    hwc[None],
                    max_evals=self.evaluations,
                    batch_size=max(1, SHAP_BATCH_BYTES // hwc.nbytes),
                    silent=True,
                )
            values[i] = np.asarray(result.values[0]).reshape(hwc.shape).transpose(2, 0, 1)
            base_values[i] = np.asarray(result.base_values).reshape(-1)[0]
            progress(i + 1, len(X))
        return self.new_explanation(model, X, targets, output_space, values, base_values)

    def _blurred(self, hwc: np.ndarray) -> np.ndarray:
        radius = self.blur or max(1.0, min(hwc.shape[:2]) / 10)
        pixels = np.clip(hwc * 255, 0, 255).round().astype(np.uint8)
        image = Image.fromarray(pixels[..., 0] if hwc.shape[2] == 1 else pixels)
        blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float64)
        return blurred.reshape(hwc.shape) / 255


def _output(model: Model, output_space: str, index: int) -> Callable[[np.ndarray], np.ndarray]:
    """Output `index` of the model as SHAP calls it: (n, H, W, C) numpy images in."""

    def predict(hwc: np.ndarray) -> np.ndarray:
        nchw = np.ascontiguousarray(hwc.transpose(0, 3, 1, 2), dtype=np.float32)
        return model.predict(nchw, output_space)[:, index]

    return predict


_TIE_BREAKS: ContextVar[np.random.Generator | None] = ContextVar(
    "whybox_partition_tie_breaks", default=None
)


class _NumpyForShap:
    """numpy as SHAP's Partition explainer module sees it: numpy itself, except
    `random`, which in a thread inside `_tie_breaks` draws from that thread's generator."""

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @property
    def random(self) -> Any:
        generator = _TIE_BREAKS.get()
        if generator is None:
            return np.random
        return SimpleNamespace(randn=lambda *shape: generator.standard_normal(shape or None))


@cache
def _install_numpy_for_shap() -> None:
    from shap.explainers import _partition

    if getattr(_partition, "np", None) is np:
        _partition.np = _NumpyForShap()


@contextmanager
def _tie_breaks(generator: np.random.Generator) -> Iterator[None]:
    """SHAP's Partition explainer breaks ties from `generator` in this thread."""
    _install_numpy_for_shap()
    token = _TIE_BREAKS.set(generator)
    try:
        yield
    finally:
        _TIE_BREAKS.reset(token)
