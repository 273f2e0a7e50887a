"""Getting any model and any data into one uniform shape.

The names below load on first use, so that importing the package for `WhyboxError` (the
command line does, before it knows what it will run) does not import torch.
"""

import importlib
from typing import Any

from model_zoo.errors import WhyboxError

_LAZY = {
    "Dataset": "model_zoo.data",
    "load_data": "model_zoo.data",
    "load_model": "model_zoo.loaders",
    "Model": "model_zoo.model",
    "OUTPUT_SPACES": "model_zoo.model",
}

__all__ = ["OUTPUT_SPACES", "Dataset", "Model", "WhyboxError", "load_data", "load_model"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'model_zoo' has no attribute {name!r}")
