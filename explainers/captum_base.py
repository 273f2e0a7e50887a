"""The base of the Captum methods, and the tensor helpers they share.

`CaptumExplainer` checks support, draws the reference from the data, computes base
values, feeds rows (or images) to Captum in memory-bounded chunks on the model's device
and converts the result to numpy. Each subclass declares its Captum class, its parameters
and how it calls `attribute()`. Tabular rows are (rows, features); images are
(images, C, H, W) in [0, 1] and get maps of the same shape.

Sampled methods explain one row per call and draw from that row's own torch generator
(`explainers.seeding`), passed to `_attribute`: a row gets the same values alone or in any
batch, whatever its position, and whatever else runs in the process.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from threadpoolctl import threadpool_limits

from whybox.explainers.base import (
    BACKGROUND,
    Explainer,
    Explanation,
    Param,
    Progress,
    Support,
)
from whybox.explainers.masking import model_rows_per_batch
from whybox.explainers.memory import gradient_batch, halving_on_oom
from whybox.explainers.seeding import torch_generator
from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.chunks import rows_per_chunk
from whybox.model_zoo.lazy import LazyModule

if TYPE_CHECKING:
    import torch
    from captum import attr as captum
    from captum.attr import Attribution
else:
    # Captum and torch load when an explanation runs, not when the class is listed.
    torch = LazyModule("torch")
    captum = LazyModule("captum.attr")

GRADIENT_MEMORY_FACTOR = 4
"""A backward pass keeps activations and their gradients: budget this many times less
rows per call than a forward-only evaluation."""

PRECISION = Param(
    str,
    "fp32",
    "bf16 runs the network in bfloat16 autocast on CUDA: faster on large image networks, "
    "at a cost in completeness that the explanation records.",
    choices=("fp32", "bf16"),
)
BASELINE = Param(
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


class CaptumExplainer(Explainer):
    """Base of the Captum methods, on tabular rows or images.

    Subclasses set `captum_class` and `reference`, declare their parameters, and implement
    `_attribute`.
    `reference` is 'mean' (one baseline row: the background mean), 'sample' (the
    background rows as a distribution of baselines) or 'none'.
    """

    captum_class: ClassVar[str]
    """The name of the Captum class in `captum.attr`."""
    modalities: ClassVar[tuple[str, ...]] = ("tabular", "image")
    needs_gradients: ClassVar[bool] = True
    reference: ClassVar[str] = "mean"
    per_row: ClassVar[bool] = False
    """True for sampled methods: one row per call, with the row's own generator."""
    precision = PRECISION

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
        recorder, predictions = None, None
        if self.one_pass and self.precision != "fp32":
            # The bfloat16 pass's outputs are not the predictions: one fp32 pass makes them.
            predictions = model.predict(X, output_space)
            if targets is None:
                targets = predictions.argmax(axis=1).astype(np.int64)
        elif self.one_pass:
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
        outputs = np.concatenate(recorded) if recorded else predictions
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
            return rows_per_chunk(4 * math.prod(X.shape[1:]))
        budget = gradient_batch(forward, X.shape[1:], device, self.needs_gradients)
        # An ONNX graph exported with a fixed batch runs bigger calls in slices of it
        # (`FixedBatch`), calling each node once per slice; Captum's layer and DeepLIFT
        # hooks need one call, and the memory probe measured a whole slice per image.
        return min(budget, getattr(model.module, "fixed_batch", budget))

    def _reference_rows(self, model: Model, dataset: Dataset) -> np.ndarray | None:
        """The baseline: the background's mean row, a black image, the background, or none."""
        if self.reference == "none":
            return None
        choice = getattr(self, "baseline", "auto")
        black = choice == "black" or (choice == "auto" and model.modality == "image")
        if self.reference == "mean" and black:
            return np.zeros((1, *dataset.values.shape[1:]), dtype=dataset.values.dtype)
        if self.reference == "mean" and model.modality == "tabular":
            return dataset.mean_row(self.background, self.seed)
        rows = dataset.background(self.background, self.seed)
        return rows.mean(axis=0, keepdims=True) if self.reference == "mean" else rows

    def _forward(self, model: Model, output_space: str) -> torch.nn.Module:
        """The network in `output_space`, in bfloat16 autocast where asked for."""
        module = model.torch_module(output_space)
        if self.precision == "fp32" or module is None:
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
            row_values = self._attribute(
                method,
                _inputs(row[None], device),
                reference,
                _index(targets[i : i + 1], device),
                budget,
                generator=torch_generator(self.seed, row, device),
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
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Call Captum on `inputs` (rows, features) for per-row `targets` (None for a
        one-pass method explaining the predicted classes: see `_Recorder`).

        A `per_row` method gets one row at a time and its `generator`, keyed by the seed
        and the row, on the model's device: every random draw comes from it, never from
        torch's or numpy's global state (which Captum's samplers use by default).
        """
        raise NotImplementedError


class SampledCaptumExplainer(CaptumExplainer):
    """Base of the sampled methods: `samples` random draws per row, one row per call, all
    from the row's own generator. They call the network directly (Captum's samplers would
    draw from torch's global generator) and declare a `samples` parameter."""

    per_row = True

    def _method(self, model: Model, output_space: str) -> Any:
        return self._forward(model, output_space)

    def _evals_per_row(self, model: Model) -> int:
        return self.samples


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
