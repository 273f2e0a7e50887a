"""Attribution methods for image models only: maps over (C, H, W) for each image.

They share `CaptumExplainer`'s batching (measured against free memory, halved on CUDA
out-of-memory), seeding and bookkeeping. Grad-CAM-style methods work on a convolutional
feature map; by default the last module whose output is one (ResNet's `layer4`), or the
module named by `layer`. Their coarse map is upsampled to the image and repeated on every
channel, so every method's values have the image's shape.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFilter

from whybox.explainers.base import Param, Support
from whybox.explainers.gradients import BASE_PARAMS, BASELINE, MEAN_BACKGROUND, CaptumExplainer
from whybox.explainers.memory import module_outputs
from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.lazy import LazyModule
from whybox.model_zoo.limits import SAMPLES
from whybox.model_zoo.wrap import PROBE_SIDE

if TYPE_CHECKING:
    import torch
    from captum import attr as captum
else:
    torch = LazyModule("torch")
    captum = LazyModule("captum.attr")

LAYER = Param(
    "layer",
    str,
    "auto",
    "Module whose feature map is weighted (a name from the network, e.g. layer4); auto "
    "takes the last module that outputs a spatial feature map.",
)


def feature_map_modules(network: torch.nn.Module, sample: torch.Tensor) -> list[str]:
    """Names of submodules whose output is a spatial map (N, C, h, w), h*w > 1, in the
    order their forward passes finish (a container finishes after its children)."""
    return [
        name
        for name, shape, _ in module_outputs(network, sample)
        if name and len(shape) == 4 and shape[2] * shape[3] > 1
    ]


def find_layer(model: Model, sample: torch.Tensor, layer: str) -> torch.nn.Module:
    """The module to hook for Grad-CAM: `layer` by name, or the last feature map."""
    network = model.module
    modules = dict(network.named_modules())
    if layer != "auto":
        if layer not in modules or not layer:
            maps = feature_map_modules(network, sample)
            raise WhyboxError(
                f"the network has no module named {layer!r}; feature-map modules are "
                f"{', '.join(maps[-8:]) or 'none'}"
            )
        return modules[layer]
    maps = feature_map_modules(network, sample)
    if not maps:
        raise WhyboxError(
            "found no convolutional feature map to weight (the network has no submodule "
            "with a spatial output, as in ONNX graphs run as one module); use "
            "integrated-gradients or occlusion"
        )
    return modules[maps[-1]]


class _FeatureMapExplainer(CaptumExplainer):
    """Grad-CAM and its guided variant: they need a network with named submodules."""

    modalities = ("image",)
    reference = "none"
    params = (*BASE_PARAMS, LAYER)

    def supports(self, model: Model, dataset: Dataset | None = None) -> Support:
        """Without running the network (the sidebar asks every explainer on each click):
        a network with no Conv2d submodule has no feature map to hook."""
        support = super().supports(model, dataset)
        if not support:
            return support
        if not any(isinstance(m, torch.nn.Conv2d) for m in model.module.modules()):
            return Support(
                False,
                "needs a network with convolutional submodules to hook (safetensors, or "
                "trusted torch files); this one runs as a single module, as ONNX graphs do; "
                "use integrated-gradients",
            )
        return support

    def _sample(self, model: Model) -> torch.Tensor:
        """One blank input of the model's shape (open sides at `PROBE_SIDE` pixels)."""
        sides = [side or PROBE_SIDE for side in model.input_shape[1:]]
        return torch.zeros(1, model.input_shape[0], *sides, device=model.device)

    def _layer(self, model: Model, output_space: str) -> torch.nn.Module:
        return find_layer(model, self._sample(model), self.layer)


