"""Grad-CAM and Guided Grad-CAM: image maps from a convolutional feature map.

They work on one module's output; by default the last module whose output is a spatial
map (ResNet's `layer4`), or the module named by `layer`. Their coarse map is upsampled to
the image (and, for Grad-CAM, repeated on every channel), so the values have the image's
shape like every other method's. Batching, memory and bookkeeping are `CaptumExplainer`'s.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from whybox.explainers.base import Param, Support
from whybox.explainers.captum_base import CaptumExplainer
from whybox.explainers.memory import module_outputs
from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.lazy import LazyModule
from whybox.model_zoo.wrap import PROBE_SIDE

if TYPE_CHECKING:
    import torch
    from captum import attr as captum
else:
    torch = LazyModule("torch")
    captum = LazyModule("captum.attr")

LAYER = Param(
    str,
    "auto",
    "Module whose feature map is weighted (a name from the network, e.g. layer4; for ONNX "
    "graphs a node name or its output tensor's name, e.g. /features/features.7/Relu); auto "
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
    """The module to hook for Grad-CAM: `layer` by module name or ONNX node/output name
    (converted ONNX graphs keep them in `onnx_names`), or the last feature map."""
    network = model.module
    modules = dict(network.named_modules())
    if layer != "auto":
        onnx = {n: m for m in modules.values() for n in getattr(m, "onnx_names", ())}
        found = modules.get(layer) if layer else None
        if found is None and layer not in onnx:
            maps = [
                getattr(modules[name], "onnx_names", (name,))[0]
                for name in feature_map_modules(network, sample)
            ]
            raise WhyboxError(
                f"the network has no module named {layer!r}; feature-map modules are "
                f"{', '.join(maps[-8:]) or 'none'}"
            )
        return onnx[layer] if found is None else found
    maps = feature_map_modules(network, sample)
    if not maps:
        raise WhyboxError(
            "found no convolutional feature map to weight (the network has no submodule "
            "with a spatial output); use integrated-gradients or occlusion"
        )
    return modules[maps[-1]]


class _FeatureMapExplainer(CaptumExplainer):
    """Grad-CAM and its guided variant: they need a network with named submodules."""

    modalities = ("image",)
    reference = "none"
    layer = LAYER

    def supports(self, model: Model, dataset: Dataset | None = None) -> Support:
        """Without running the network (the sidebar asks every explainer on each click):
        a network with no convolution (a Conv2d, or a converted ONNX Conv node) has no
        feature map to hook."""
        support = super().supports(model, dataset)
        if not support:
            return support
        if not any(
            isinstance(m, torch.nn.Conv2d) or getattr(m, "op_type", None) == "Conv"
            for m in model.module.modules()
        ):
            return Support(
                False,
                "needs a network with convolutional layers to hook; this one has none; "
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
