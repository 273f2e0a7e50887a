"""Built-in network architectures that safetensors weights can name in their metadata.

A safetensors file holds only tensors, so it cannot run code; its metadata says which
architecture here to build (`whybox.architecture`) and with what config (`whybox.config`).

Every architecture states `input_shape`: (features,) for tabular networks, (C, H, W) for
image networks, with 0 for a side that may take any size.

The ResNets use torchvision's parameter names, so `torchvision.models.resnet50()`'s
`state_dict()` loads as is; they are written out here because torchvision's wheels on
our build machines need a CUDA torch. Each ReLU is its own module, never in place:
Captum's DeepLIFT and guided backpropagation hook modules and need one per use.
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
        self.input_shape = (n_features,)
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


class SmallCNN(nn.Module):
    """Three 3x3 convolutions (ReLU, the first two max-pooled), global average pooling and a
    linear head, as in ResNets, so Grad-CAM's class weights are the head's own.

    With `coordinates`, two channels holding each pixel's row and column (-1 to 1) join
    the input (CoordConv): a pooled network can then tell where its evidence lies, and
    still finds it where it is. `image_size` is the size the network was trained at.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: Sequence[int] = (28, 28),
        channels: Sequence[int] = (16, 32, 32),
        coordinates: bool = True,
    ) -> None:
        super().__init__()
        height, width = image_size
        self.input_shape = (in_channels, int(height), int(width))
        self.coordinates = coordinates
        first, second, third = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels + 2 * coordinates, first, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(first, second, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(second, third, 3, padding=1),
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(third, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.coordinates:
            n, _, height, width = x.shape
            rows = torch.linspace(-1, 1, height, device=x.device, dtype=x.dtype)
            cols = torch.linspace(-1, 1, width, device=x.device, dtype=x.dtype)
            x = torch.cat(
                [
                    x,
                    rows.view(1, 1, height, 1).expand(n, 1, height, width),
                    cols.view(1, 1, 1, width).expand(n, 1, height, width),
                ],
                dim=1,
            )
        return self.classifier(self.features(x))


def _conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """torchvision's downsample path: a bias-free convolution and batch norm."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.downsample = (
            _conv_bn(in_channels, planes, 1, stride)
            if stride != 1 or in_channels != planes
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu2(out + shortcut)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu3 = nn.ReLU()
        self.downsample = (
            _conv_bn(in_channels, out_channels, 1, stride)
            if stride != 1 or in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu3(out + shortcut)


RESNET_LAYOUTS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(nn.Module):
    """torchvision's ResNet-18/34/50/101 (same parameter names); any input size from 32 up."""

    def __init__(self, depth: int = 18, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise ValueError(f"depth must be one of {', '.join(map(str, RESNET_LAYOUTS))}")
        block, counts = RESNET_LAYOUTS[depth]
        self.input_shape = (in_channels, 0, 0)
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        width = 64
        for index, (planes, count) in enumerate(
            zip((64, 128, 256, 512), counts, strict=True), start=1
        ):
            blocks = []
            for position in range(count):
                stride = 2 if index > 1 and position == 0 else 1
                blocks.append(block(width, planes, stride))
                width = planes * block.expansion
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "small-cnn": SmallCNN,
    "resnet": ResNet,
}
