"""Captum attribution methods for models that have a differentiable torch module.

All share `CaptumExplainer`: it checks support, draws the reference from the data,
computes base values, feeds rows (or images) to Captum in memory-bounded chunks on the
model's device and converts the result to numpy. Each subclass declares its Captum class,
its parameters and how it calls `attribute()`. Tabular rows are (rows, features); images
are (images, C, H, W) in [0, 1] and get maps of the same shape.

Sampled methods (GradientSHAP, LIME) explain one row per Captum call, with the random
generators seeded from the explainer's seed and the row's own content, so a row gets the
same values alone or in any batch, whatever its position.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from threadpoolctl import threadpool_limits

from whybox.explainers.base import (
    BACKGROUND,
    DEVICE,
    OUTPUT_SPACE,
    SEED,
    Explainer,
    Explanation,
    Param,
    Progress,
    Support,
)
from whybox.explainers.masking import model_rows_per_batch
from whybox.explainers.memory import gradient_batch, halving_on_oom
from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.lazy import LazyModule
from whybox.model_zoo.limits import SAMPLES, STEPS
from whybox.model_zoo.model import PREDICT_BATCH_BYTES

if TYPE_CHECKING:
    import torch
    from captum import attr as captum
    from captum._utils.models import linear_model
    from captum.attr import Attribution
else:
    # Captum and torch load when an explanation runs, not when the class is listed.
    torch = LazyModule("torch")
    captum = LazyModule("captum.attr")
    linear_model = LazyModule("captum._utils.models.linear_model")

GRADIENT_MEMORY_FACTOR = 4
"""A backward pass keeps activations and their gradients: budget this many times less
rows per call than a forward-only evaluation."""
IMAGE_STEPS_PER_BATCH = 16
"""Integrated Gradients on images: path points per image in each batch the network sees."""
GAP_TOLERANCE = 0.01
"""A completeness gap above this share of the output spread earns a note."""
HEAD_PANEL_WIDTH = 4.0
"""Margin units per quadrature panel when averaging the gradient of sigmoid/softmax."""
HEAD_PANEL_NODES = 16
"""Gauss-Legendre nodes per panel: near machine precision on a 4-unit panel."""
HEAD_MAX_PANELS = 1024
"""Beyond 4096 margin units the sigmoid is flat; any gap left shows in the record."""
HEAD_BATCH_NUMBERS = 2**22
"""Path points times margins per batch when averaging the head's gradient (memory bound)."""
LIME_KERNEL_WIDTH = 0.75
"""LIME's tabular kernel exp(-D^2 / 2w^2), w = 0.75 sqrt(d), with D^2 the count of features
switched off; here both are divided by d."""

PRECISION = Param(
    "precision",
    str,
    "fp32",
    "bf16 runs the network in bfloat16 autocast on CUDA: faster on large image networks, "
    "at a cost in completeness that the explanation records.",
    choices=("fp32", "bf16"),
)
BASE_PARAMS = (OUTPUT_SPACE, DEVICE, SEED, PRECISION)
BASELINE = Param(
    "baseline",
    str,
    "auto",
    "The reference input: mean (the background's mean row) or black (all zeros); auto "
    "takes mean for tabular models and black for images.",
    choices=("auto", "mean", "black"),
)
MEAN_BACKGROUND = replace(
    BACKGROUND,
    help="Reference rows sampled from the data; attributions are measured against the "
    "model's output at their mean row.",
)
SAMPLE_BACKGROUND = replace(
    BACKGROUND,
    help="Reference rows sampled from the data; each sample compares the row with one of "
    "them, and attributions are measured against the model's average output on them.",
)


