"""The torch modules whybox wraps around a user's network (imported only with torch)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from whybox.model_zoo.model import normalize_images
from whybox.model_zoo.output_space import map_outputs


class OutputSpaceModule(torch.nn.Module):
    """Wraps a network so that it returns (rows, outputs) in one chosen output space
    (`map_outputs`: binary classifiers with one logit give a column per class).

    Image models may take their inputs normalised per channel, (x - mean) / std: the
    wrapper applies that, so attributions stay in the [0, 1] pixel units of the images.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        module_output: str,
        output_space: str,
        normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        self.module, self.module_output, self.output_space = module, module_output, output_space
        self.normalization = normalization

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalization is not None:
            x = normalize_images(x, self.normalization)
        return map_outputs(self.module(x), self.module_output, self.output_space)


class OnnxOutput(torch.nn.Module):
    """One output of an ONNX graph converted to torch, so the module returns one tensor."""

    def __init__(self, graph: torch.nn.Module, index: int) -> None:
        super().__init__()
        self.graph, self.index = graph, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.graph(x)
        return out[self.index] if isinstance(out, (tuple, list)) else out


class BFloat16Autocast(torch.nn.Module):
    """Runs a network in bfloat16 autocast on CUDA and hands back float32 outputs."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return self.module(x).float()
