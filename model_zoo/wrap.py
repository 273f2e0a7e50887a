"""Wrapping in-memory models (a torch module, a fitted estimator) as a `Model`."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from model_zoo.model import Model, output_spaces_for


def wrap_torch(
    module: torch.nn.Module,
    n_features: int,
    module_output: str,
    *,
    name: str = "torch model",
    format: str = "torch",
    kind: str = "torch",
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    sha256: str = "",
) -> Model:
    """A `Model` over a tabular torch module whose raw output is `module_output`.

    `module_output` is 'logit' (one binary logit), 'logits' (one per class), 'probability'
    or 'value' (regression). Classes default to '0', '1', ... when not named.
    """
    task = "regression" if module_output == "value" else "classification"
    if task == "classification" and class_names is None:
        with torch.inference_mode():
            width = module(torch.zeros(1, n_features)).reshape(1, -1).shape[1]
        class_names = [
            str(i) for i in range(2 if module_output == "logit" or width == 1 else width)
        ]
    return Model(
        name=name,
        format=format,
        kind=kind,
        task=task,
        n_features=n_features,
        feature_names=list(feature_names) if feature_names else None,
        class_names=list(class_names) if class_names else None,
        output_spaces=output_spaces_for(module_output),
        sha256=sha256,
        native=module,
        module=module,
        module_output=module_output,
    )