class CaptumExplainer(Explainer):
    """Base of the Captum methods: a tabular model with a differentiable torch module.

    Subclasses set `captum_class`, `reference` and `params`, and implement `_attribute`.
    `reference` is 'mean' (one baseline row: the background mean), 'sample' (the
    background rows as a distribution of baselines) or 'none'.
    """

    captum_class: ClassVar[str]
    """The name of the Captum class in `captum.attr`."""
    modalities: ClassVar[tuple[str, ...]] = ("tabular", "image")
    needs_gradients: ClassVar[bool] = True
    reference: ClassVar[str] = "mean"
    per_row: ClassVar[bool] = False
    """True for sampled methods: one row per call, seeded by the row's content."""
    gap_advice: ClassVar[str] = ""
    """What to do when an additive method misses completeness (said in the note)."""
    one_pass: ClassVar[bool] = False
    """True when Captum runs the network once, forward, on exactly the rows explained: the
    predictions are then kept from that pass (in fp32) instead of made in a pass of their own."""

    def supports(self, model: Model, dataset: Dataset | None = None) -> Support:
        support = super().supports(model, dataset)
        if not support:
            return support
        if self.needs_gradients and model.torch_module() is None:
            alternatives = (
                "occlusion or partition-shap"
                if model.modality == "image"
                else "permutation-shap or kernel-shap"
            )
            return Support(
                False,
                "needs a differentiable model (torch, safetensors or ONNX convertible to "
                f"torch; see the model's notes); use {alternatives}",
            )
        return Support(True)

    def explain(self, *args: Any, **kwargs: Any) -> Explanation:
        """`Explainer.explain`, then the notes on completeness, from the predictions it
        made: one prediction pass serves both (a second one would cost as much as the
        whole of a one-pass method such as Grad-CAM or Saliency)."""
        explanation = super().explain(*args, **kwargs)
        totals = explanation.values.reshape(len(explanation.values), -1).sum(axis=1)
        gaps = np.abs(totals + explanation.base_values - explanation.predictions)
        spread = np.abs(explanation.predictions - explanation.base_values)
        explanation.notes += self._notes(
            float(np.max(gaps, initial=0.0)), float(np.max(spread, initial=0.0))
        )
        return explanation

    def _predicts_itself(self) -> bool:
        return self.one_pass and self.values_.get("precision", "fp32") == "fp32"

    def _explain(
        self,
        *,
        model: Model,
        dataset: Dataset,
        X: np.ndarray,
        targets: np.ndarray | None,
        output_space: str,
        device: str,
        progress: Progress,
    ) -> Explanation:
        reference_rows = self._reference_rows(model, dataset)
        reference = None if reference_rows is None else _tensor(reference_rows, device)
        method = self._method(model, output_space)
        recorder = None
        if self._predicts_itself():
            # Captum calls the network through its public `forward_func`.
            recorder = method.forward_func = _Recorder(method.forward_func, targets is None)
        recorded: list[np.ndarray] = []
        budget = self._batch_budget(model, output_space, X, device)
        values = np.empty(X.shape, dtype=np.float32 if model.modality == "image" else np.float64)
        start = 0
        # Captum's small numpy work (Gauss-Legendre nodes, LIME's least squares) runs many
        # times slower when numpy's BLAS threads contend with torch's OpenMP threads.
        with threadpool_limits(1, user_api="blas"):
            while start < len(X):
                stop = min(start + self._rows_per_call(model, budget), len(X))
                chunk_targets = None if targets is None else targets[start:stop]
                try:
                    values[start:stop] = self._attribute_rows(
                        method, X[start:stop], reference, chunk_targets, budget, device
                    )
                except RuntimeError as exc:  # CUDA out of memory: halve the batch, go on
                    budget = halving_on_oom(budget, exc)
                    continue
                if recorder is not None:
                    recorded.append(recorder.last(stop - start))
                start = stop
                progress(stop, len(X))
        # A regressor's outputs may be wider than `model.n_outputs` (one per target).
        outputs = np.concatenate(recorded) if recorded else None
        if targets is None:
            targets = outputs.argmax(axis=1).astype(np.int64)
        base_values = (
            np.zeros(len(X))
            if reference_rows is None
            else model.predict(reference_rows, output_space).mean(axis=0)[targets]
        )
        explanation = self.new_explanation(model, X, targets, output_space, values, base_values)
        if outputs is not None:
            explanation.predictions = outputs
        return explanation

    def _batch_budget(self, model: Model, output_space: str, X: np.ndarray, device: str) -> int:
        """Model inputs one call may evaluate: measured for images, sized for rows."""
        if model.modality == "tabular":
            return max(1, model_rows_per_batch(model, X.shape[1]) // GRADIENT_MEMORY_FACTOR)
        forward = self._forward(model, output_space)
        if not isinstance(forward, torch.nn.Module):  # predictions only (onnxruntime)
            return max(1, PREDICT_BATCH_BYTES // (4 * math.prod(X.shape[1:])))
        return gradient_batch(forward, X.shape[1:], device, self.needs_gradients)

    def _reference_rows(self, model: Model, dataset: Dataset) -> np.ndarray | None:
        """The baseline: the background's mean row, a black image, the background, or none."""
        if self.reference == "none":
            return None
        choice = self.values_.get("baseline", "auto")
        black = choice == "black" or (choice == "auto" and model.modality == "image")
        if self.reference == "mean" and black:
            return np.zeros((1, *dataset.values.shape[1:]), dtype=dataset.values.dtype)
        rows = dataset.background(self.background, self.seed)
        return rows.mean(axis=0, keepdims=True) if self.reference == "mean" else rows

    def _forward(self, model: Model, output_space: str) -> torch.nn.Module:
        """The network in `output_space`, in bfloat16 autocast where asked for."""
        module = model.torch_module(output_space)
        if self.values_.get("precision", "fp32") == "fp32" or module is None:
            return module
        if model.device != "cuda":
            raise WhyboxError("precision bf16 runs on CUDA only; use --device cuda or fp32")
        from whybox.model_zoo.modules import BFloat16Autocast

        return BFloat16Autocast(module)

    def _method(self, model: Model, output_space: str) -> Any:
        """The Captum attribution object (anything with Captum's `attribute` signature)."""
        return _summing(getattr(captum, self.captum_class)(self._forward(model, output_space)))

    def _evals_per_row(self, model: Model) -> int:
        """Model rows one explained row costs in a call, for sizing chunks."""
        return 1

    def _rows_per_call(self, model: Model, budget: int) -> int:
        """Rows (images) per Captum call when `budget` model inputs fit in one batch."""
        return max(1, budget // self._evals_per_row(model))

    def _attribute_rows(
        self,
        method: Any,
        X: np.ndarray,
        reference: torch.Tensor | None,
        targets: np.ndarray | None,
        budget: int,
        device: str,
    ) -> np.ndarray:
        if not self.per_row:
            return _numpy(
                self._attribute(
                    method, _inputs(X, device), reference, _index(targets, device), budget
                ),
                X.dtype,
            )
        out = np.empty(X.shape, dtype=X.dtype)
        for i, row in enumerate(X):
            with _seeded(row_seed(self.seed, row), device):
                row_values = self._attribute(
                    method,
                    _inputs(row[None], device),
                    reference,
                    _index(targets[i : i + 1], device),
                    budget,
                )
            out[i] = _numpy(row_values, X.dtype)[0]
        return out

    def _attribute(
        self,
        method: Any,
        inputs: torch.Tensor,
        reference: torch.Tensor | None,
        targets: torch.Tensor | None,
        budget: int,
    ) -> torch.Tensor:
        """Call Captum on `inputs` (rows, features) for per-row `targets` (None for a
        one-pass method explaining the predicted classes: see `_Recorder`)."""
        raise NotImplementedError

    def _notes(self, gap: float, spread: float) -> list[str]:
        """Notes for the report, given the worst completeness gap and the output spread."""
        if self.additive and gap > GAP_TOLERANCE * spread + 1e-4:
            return [
                f"{self.display_name} values miss prediction minus base value by up to "
                f"{gap:.3g} ({gap / max(spread, 1e-12):.1%} of the output spread); "
                + self.gap_advice
            ]
        return []


class IntegratedGradients(CaptumExplainer):
    name = "integrated-gradients"
    display_name = "Integrated Gradients"
    summary = (
        "Gradients integrated from the mean background row to the row: contributions that add "
        "up to the prediction; the standard choice for neural networks."
    )
    params = (
        *BASE_PARAMS,
        MEAN_BACKGROUND,
        BASELINE,
        Param(
            "steps",
            int,
            256,
            "Gauss-Legendre points along the path; more steps, smaller completeness gap. "
            "ReLU networks bend along the path, which 64 steps can leave over 1% off; 256 "
            "kept the gap under 1% on our test networks, and every explanation records it.",
            low=4,
            limit=STEPS,
        ),
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
    params = BASE_PARAMS
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
        "DeepLIFT (rescale rule) against the mean background row: contributions that add up "
        "to the prediction from a single backward pass; fast and additive."
    )
    params = (*BASE_PARAMS, MEAN_BACKGROUND, BASELINE)
    additive = True
    captum_class = "DeepLift"
    gap_advice = (
        "DeepLIFT's rule is inexact for a softmax inside the network (common in ONNX exports "
        "that output probabilities) and for max-pooling (as in ResNets), and blind to "
        "nonlinearities applied as functions (torch.relu); use integrated-gradients, or the "
        "margin output space where there is one."
    )

    def additive_for(self, model: Model) -> bool:
        """Not on networks that max-pool: Captum's rule for them only approximates the
        difference from the baseline (the gap still shows in the notes)."""
        pools = (torch.nn.MaxPool1d, torch.nn.MaxPool2d, torch.nn.MaxPool3d)
        return not any(isinstance(m, pools) for m in model.module.modules())

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


class GradientShap(CaptumExplainer):
    name = "gradient-shap"
    display_name = "GradientSHAP"
    summary = (
        "Expected gradients against the background sample: a fast SHAP estimate for neural "
        "networks; sampled, so it adds up to the prediction only on average."
    )
    params = (
        *BASE_PARAMS,
        SAMPLE_BACKGROUND,
        Param(
            "samples",
            int,
            200,
            "Random (background row, path point) draws per row; more samples, less noise.",
            low=1,
            limit=SAMPLES,
        ),
    )
    reference = "sample"
    per_row = True

    def _evals_per_row(self, model: Model) -> int:
        return self.samples

    def _method(self, model: Model, output_space: str) -> Any:
        return self._forward(model, output_space)

    def _attribute(
        self,
        method: Any,
        inputs: torch.Tensor,
        reference: torch.Tensor | None,
        targets: torch.Tensor,
        budget: int,
    ) -> torch.Tensor:
        """Captum's GradientShap estimator (no input noise): the mean over draws of
        (x - b) * grad f(b + a (x - b)), b from the background, a ~ U(0, 1).

        All draws are made first, from the row's seeded generator, so that evaluating them
        in several batches (as large images need) cannot change the values.
        """
        picks = torch.randint(len(reference), (self.samples,)).to(inputs.device)
        alphas = torch.rand(self.samples, dtype=inputs.dtype).to(inputs.device)
        total = torch.zeros_like(inputs)
        per_call = max(1, budget)
        for start in range(0, self.samples, per_call):
            starts = reference[picks[start : start + per_call]]
            alpha = alphas[start : start + per_call].view(-1, *[1] * (inputs.ndim - 1))
            with torch.enable_grad():
                points = (starts + alpha * (inputs.detach() - starts)).requires_grad_()
                outputs = method(points)[:, targets[0]]
                (gradients,) = torch.autograd.grad(outputs.sum(), points)
            total += ((inputs.detach() - starts) * gradients).sum(dim=0, keepdim=True)
        return total / self.samples

    def _notes(self, gap: float, spread: float) -> list[str]:
        return [
            f"GradientSHAP values add up to prediction minus base value only in expectation; "
            f"here they miss by up to {gap:.3g} ({gap / max(spread, 1e-12):.1%} of the output "
            "spread). More samples shrink the gap."
        ]


class FeatureAblation(CaptumExplainer):
    name = "feature-ablation"
    display_name = "Feature ablation"
    summary = (
        "How much the output drops when each feature alone is set to its background mean; "
        "easy to explain to anyone, but blind to interactions."
    )
    params = (*BASE_PARAMS, MEAN_BACKGROUND)
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


class Lime(CaptumExplainer):
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
    params = (
        *BASE_PARAMS,
        MEAN_BACKGROUND,
        Param(
            "samples",
            int,
            500,
            "Perturbed copies of each row the local model is fitted to; more samples, "
            "steadier values, slower (Captum draws them one at a time).",
            low=20,
            limit=SAMPLES,
        ),
    )
    per_row = True
    modalities = ("tabular",)
    captum_class = "Lime"

    def _method(self, model: Model, output_space: str) -> Any:
        return captum.Lime(
            self._forward(model, output_space),
            interpretable_model=linear_model.SkLearnLinearRegression(),
            similarity_func=_on_off_kernel,
        )

    def _evals_per_row(self, model: Model) -> int:
        return self.samples

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
            n_samples=self.samples,
            perturbations_per_eval=min(self.samples, budget),
        )


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


def _summing(attribution: Attribution) -> Attribution:
    """Give a Captum gradient method one backward pass from the summed outputs.

    Captum's `compute_gradients` backpropagates from every output row as a separate root,
    which on CPU made integrated gradients over 200 rows x 256 steps take 5 s instead of
    0.04 s. The gradient of the sum is the same (backpropagation is linear in its seeds).
    Captum itself swaps `gradient_func` this way (GradientShap hands its own on).
    """
    if isinstance(attribution, captum.GradientAttribution):
        attribution.gradient_func = _summed_gradients
    return attribution


def _summed_gradients(
    forward_fn: Callable[..., torch.Tensor],
    inputs: torch.Tensor | tuple[torch.Tensor, ...],
    target_ind: Any = None,
    additional_forward_args: Any = None,
) -> tuple[torch.Tensor, ...]:
    from captum._utils.common import _run_forward

    with torch.enable_grad():
        outputs = _run_forward(forward_fn, inputs, target_ind, additional_forward_args)
        return torch.autograd.grad(outputs.sum(), inputs)


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


def _on_off_kernel(original: Any, perturbed: Any, interpretable: torch.Tensor, **_: Any) -> float:
    """LIME's exponential kernel on the share of features switched off."""
    off = 1.0 - float(interpretable.float().mean())
    return math.exp(-off / (2 * LIME_KERNEL_WIDTH**2))


def row_seed(seed: int, row: np.ndarray) -> int:
    """A 63-bit seed from the explainer's seed and the row's values, not its position."""
    content = np.int64(seed).tobytes() + np.ascontiguousarray(row, dtype=np.float64).tobytes()
    return int.from_bytes(hashlib.sha256(content).digest()[:8], "little") >> 1


@contextmanager
def _seeded(seed: int, device: str) -> Iterator[None]:
    """Seed the global torch and numpy generators (Captum draws from both), then restore them."""
    state = np.random.get_state()
    devices = [torch.cuda.current_device()] if device == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        if devices:
            torch.cuda.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(state)


def _tensor(X: np.ndarray, device: str) -> torch.Tensor:
    """A writable float32 copy where needed: torch warns on a read-only array (the rows may
    be a read-only view of the data) even where it copies it anyway."""
    return torch.as_tensor(np.require(X, np.float32, "W"), device=device)


def _inputs(X: np.ndarray, device: str) -> torch.Tensor:
    """Rows to explain; they require grad so that Captum need not set it (and warn)."""
    return _tensor(X, device).requires_grad_()


def _index(targets: np.ndarray | None, device: str) -> torch.Tensor | None:
    return None if targets is None else torch.as_tensor(targets, dtype=torch.long, device=device)


class _Recorder:
    """A network's forward function that keeps the outputs of its last call.

    With `largest`, it returns each row's largest output, whose gradient is the predicted
    class's: Captum is then given no target, and the class is known after the pass.
    """

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], largest: bool) -> None:
        self.forward, self.largest = forward, largest
        self.outputs: torch.Tensor | None = None

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs = self.forward(inputs)
        self.outputs = outputs.detach()
        return outputs.max(dim=1).values if self.largest else outputs

    def last(self, rows: int) -> np.ndarray:
        """The last call's outputs, which must have been on `rows` rows."""
        if self.outputs is None or len(self.outputs) != rows:
            raise AssertionError("a one-pass method must run the network once on its rows")
        return _numpy(self.outputs)


def _numpy(values: torch.Tensor, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """`values` as float32 or float64 numpy (`dtype`), converted on their device: image
    maps are float32, and a GPU copies half the bytes of float64."""
    single = np.dtype(dtype) == np.float32
    return values.detach().to(torch.float32 if single else torch.float64).cpu().numpy()
