"""Perturbation methods: the output when inputs are replaced by a reference, no gradients.

Feature ablation sets one feature at a time to its background mean; LIME fits a local
linear model to random on/off patterns of features; Occlusion covers square patches of an
image. Batching, memory and bookkeeping are `CaptumExplainer`'s; LIME samples one row at
a time from the row's own generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from whybox.explainers.base import Param
from whybox.explainers.captum_base import (
    BASELINE,
    MEAN_BACKGROUND,
    CaptumExplainer,
    SampledCaptumExplainer,
)
from whybox.model_zoo import Model
from whybox.model_zoo.lazy import LazyModule
from whybox.model_zoo.limits import SAMPLES

if TYPE_CHECKING:
    import torch
    from captum import attr as captum
else:
    torch = LazyModule("torch")
    captum = LazyModule("captum.attr")

LIME_KERNEL_WIDTH = 0.75
"""LIME's tabular kernel exp(-D^2 / 2w^2), w = 0.75 sqrt(d), with D^2 the count of features
switched off; here both are divided by d."""


class FeatureAblation(CaptumExplainer):
    name = "feature-ablation"
    display_name = "Feature ablation"
    summary = (
        "How much the output drops when each feature alone is set to its background mean; "
        "easy to explain to anyone, but blind to interactions."
    )
    background = MEAN_BACKGROUND
    modalities = ("tabular",)
    captum_class = "FeatureAblation"

    def _evals_per_row(self, model: Model) -> int:
        return model.n_features + 1

    def _attribute(
        self,
        method: Any,
        inputs: torch.Tensor,
        reference: torch.Tensor | None,
        targets: torch.Tensor,
        budget: int,
    ) -> torch.Tensor:
        per_eval = max(1, min(inputs.shape[1], budget // len(inputs)))
        return method.attribute(
            inputs, baselines=reference, target=targets, perturbations_per_eval=per_eval
        )


class Lime(SampledCaptumExplainer):
    """LIME: a weighted least-squares fit of the output on which features are switched on.

    Switched-off features take their background mean. Samples are weighted by the share
    of features switched off (LIME's tabular kernel), not by distances in feature units,
    so the result does not depend on the features' scales; the fit is unregularised so a
    linear model is recovered exactly.
    """

    name = "lime"
    display_name = "LIME"
    summary = (
        "A local linear model fitted to the outputs with random features set to their "
        "background mean; an intuitive surrogate, sampled and not additive."
    )
    background = MEAN_BACKGROUND
    samples = Param(
        int,
        500,
        "Perturbed copies of each row the local model is fitted to; more samples, "
        "steadier values, slower (Captum draws them one at a time).",
        low=20,
        limit=SAMPLES,
    )
    modalities = ("tabular",)
    captum_class = "Lime"

    def _attribute(
        self,
        method: Any,
        inputs: torch.Tensor,
        reference: torch.Tensor | None,
        targets: torch.Tensor,
        budget: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        lime = captum.Lime(
            method,
            interpretable_model=_WeightedLinearFit(),
            similarity_func=_on_off_kernel,
            perturb_func=_switches(generator),
        )
        return lime.attribute(
            inputs,
            baselines=reference,
            target=targets,
            n_samples=self.samples,
            perturbations_per_eval=min(self.samples, budget),
        )


class Occlusion(CaptumExplainer):
    name = "occlusion"
    display_name = "Occlusion"
    summary = (
        "How much the output drops when a square patch is covered (black by default), "
        "averaged over the patches covering each pixel; needs no gradients, so it also runs "
        "on ONNX graphs that cannot be converted."
    )
    background = MEAN_BACKGROUND
    baseline = BASELINE
    window = Param(
        int,
        0,
        "Side of the square patch in pixels; 0 picks an eighth of the shorter image side "
        "(at least 3).",
        low=0,
        high=4096,
    )
    stride = Param(int, 0, "Patch step in pixels; 0 picks half the window.", low=0)
    modalities = ("image",)
    needs_gradients = False
    reference = "mean"

    def _forward(self, model: Model, output_space: str) -> Any:
        module = super()._forward(model, output_space)
        return module if module is not None else _NumpyForward(model, output_space)

    def _method(self, model: Model, output_space: str) -> Any:
        return captum.Occlusion(self._forward(model, output_space))

    def _geometry(self, shape: tuple[int, ...]) -> tuple[int, int]:
        window = self.window or max(3, min(shape[-2:]) // 8)
        window = min(window, *shape[-2:])
        return window, self.stride or max(1, window // 2)

    def _evals_per_row(self, model: Model) -> int:
        return 1

    def _attribute(
        self,
        method: Any,
        inputs: torch.Tensor,
        reference: torch.Tensor | None,
        targets: torch.Tensor,
        budget: int,
    ) -> torch.Tensor:
        window, stride = self._geometry(tuple(inputs.shape))
        channels = inputs.shape[1]
        with torch.no_grad():
            return method.attribute(
                inputs.detach(),
                sliding_window_shapes=(channels, window, window),
                strides=(channels, stride, stride),
                baselines=reference,
                target=targets,
                perturbations_per_eval=max(1, budget // len(inputs)),
            )

    def _notes(self, gap: float, spread: float) -> list[str]:
        return [
            "Occlusion values are output drops when patches are covered, shared out over the "
            "patch's pixels; they do not add up to the prediction."
        ]


class _NumpyForward:
    """A model's predictions as a forward function of tensors, for a network that cannot
    run as torch (an ONNX graph that did not convert): Occlusion needs no gradients."""

    def __init__(self, model: Model, output_space: str) -> None:
        self.model, self.output_space = model, output_space

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = self.model.predict(images.detach().cpu().numpy(), self.output_space)
        return torch.as_tensor(out, dtype=torch.float32, device=images.device)


def _on_off_kernel(original: Any, perturbed: Any, interpretable: torch.Tensor, **_: Any) -> float:
    """LIME's exponential kernel on the share of features switched off."""
    off = 1.0 - float(interpretable.float().mean())
    return math.exp(-off / (2 * LIME_KERNEL_WIDTH**2))


def _switches(generator: torch.Generator) -> Callable[..., torch.Tensor]:
    """LIME's sampler: every feature switched on or off at even odds, as Captum's default
    draws them, but from the row's `generator` instead of torch's global one."""

    def draw(original: torch.Tensor, num_interp_features: int, **_: Any) -> torch.Tensor:
        odds = torch.full((1, num_interp_features), 0.5, device=generator.device)
        return torch.bernoulli(odds, generator=generator).long()

    return draw


class _WeightedLinearFit:
    """LIME's interpretable model: scikit-learn's weighted least squares with an intercept,
    as Captum's SkLearnLinearRegression fits it, on the samples as Captum hands them over
    (float32). Captum's own linear models draw from torch's global generator (they
    initialise an nn.Linear only to overwrite its weights, and iterate the DataLoader,
    which draws a seed); this one reads the samples straight from the DataLoader's data."""

    def fit(self, train_data: Any, **_: Any) -> None:
        from sklearn.linear_model import LinearRegression

        inputs, outputs, weights = (t.cpu().numpy() for t in train_data.dataset.tensors)
        fitted = LinearRegression().fit(inputs, outputs, sample_weight=weights)
        self.coefficients = torch.as_tensor(fitted.coef_, dtype=torch.float32).reshape(1, -1)

    def representation(self) -> torch.Tensor:
        return self.coefficients
