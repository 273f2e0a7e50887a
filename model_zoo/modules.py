"""The torch modules whybox wraps around a user's network (imported only with torch)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class OutputSpaceModule(torch.nn.Module):
    """Wraps a network so that it returns (rows, outputs) in one chosen output space.

    Binary classifiers with one logit give two columns, one per class: in margin space
    (-z, z), in probability space (1 - p, p), so a class index always selects its column.
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
            mean, std = (
                torch.as_tensor(v, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
                for v in self.normalization
            )
            x = (x - mean) / std
        raw = self.module(x)
        if raw.ndim == 1:
            raw = raw.unsqueeze(1)
        raw = raw.reshape(raw.shape[0], -1)
        kind, space = self.module_output, self.output_space
        if kind == "value":
            return raw
        if kind == "logit":
            if space == "margin":
                return torch.cat([-raw, raw], dim=1)
            p = torch.sigmoid(raw)
            return torch.cat([1 - p, p], dim=1)
        if kind == "logits":
            return raw if space == "margin" else torch.softmax(raw, dim=1)
        # probability
        return torch.cat([1 - raw, raw], dim=1) if raw.shape[1] == 1 else raw


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
