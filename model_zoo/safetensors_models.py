"""safetensors weights as `Model`s: the file's metadata names a model_zoo architecture and
its config, so the network is built here and only tensors are read from the file; and
`save_safetensors`, which writes such a file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.formats import first_line
from whybox.model_zoo.lazy import LazyModule
from whybox.model_zoo.model import Model
from whybox.model_zoo.model_file import (
    META_ARCHITECTURE,
    META_CLASS_NAMES,
    META_CONFIG,
    META_FEATURE_NAMES,
    META_MODULE_OUTPUT,
    ModelFile,
    damaged,
    listed,
    meta_json,
    meta_list,
)
from whybox.model_zoo.output_space import MODULE_OUTPUTS, class_count
from whybox.model_zoo.wrap import runnable_shape, wrap_torch

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

REQUIRED = (META_ARCHITECTURE, META_CONFIG, META_MODULE_OUTPUT)


def save_safetensors(
    module: torch.nn.Module,
    architecture: str,
    config: dict[str, Any],
    module_output: str,
    path: str | Path | None = None,
    *,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
) -> bytes:
    """The weights of `module` (built as `ARCHITECTURES[architecture](**config)`) as safetensors.

    The file carries the metadata `load_model` needs to rebuild the network; it is written
    to `path` too when one is given.
    """
    from safetensors.torch import save

    from whybox.model_zoo.architectures import ARCHITECTURES

    if architecture not in ARCHITECTURES:
        raise WhyboxError(
            f"unknown architecture {architecture!r}; use one of {', '.join(ARCHITECTURES)}"
        )
    if module_output not in MODULE_OUTPUTS:
        raise WhyboxError(
            f"unknown module output {module_output!r}; use one of {', '.join(MODULE_OUTPUTS)}"
        )
    metadata = {
        META_ARCHITECTURE: architecture,
        META_CONFIG: json.dumps(config),
        META_MODULE_OUTPUT: module_output,
    }
    if feature_names is not None:
        metadata[META_FEATURE_NAMES] = json.dumps([str(n) for n in feature_names])
    if class_names is not None:
        metadata[META_CLASS_NAMES] = json.dumps([str(n) for n in class_names])
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    raw = save(tensors, metadata=metadata)
    if path is not None:
        Path(path).write_bytes(raw)
    return raw


SAVE_SAFETENSORS = f"{__name__}.{save_safetensors.__name__}"
"""The writer's public path, for messages that tell the user to write a file with it."""


def load_safetensors(file: ModelFile, key: str) -> Model:
    from safetensors.torch import load

    from whybox.model_zoo.architectures import ARCHITECTURES

    size = int.from_bytes(file.raw[:8], "little")
    try:
        header = json.loads(file.raw[8 : 8 + size])
        tensors = load(file.raw)
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise damaged(file, key, exc) from None
    meta = header.get("__metadata__") or {}
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise WhyboxError(
            f"{file.name!r} is a safetensors file without the whybox metadata "
            f"{', '.join(missing)}; "
            f"weights alone do not say how to build the network, so the metadata must name the "
            f"architecture ({', '.join(ARCHITECTURES)}), its config (JSON constructor "
            f"arguments) and the output ({', '.join(MODULE_OUTPUTS)}); write the file with "
            f"{SAVE_SAFETENSORS}"
        )
    architecture, meaning = meta[META_ARCHITECTURE], meta[META_MODULE_OUTPUT]
    if architecture not in ARCHITECTURES:
        raise WhyboxError(
            f"the metadata {META_ARCHITECTURE} is {architecture!r}; whybox builds "
            f"{', '.join(ARCHITECTURES)}"
        )
    if meaning not in MODULE_OUTPUTS:
        raise WhyboxError(
            f"the metadata {META_MODULE_OUTPUT} is {meaning!r}; "
            f"use one of {', '.join(MODULE_OUTPUTS)}"
        )
    config = meta_json(meta, META_CONFIG, dict, "a JSON object of constructor arguments")
    module = _build_architecture(architecture, config, tensors, file.name)
    shape, width = runnable_shape(module, module.input_shape, file.name)
    class_names = None
    if meaning != "value":
        class_names = meta_list(meta, META_CLASS_NAMES, class_count(meaning, width), "classes")
    feature_names = None
    if len(shape) == 1:
        feature_names = meta_list(meta, META_FEATURE_NAMES, shape[0], "features")
    return wrap_torch(
        module,
        shape,
        meaning,
        name=file.name,
        format=key,
        feature_names=feature_names,
        class_names=class_names,
        sha256=file.sha256,
    )


def _build_architecture(
    architecture: str, config: dict[str, Any], tensors: dict[str, torch.Tensor], name: str
) -> torch.nn.Module:
    """The architecture with the file's weights, shapes checked before any memory is allocated."""
    from whybox.model_zoo.architectures import ARCHITECTURES

    build = ARCHITECTURES[architecture]
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build(**config).state_dict().items()}
    except Exception as exc:  # a constructor given the file's config can raise anything
        raise WhyboxError(
            f"the metadata {META_CONFIG} does not fit architecture {architecture!r}: "
            f"{first_line(exc)}"
        ) from None
    given = {k: tuple(v.shape) for k, v in tensors.items()}
    problems = [f"missing {k}" for k in shapes if k not in given]
    problems += [f"unexpected {k}" for k in given if k not in shapes]
    problems += [
        f"{k} is {list(given[k])}, expected {list(shapes[k])}"
        for k in shapes
        if k in given and given[k] != shapes[k]
    ]
    if problems:
        raise WhyboxError(
            f"the tensors in {name!r} do not fit {architecture!r} with config "
            f"{json.dumps(config)}: {listed(problems)}; save the weights and config together "
            f"with {SAVE_SAFETENSORS}"
        )
    module = build(**config)
    module.load_state_dict(tensors, strict=True)
    return module.eval()
