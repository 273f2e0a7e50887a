"""Gradient methods for models with a differentiable torch module, tabular or image.

Integrated Gradients, Saliency and DeepLIFT are deterministic; GradientSHAP and SmoothGrad
sample, one row at a time, from the row's own generator (see `CaptumExplainer`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from whybox.explainers.base import BACKGROUND, Param, Support
from whybox.explainers.captum_base import (
    BASELINE,
    MEAN_BACKGROUND,
    CaptumExplainer,
    SampledCaptumExplainer,
    _summing,
)
from whybox.model_zoo import Dataset, Model
from whybox.model_zoo.lazy import LazyModule
from whybox.model_zoo.limits import SAMPLES, STEPS

if TYPE_CHECKING:
    import torch
    from captum import attr as captum
else:
    torch = LazyModule("torch")
    captum = LazyModule("captum.attr")

IMAGE_STEPS_PER_BATCH = 16
"""Integrated Gradients on images: path points per image in each batch the network sees."""
HEAD_PANEL_WIDTH = 4.0
"""Margin units per quadrature panel when averaging the gradient of sigmoid/softmax."""
HEAD_PANEL_NODES = 16
"""Gauss-Legendre nodes per panel: near machine precision on a 4-unit panel."""
HEAD_MAX_PANELS = 1024
"""Beyond 4096 margin units the sigmoid is flat; any gap left shows in the record."""
HEAD_BATCH_NUMBERS = 2**22
"""Path points times margins per batch when averaging the head's gradient (memory bound)."""

MAX_POOLING_OPS = frozenset({"MaxPool", "GlobalMaxPool"})
"""ONNX ops that pick a maximum, which DeepLIFT's rescale rule does not cover."""

SAMPLE_BACKGROUND = replace(
    BACKGROUND,
    help="Reference rows sampled from the data; each sample compares the row with one of "
    "them, and attributions are measured against the model's average output on them.",
)


