"""A torch network in memory as a `Model`, and the probe that finds the input it runs on."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.formats import first_line
from whybox.model_zoo.lazy import LazyModule
from whybox.model_zoo.model import Model
from whybox.model_zoo.model_file import check_input_size
from whybox.model_zoo.output_space import class_count, output_spaces_for

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

PROBE_SIDE = 64
"""Image side used to probe a network that takes any size."""
IMAGE_PROBE_SIDES = (224, 64, 32, 28)
"""Image sides tried on a network of unknown input size."""


def wrap_torch(
    module: torch.nn.Module,
    n_features: int | Sequence[int],
    module_output: str,
    *,
    name: str = "torch model",
    format: str = "torch",
    kind: str = "torch",
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    sha256: str = "",
) -> Model:
    """A `Model` over a torch module whose raw output is `module_output`.

    `n_features` is the tabular width, or an image network's input shape (C, H, W) where
    0 marks a side of any size. `module_output` is 'logit' (one binary logit), 'logits'
    (one per class), 'probability' or 'value' (regression). Classes default to '0', '1',
    ... when not named.
    """
    shape = (n_features,) if isinstance(n_features, int) else tuple(n_features)
    modality = "image" if len(shape) == 3 else "tabular"
    task = "regression" if module_output == "value" else "classification"
    device = next(itertools.chain(module.parameters(), module.buffers()), torch.zeros(0)).device
    if task == "classification" and class_names is None:
        probe = torch.zeros(1, *(side or PROBE_SIDE for side in shape), device=device)
        with torch.inference_mode():
            width = module(probe).reshape(1, -1).shape[1]
        class_names = [str(i) for i in range(class_count(module_output, width))]
    return Model(
        name=name,
        format=format,
        kind=kind,
        task=task,
        n_features=math.prod(shape),
        modality=modality,
        input_shape=shape,
        feature_names=list(feature_names) if feature_names else None,
        class_names=list(class_names) if class_names else None,
        output_spaces=output_spaces_for(module_output),
        sha256=sha256,
        native=module,
        module=module,
        module_output=module_output,
        device=device.type,
    )


def runnable_shape(
    module: torch.nn.Module, shape: tuple[int, ...], name: str
) -> tuple[tuple[int, ...], int]:
    """The input shape the network runs on, and its output width.

    Image sides left open (0) are tried at several sizes: a network that runs on all of
    them takes any size, one that runs on one size only is fixed to it.
    """
    check_input_size(shape, name)
    candidates = [shape]
    if not all(shape):
        candidates = [tuple(s or side for s in shape) for side in IMAGE_PROBE_SIDES]
    widths: dict[tuple[int, ...], int] = {}
    failure = ""
    for candidate in candidates:
        try:
            with torch.inference_mode():
                widths[candidate] = module(torch.zeros(1, *candidate)).reshape(1, -1).shape[1]
        except Exception as exc:  # a user's network can raise anything
            failure = first_line(exc)
    if not widths:
        what = (
            f"one row of {shape[0]} features"
            if len(shape) == 1
            else f"{shape[0]}-channel images of {' or '.join(f'{c[1]}x{c[2]}' for c in candidates)}"
        )
        raise WhyboxError(
            f"{name!r} could not run on {what} ({failure}); whybox explains networks that take "
            "(rows, features) or (images, channels, height, width) input"
        )
    if len(widths) == len(candidates):
        return shape, next(iter(widths.values()))
    return next(iter(widths.items()))
