"""Getting any model and any data into one uniform shape.

The names below load on first use, so that importing the package for `WhyboxError` (the
command line does, before it knows what it will run) does not import torch.
"""

import importlib
from typing import Any

from whybox.model_zoo.errors import WhyboxError

_LAZY = {
    "Dataset": "whybox.model_zoo.data",
    "load_data": "whybox.model_zoo.data",
    "load_model": "whybox.model_zoo.loaders",
    "Model": "whybox.model_zoo.model",
    "OUTPUT_SPACES": "whybox.model_zoo.output_space",
}

__all__ = ["OUTPUT_SPACES", "Dataset", "Model", "WhyboxError", "load_data", "load_model"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'model_zoo' has no attribute {name!r}")
