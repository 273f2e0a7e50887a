"""Built-in network architectures that safetensors weights can name in their metadata.

A safetensors file holds only tensors, so it cannot run code; its metadata says which
architecture here to build (`whybox.architecture`) and with what config (`whybox.config`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


class MLP(nn.Module):
    """A tabular multilayer perceptron that standardises its raw inputs itself.

    Keeping the scaling inside the network means attributions are stated for the features
    as the user knows them (income in dollars, not in standard deviations).
    """

    def __init__(
        self,
        n_features: int,
        n_outputs: int = 1,
        hidden: Sequence[int] = (32, 32),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; use one of {', '.join(ACTIVATIONS)}"
            )
        self.register_buffer("input_mean", torch.zeros(n_features))
        self.register_buffer("input_std", torch.ones(n_features))
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            width = size
        layers.append(nn.Linear(width, n_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers((x - self.input_mean) / self.input_std)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"mlp": MLP}
