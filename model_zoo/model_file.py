"""What every format's loader shares: the file being loaded, the whybox metadata keys it may
carry, and the checks and wording of their errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.formats import FORMATS, first_line
from whybox.model_zoo.image_data import COLORS
from whybox.model_zoo.limits import COLUMNS, PIXELS

# Metadata keys that whybox reads from ONNX metadata_props and safetensors headers.
META_ARCHITECTURE = "whybox.architecture"
META_CONFIG = "whybox.config"
META_MODULE_OUTPUT = "whybox.module_output"
META_TASK = "whybox.task"
META_FEATURE_NAMES = "whybox.feature_names"
META_CLASS_NAMES = "whybox.class_names"
MAX_NAMED = 8  # names an error message lists before it says how many more there are


@dataclass(frozen=True)
class ModelFile:
    """A model file as its format's loader receives it."""

    raw: bytes
    name: str
    sha256: str
    isolated: bool = True  # load it in a child process first (see whybox.model_zoo.sandbox)


def damaged(file: ModelFile, key: str, exc: BaseException) -> WhyboxError:
    """The error for a file of format `key` that its library could not read."""
    return WhyboxError(
        f"{file.name!r} looks like {FORMATS[key].label} but could not be read "
        f"({first_line(exc)}); save the model again"
    )


def listed(items: Sequence[str]) -> str:
    """The first MAX_NAMED of `items` for a message, and how many more there are."""
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def meta_json(meta: dict[str, str], key: str, kind: type, what: str) -> Any:
    """The JSON value of metadata `key`, refused unless it is a `kind` (`what` says which)."""
    try:
        value = json.loads(meta[key])
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, kind):
        raise WhyboxError(f"the metadata {key} must be {what}; it is {meta[key][:80]!r}")
    return value


def meta_list(meta: dict[str, str], key: str, length: int, what: str) -> list[str] | None:
    """A JSON list of `length` names from metadata `key`, None when the key is absent."""
    if key not in meta:
        return None
    names = meta_json(meta, key, list, "a JSON list of names")
    if len(names) != length:
        raise WhyboxError(
            f"the metadata {key} names {len(names)} {what} but the model has {length}; "
            "fix the metadata when saving the model"
        )
    return [str(n) for n in names]


def check_input_size(shape: Sequence[int], name: str) -> None:
    """Refuse a network whose declared input is too large to probe or explain, before any
    input is allocated: (features,) or (C, H, W), 0 marking a side of any size."""
    if len(shape) == 1 and shape[0] > COLUMNS.value():
        raise COLUMNS.exceeded(f"{name!r} takes {shape[0]:,} features", "explain fewer features")
    if len(shape) != 3:
        return
    channels, height, width = shape
    if channels not in COLORS:
        raise WhyboxError(
            f"{name!r} takes images of {channels:,} channels; whybox explains image models "
            "of 1 (grayscale) or 3 (RGB) channels"
        )
    if height * width > PIXELS.value():
        raise PIXELS.exceeded(
            f"{name!r} takes images of {width}x{height} = {width * height:,} pixels",
            "export it for a smaller input size",
        )