class GradCam(_FeatureMapExplainer):
    name = "grad-cam"
    display_name = "Grad-CAM"
    summary = (
        "The last convolutional feature map weighted by the class's average gradient, "
        "upsampled: where in the image the network found evidence for the class; coarse, "
        "positive only."
    )
    signed = False
    one_pass = True

    def _method(self, model: Model, output_space: str) -> Any:
        return captum.LayerGradCam(
            self._forward(model, output_space), self._layer(model, output_space)
        )

    def _attribute(
        self,
        method: Any,
        inputs: torch.Tensor,
        reference: torch.Tensor | None,
        targets: torch.Tensor | None,
        budget: int,
    ) -> torch.Tensor:
        coarse = method.attribute(inputs, target=targets, relu_attributions=True)
        # One channel: storing it repeats it on every channel (numpy broadcasts), so a GPU
        # copies a third of the bytes for RGB images.
        return captum.LayerAttribution.interpolate(coarse, tuple(inputs.shape[2:]), "bilinear")

    def _notes(self, gap: float, spread: float) -> list[str]:
        return [
            "Grad-CAM values are a relevance map (feature-map activations weighted by "
            "gradients, upsampled and repeated on each channel), not contributions: they do "
            "not add up to the prediction."
        ]


class GuidedGradCam(_FeatureMapExplainer):
    name = "guided-grad-cam"
    display_name = "Guided Grad-CAM"
    summary = (
        "Grad-CAM multiplied by guided backpropagation: Grad-CAM's place, at pixel "
        "resolution (edges and textures); a relevance map, not contributions."
    )

    def _method(self, model: Model, output_space: str) -> Any:
        return captum.GuidedGradCam(
            self._forward(model, output_space), self._layer(model, output_space)
        )

    def _attribute(
        self,
        method: Any,
        inputs: torch.Tensor,
        reference: torch.Tensor | None,
        targets: torch.Tensor,
        budget: int,
    ) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            return method.attribute(inputs, target=targets, interpolate_mode="bilinear")

    def _notes(self, gap: float, spread: float) -> list[str]:
        return [
            "Guided Grad-CAM values are a relevance map, not contributions: they do not add "
            "up to the prediction."
        ]


class SmoothGrad(CaptumExplainer):
    name = "smoothgrad"
    display_name = "SmoothGrad"
    summary = (
        "The gradient's magnitude averaged over noisy copies of the image: a sharper, less "
        "speckled saliency map; sensitivities, not contributions."
    )
    params = (
        *BASE_PARAMS,
        Param("samples", int, 32, "Noisy copies per image; more, smoother.", low=1, limit=SAMPLES),
        Param(
            "noise",
            float,
            0.15,
            "Noise standard deviation, as a share of the [0, 1] pixel range.",
            low=0.0,
            high=1.0,
        ),
    )
    modalities = ("image",)
    reference = "none"
    per_row = True
    signed = False

    def _method(self, model: Model, output_space: str) -> Any:
        return captum.NoiseTunnel(captum.Saliency(self._forward(model, output_space)))

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
            nt_type="smoothgrad",
            nt_samples=self.samples,
            nt_samples_batch_size=max(1, min(self.samples, budget)),
            stdevs=self.noise,
            target=targets,
            abs=True,
        )

    def _notes(self, gap: float, spread: float) -> list[str]:
        return [
            "SmoothGrad values are gradient magnitudes averaged over noisy copies, not "
            "contributions: they do not add up to the prediction."
        ]


class Occlusion(CaptumExplainer):
    name = "occlusion"
    display_name = "Occlusion"
    summary = (
        "How much the output drops when a square patch is covered (black by default), "
        "averaged over the patches covering each pixel; needs no gradients, so it also runs "
        "on ONNX graphs that cannot be converted."
    )
    params = (
        *BASE_PARAMS,
        MEAN_BACKGROUND,
        BASELINE,
        Param(
            "window",
            int,
            0,
            "Side of the square patch in pixels; 0 picks an eighth of the shorter image side "
            "(at least 3).",
            low=0,
            high=4096,
        ),
        Param("stride", int, 0, "Patch step in pixels; 0 picks half the window.", low=0),
    )
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