class IntegratedGradients(CaptumExplainer):
    name = "integrated-gradients"
    display_name = "Integrated Gradients"
    summary = (
        "Gradients integrated along the path from a baseline (tables: the mean background "
        "row; images: a black image) to the input: contributions that add up to the "
        "prediction; the standard choice for neural networks."
    )
    background = MEAN_BACKGROUND
    baseline = BASELINE
    steps = Param(
        int,
        256,
        "Gauss-Legendre points along the path; more steps, smaller completeness gap. "
        "ReLU networks bend along the path, which 64 steps can leave over 1% off; 256 "
        "kept the gap under 1% on our test networks, and every explanation records it.",
        low=4,
        limit=STEPS,
    )
    additive = True
    captum_class = "IntegratedGradients"
    gap_advice = "raise steps to close it."

    def _evals_per_row(self, model: Model) -> int:
        return self.steps

    def _rows_per_call(self, model: Model, budget: int) -> int:
        """For images, many per call: Captum then runs their steps in full batches of
        `budget` (`internal_batch_size`), and the GPU is not left idle between images."""
        if model.modality == "image":
            return max(1, budget // IMAGE_STEPS_PER_BATCH)
        return super()._rows_per_call(model, budget)

    def _attribute(
        self,
        method: Any,
        inputs: torch.Tensor,
        reference: torch.Tensor | None,
        targets: torch.Tensor,
        budget: int,
    ) -> torch.Tensor:
        return method.attribute(
            inputs,
            baselines=reference,
            target=targets,
            n_steps=self.steps,
            method="gausslegendre",
            internal_batch_size=budget,
        )


class Saliency(CaptumExplainer):
    name = "saliency"
    display_name = "Saliency (gradient)"
    summary = (
        "The gradient at the row: how sensitive the output is to each feature right there; "
        "the fastest look, but sensitivities, not contributions."
    )
    reference = "none"
    captum_class = "Saliency"
    one_pass = True

    def _attribute(
        self,
        method: Any,
        inputs: torch.Tensor,
        reference: torch.Tensor | None,
        targets: torch.Tensor | None,
        budget: int,
    ) -> torch.Tensor:
        return method.attribute(inputs, target=targets, abs=False)

    def _notes(self, gap: float, spread: float) -> list[str]:
        return [
            "Saliency values are gradients (output change per unit of each feature at the "
            "row), not contributions: they do not add up to the prediction, and the base "
            "values are zero."
        ]


class DeepLift(CaptumExplainer):
    """DeepLIFT's rescale rule, additive in every output space.

    Captum's DeepLift sees nonlinearities only as `nn.Module` instances, so in probability
    space the sigmoid/softmax that maps margins to probabilities would pass plain
    gradients and break summation-to-delta. There it runs on the margins and crosses
    that last step with `_DeepLiftThroughHead`.
    """

    name = "deeplift"
    display_name = "DeepLIFT"
    summary = (
        "DeepLIFT (rescale rule) against a baseline (tables: the mean background row; images: "
        "a black image): contributions that add up to the prediction from a single backward "
        "pass; fast and additive."
    )
    background = MEAN_BACKGROUND
    baseline = BASELINE
    additive = True
    captum_class = "DeepLift"
    gap_advice = (
        "DeepLIFT's rule is inexact for a softmax inside the network (common in ONNX exports "
        "that output probabilities) and for max-pooling (as in ResNets), and blind to "
        "nonlinearities applied as functions (torch.relu); use integrated-gradients, or the "
        "margin output space where there is one."
    )

    def supports(self, model: Model, dataset: Dataset | None = None) -> Support:
        support = super().supports(model, dataset)
        if support and getattr(model.module, "fixed_batch", None) == 1:
            return Support(
                False,
                "DeepLIFT runs each input beside its baseline, and this graph was exported "
                "for batches of exactly 1; export it with a dynamic batch, or use "
                "integrated-gradients",
            )
        return support

    def additive_for(self, model: Model) -> bool:
        """Not on networks that max-pool, in torch modules or ONNX nodes: Captum's rule for
        them only approximates the difference from the baseline (the gap still shows in
        the notes)."""
        from whybox.model_zoo.onnx_graph import OnnxNode

        pools = (torch.nn.MaxPool1d, torch.nn.MaxPool2d, torch.nn.MaxPool3d)
        return not any(
            isinstance(m, pools) or (isinstance(m, OnnxNode) and m.op in MAX_POOLING_OPS)
            for m in model.module.modules()
        )

    def _method(self, model: Model, output_space: str) -> Any:
        head = PROBABILITY_HEADS.get(model.module_output or "")
        if output_space == "probability" and head is not None:
            return _DeepLiftThroughHead(self._forward(model, "margin"), head)
        return super()._method(model, output_space)

    def _evals_per_row(self, model: Model) -> int:
        return 2

    def _attribute(
        self,
        method: Any,
        inputs: torch.Tensor,
        reference: torch.Tensor | None,
        targets: torch.Tensor,
        budget: int,
    ) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
            return method.attribute(inputs, baselines=reference.expand_as(inputs), target=targets)


class GradientShap(SampledCaptumExplainer):
    name = "gradient-shap"
    display_name = "GradientSHAP"
    summary = (
        "Expected gradients against the background sample: a fast SHAP estimate for neural "
        "networks; sampled, so it adds up to the prediction only on average."
    )
    background = SAMPLE_BACKGROUND
    samples = Param(
        int,
        200,
        "Random (background row, path point) draws per row; more samples, less noise.",
        low=1,
        limit=SAMPLES,
    )
    reference = "sample"

    def _attribute(
        self,
        method: Any,
        inputs: torch.Tensor,
        reference: torch.Tensor | None,
        targets: torch.Tensor,
        budget: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Captum's GradientShap estimator (no input noise): the mean over draws of
        (x - b) * grad f(b + a (x - b)), b from the background, a ~ U(0, 1).

        All draws are made first, from the row's generator, so that evaluating them in
        several batches (as large images need) cannot change them.
        """
        picks = torch.randint(
            len(reference), (self.samples,), generator=generator, device=inputs.device
        )
        alphas = torch.rand(
            self.samples, generator=generator, device=inputs.device, dtype=inputs.dtype
        )
        row = inputs.detach()
        total = torch.zeros_like(row)
        per_call = max(1, budget)
        for start in range(0, self.samples, per_call):
            starts = reference[picks[start : start + per_call]]
            alpha = alphas[start : start + per_call].view(-1, *[1] * (row.ndim - 1))
            gradients = _gradients_at(method, starts + alpha * (row - starts), targets)
            total += ((row - starts) * gradients).sum(dim=0, keepdim=True)
        return total / self.samples

    def _notes(self, gap: float, spread: float) -> list[str]:
        return [
            f"GradientSHAP values add up to prediction minus base value only in expectation; "
            f"here they miss by up to {gap:.3g} ({gap / max(spread, 1e-12):.1%} of the output "
            "spread). More samples shrink the gap."
        ]


class SmoothGrad(SampledCaptumExplainer):
    """SmoothGrad as Captum's NoiseTunnel over absolute Saliency computes it: the mean of
    |grad f| over noisy copies x + e of the image, e ~ N(0, noise^2) in every pixel. The
    noise is drawn here, from the image's own generator, because NoiseTunnel draws from
    torch's global one."""

    name = "smoothgrad"
    display_name = "SmoothGrad"
    summary = (
        "The gradient's magnitude averaged over noisy copies of the image: a sharper, less "
        "speckled saliency map; sensitivities, not contributions."
    )
    samples = Param(int, 32, "Noisy copies per image; more, smoother.", low=1, limit=SAMPLES)
    noise = Param(
        float,
        0.15,
        "Noise standard deviation, as a share of the [0, 1] pixel range.",
        low=0.0,
        high=1.0,
    )
    modalities = ("image",)
    reference = "none"
    signed = False

    def _attribute(
        self,
        method: Any,
        inputs: torch.Tensor,
        reference: torch.Tensor | None,
        targets: torch.Tensor,
        budget: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Each copy's noise is drawn alone, in turn, so the draws are the same however
        many copies a batch holds: torch's normal sampler fills a tensor in blocks, so one
        draw for several copies is not always those copies drawn one after another."""
        image = inputs.detach()
        total = torch.zeros_like(image)
        per_call = max(1, min(self.samples, budget))
        for start in range(0, self.samples, per_call):
            noise = torch.stack(
                [
                    torch.randn(
                        image.shape[1:],
                        generator=generator,
                        device=image.device,
                        dtype=image.dtype,
                    )
                    for _ in range(min(per_call, self.samples - start))
                ]
            )
            gradients = _gradients_at(method, image + self.noise * noise, targets)
            total += gradients.abs().sum(dim=0, keepdim=True)
        return total / self.samples

    def _notes(self, gap: float, spread: float) -> list[str]:
        return [
            "SmoothGrad values are gradient magnitudes averaged over noisy copies, not "
            "contributions: they do not add up to the prediction."
        ]


def _gradients_at(
    forward: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """The gradient of output `target[0]` at each of `points`, of one row's draws (one
    backward pass from their sum)."""
    with torch.enable_grad():
        points = points.detach().requires_grad_()
        outputs = forward(points)[:, target[0]]
        (gradients,) = torch.autograd.grad(outputs.sum(), points)
    return gradients


PROBABILITY_HEADS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "logit": lambda margins: torch.sigmoid(margins),
    "logits": lambda margins: torch.softmax(margins, dim=1),
}
"""Margin-space outputs -> probability-space outputs, by the module's raw output kind
(binary margins are (-z, z), so sigmoid per column gives (1 - p, p))."""


class _DeepLiftThroughHead:
    """DeepLIFT for probabilities that a smooth head (sigmoid, softmax) makes of margins.

    DeepLIFT on each margin column k gives A_k with sum_i A_k[i] = m_k(x) - m_k(b). The head
    passes them on with multipliers w_k, the average gradient of probability c along the
    straight line from m(b) to m(x), so sum_k w_k (m_k(x) - m_k(b)) = p_c(x) - p_c(b)
    exactly. For one sigmoid, w is the secant slope that DeepLIFT's rescale rule uses.
    """

    def __init__(self, margins: torch.nn.Module, head: Callable[[torch.Tensor], torch.Tensor]):
        self.margins, self.head = margins, head
        self.deeplift = _summing(captum.DeepLift(margins))

    def attribute(
        self, inputs: torch.Tensor, baselines: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        with torch.no_grad():
            start, end = self.margins(baselines), self.margins(inputs)
        weights = _average_head_gradient(self.head, start, end, target)
        per_margin = torch.stack(
            [
                self.deeplift.attribute(inputs, baselines=baselines, target=k)
                for k in range(end.shape[1])
            ],
            dim=1,
        )
        return (weights.to(per_margin.dtype).unsqueeze(2) * per_margin).sum(dim=1)


def _average_head_gradient(
    head: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    end: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor:
    """(rows, margins): the gradient of head column `target` averaged from `start` to `end`.

    Composite Gauss-Legendre over panels a few margin units long, since sigmoid and softmax
    bend over about one unit however far apart the margins are.
    """
    start, end = start.double(), end.double()
    length = float((end - start).abs().max())
    panels = min(HEAD_MAX_PANELS, max(1, math.ceil(length / HEAD_PANEL_WIDTH)))
    alphas, weights = (
        torch.as_tensor(a, device=start.device) for a in _composite_gauss_legendre(panels)
    )
    rows_per_batch = max(1, HEAD_BATCH_NUMBERS // (len(alphas) * start.shape[1]))
    averages = []
    for i in range(0, len(start), rows_per_batch):
        s, e, t = (a[i : i + rows_per_batch] for a in (start, end, target))
        with torch.enable_grad():
            path = (s[:, None, :] + alphas[None, :, None] * (e - s)[:, None, :]).requires_grad_()
            out = head(path.reshape(-1, path.shape[2])).reshape(path.shape)
            chosen = out.gather(2, t[:, None, None].expand(-1, len(alphas), 1)).squeeze(2)
            (gradient,) = torch.autograd.grad((chosen * weights).sum(), path)
        averages.append(gradient.sum(dim=1))
    return torch.cat(averages)


@cache
def _composite_gauss_legendre(panels: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights on [0, 1]: `HEAD_PANEL_NODES` Gauss-Legendre points per panel."""
    nodes, weights = np.polynomial.legendre.leggauss(HEAD_PANEL_NODES)
    lefts = np.arange(panels)[:, None] / panels
    return (lefts + (nodes + 1) / (2 * panels)).ravel(), np.tile(weights / (2 * panels), panels)
