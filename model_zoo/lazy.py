"""Heavy libraries imported on first use.

`torch = LazyModule("torch")` binds a name that imports torch when an attribute is first
read, so code that never touches it (a tree model on the dashboard's first page, `whybox
--help`) does not pay seconds of import time. Declare the real import under TYPE_CHECKING
so type checkers still see the module.
"""

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        module: ModuleType = importlib.import_module(self._name)
        return getattr(module, attribute)