class PartitionShap(CaptumExplainer):
    """SHAP's Partition explainer with its image masker: Owen values over a hierarchy of
    pixel blocks, hidden by blurring. They add up exactly to the output minus the output on
    the fully blurred image."""

    name = "partition-shap"
    display_name = "Partition SHAP (blur)"
    summary = (
        "SHAP's Partition explainer: Shapley values of nested pixel blocks, with hidden "
        "blocks blurred; adds up to the prediction minus the blurred image's; needs no "
        "gradients."
    )
    params = (
        *BASE_PARAMS,
        Param(
            "evaluations",
            int,
            500,
            "Model evaluations per image; more, finer blocks.",
            low=10,
            limit=SAMPLES,
        ),
        Param(
            "blur",
            float,
            0.0,
            "Gaussian blur radius in pixels for hidden blocks; 0 picks a tenth of the "
            "shorter image side.",
            low=0.0,
        ),
    )
    modalities = ("image",)
    needs_gradients = False
    reference = "none"
    per_row = True
    additive = True

    def _method(self, model: Model, output_space: str) -> Any:
        return _NumpyForward(model, output_space)

    def _explain(self, *, model: Model, X: np.ndarray, targets: np.ndarray, **kwargs: Any) -> Any:
        explanation = super()._explain(model=model, X=X, targets=targets, **kwargs)
        # SHAP's base value: the output on the fully blurred image (every block hidden).
        blurred = np.stack(
            [self._blurred(image.transpose(1, 2, 0)).transpose(2, 0, 1) for image in X]
        )
        outputs = model.predict(blurred.astype(np.float32), kwargs["output_space"])
        explanation.base_values = outputs[np.arange(len(X)), targets]
        return explanation

    def _attribute_rows(
        self,
        method: Any,
        X: np.ndarray,
        reference: torch.Tensor | None,
        targets: np.ndarray,
        budget: int,
        device: str,
    ) -> np.ndarray:
        import shap

        out = np.empty(X.shape, dtype=np.float32)
        for i, (image, target) in enumerate(zip(X, targets, strict=True)):
            hwc = np.ascontiguousarray(image.transpose(1, 2, 0), dtype=np.float64)
            masker = shap.maskers.Image(self._blurred(hwc), hwc.shape)
            explainer = shap.PartitionExplainer(method.column(int(target)), masker)
            result = explainer(
                hwc[None], max_evals=self.evaluations, batch_size=budget, silent=True
            )
            out[i] = np.asarray(result.values[0]).reshape(hwc.shape).transpose(2, 0, 1)
        return out

    def _notes(self, gap: float, spread: float) -> list[str]:
        return []

    def _blurred(self, hwc: np.ndarray) -> np.ndarray:
        radius = self.blur or max(1.0, min(hwc.shape[:2]) / 10)
        pixels = np.clip(hwc * 255, 0, 255).round().astype(np.uint8)
        image = Image.fromarray(pixels[..., 0] if hwc.shape[2] == 1 else pixels)
        blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float64)
        return blurred.reshape(hwc.shape) / 255


class _NumpyForward:
    """A model's predictions as a function, for methods that need no gradients.

    Called with tensors (Captum) it returns tensors; `column(k)` gives SHAP a numpy
    function of (n, H, W, C) images returning output k.
    """

    def __init__(self, model: Model, output_space: str) -> None:
        self.model, self.output_space = model, output_space

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = self.model.predict(images.detach().cpu().numpy(), self.output_space)
        return torch.as_tensor(out, dtype=torch.float32, device=images.device)

    def column(self, index: int):
        def predict(hwc: np.ndarray) -> np.ndarray:
            nchw = np.ascontiguousarray(hwc.transpose(0, 3, 1, 2), dtype=np.float32)
            return self.model.predict(nchw, self.output_space)[:, index]

        return predict
