"""`Model`: one wrapper for every model source, with explicit output spaces."""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from whybox.model_zoo.chunks import PREDICT_BATCH_BYTES, chunk_slices, rows_per_chunk
from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.lazy import LazyModule

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

TASKS = ("classification", "regression")
KINDS = ("tree", "linear", "torch", "onnx", "other")
MODALITIES = ("tabular", "image")


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file (`sha256_of` its bytes), read a block at a time."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def resolve_device(device: str = "auto") -> str:
    """Map `auto` to `cuda` when a GPU is present, else `cpu`; refuse `cuda` without one."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise WhyboxError(
            "--device cuda was asked for but no CUDA GPU is available; use cpu or auto"
        )
    if device not in {"cpu", "cuda"}:
        raise WhyboxError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


NVIDIA_DEVICES = ("/dev/nvidiactl", "/dev/dxg")
"""On Linux, an NVIDIA driver's device files (/dev/dxg: WSL's); CUDA needs one of them."""


def cuda_available() -> bool:
    """torch's answer, asked only where a CUDA GPU can be: importing torch to learn that a
    Linux machine without an NVIDIA driver has none costs a process 180 MB and a second
    (a job worker explaining trees need not import it at all)."""
    if sys.platform.startswith("linux") and not any(map(os.path.exists, NVIDIA_DEVICES)):
        return False
    return torch.cuda.is_available()


def normalize_images(images: Any, normalization: tuple[Sequence[float], Sequence[float]]) -> Any:
    """(images - mean) / std per channel of (n, C, H, W) images: a numpy array in float64,
    a torch tensor in its own dtype and on its device (differentiably)."""
    mean, std = normalization
    if isinstance(images, np.ndarray):
        mean, std = (np.asarray(v, dtype=np.float64).reshape(1, -1, 1, 1) for v in (mean, std))
    else:
        mean, std = (
            torch.as_tensor(v, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
            for v in (mean, std)
        )
    return (images - mean) / std


@dataclass
class Model:
    """A loaded model, whatever its source.

    `predict(X, output_space)` returns float64 (rows, outputs): one column per class for
    classifiers (binary included), one per target for regressors. `torch_module()` gives a
    differentiable module with the same contract, or None where the model has none.
    """

    name: str
    format: str
    kind: str
    task: str
    n_features: int
    feature_names: list[str] | None
    class_names: list[str] | None
    output_spaces: tuple[str, ...]
    sha256: str
    native: Any = field(repr=False)
    handles_missing: bool = False
    """Whether every feature takes missing values (NaN)."""
    missing_features: tuple[str, ...] = ()
    """The features that take missing values where not all do (a pipeline imputing some)."""
    categories: dict[str, list[str]] = field(default_factory=dict)
    """Categorical features: their category names in code order. `predict` takes them as
    float codes (see `model_zoo.categories`); a code beyond the list is a category the model
    never saw."""
    unseen: dict[str, str | None] = field(default_factory=dict)
    """Per categorical feature, what the model makes of a category it never saw (a phrase
    for the data's notes), or None where it refuses one."""
    modality: str = "tabular"
    input_shape: tuple[int, ...] = ()
    predict_fn: Callable[[np.ndarray, str], np.ndarray] | None = field(default=None, repr=False)
    module: torch.nn.Module | None = field(default=None, repr=False)
    module_output: str | None = None
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    """Per-channel (mean, std) the image model expects its [0, 1] inputs normalised by."""
    output_modules: dict[str, torch.nn.Module] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """`torch_module`'s wrappers, one per output space: the same object each time, so what
    is measured on it (the memory probes) is measured once."""

    def __post_init__(self) -> None:
        if not self.input_shape:
            self.input_shape = (self.n_features,)
        if self.module is not None:
            self.module.eval()

    @property
    def n_outputs(self) -> int:
        return len(self.class_names) if self.task == "classification" else 1

    @property
    def output_names(self) -> list[str]:
        return list(self.class_names) if self.task == "classification" else ["value"]

    @property
    def default_output_space(self) -> str:
        """Log-odds for classifiers where the model has them (additive, the SHAP custom)."""
        for space in ("margin", "probability", "value"):
            if space in self.output_spaces:
                return space
        raise AssertionError("a model always has an output space")

    def takes_missing(self, feature: str) -> bool:
        return self.handles_missing or feature in self.missing_features

    def resolve_output_space(self, requested: str | None) -> str:
        if requested in (None, "", "auto"):
            return self.default_output_space
        if requested not in self.output_spaces:
            raise WhyboxError(
                f"output space {requested!r} is not available for this {self.format} model; "
                f"it offers {', '.join(self.output_spaces)}"
            )
        return requested

    def resolve_target(self, target: str | int | None) -> int | None:
        """Map a class name or index to an output column; None means 'the predicted class'.

        Binary classifiers default to the second (positive) class; regressors to output 0.
        """
        if self.task != "classification":
            if target not in (None, 0, "0", "value"):
                raise WhyboxError(f"--target {target} given for a regression model; leave it out")
            return 0
        names = self.output_names
        if target is None:
            return 1 if len(names) == 2 else None
        if str(target) in names:
            return names.index(str(target))
        if isinstance(target, int) or str(target).lstrip("-").isdigit():
            index = int(target)
            if 0 <= index < len(names):
                return index
        raise WhyboxError(
            f"unknown target class {target!r}; the model's classes are {', '.join(names)}"
        )

    def normalized(self, mean: Sequence[float] | None, std: Sequence[float] | None) -> Model:
        """This image model fed (x - mean) / std: the images stay in [0, 1] pixel units.

        The copy shares the network; a missing mean is 0 and a missing std is 1.
        """
        if mean is None and std is None:
            return self
        if self.modality != "image":
            raise WhyboxError("--mean and --std apply to image models only")
        channels = self.input_shape[0]
        mean, std = (
            tuple(float(v) for v in (values if values is not None else [default] * channels))
            for values, default in ((mean, 0.0), (std, 1.0))
        )
        base = self.predict_fn
        predict_fn = None
        if base is not None:

            def predict_fn(X: np.ndarray, space: str) -> np.ndarray:
                return base(normalize_images(X, (mean, std)), space)

        return replace(
            self, normalization=(mean, std), predict_fn=predict_fn, notes=list(self.notes)
        )

    def to(self, device: str) -> Model:
        """Move the model's evaluation to `device` (cpu or cuda) where its source allows:
        a network; trees, scikit-learn and ONNX graphs stay where they evaluate (and torch
        is not imported for them)."""
        if self.module is not None:
            device = resolve_device(device)
            self.module.to(device)
            self.device = device
        return self

    def torch_module(self, output_space: str | None = None) -> torch.nn.Module | None:
        """The differentiable network in `output_space`, or None where the model has none
        (trees, scikit-learn, ONNX graphs that cannot be converted).

        It takes float32 tensors on `self.device`, rows (n, features) or images
        (n, C, H, W) in [0, 1] (normalised inside where the model expects it), and returns
        (n, outputs) like `predict`; gradients flow to its input. The same module is
        returned each time for a space; do not change its parameters.
        """
        if self.module is None or self.module_output is None:
            return None
        from whybox.model_zoo.modules import OutputSpaceModule

        space = self.resolve_output_space(output_space)
        if space not in self.output_modules:
            self.output_modules[space] = OutputSpaceModule(
                self.module, self.module_output, space, self.normalization
            ).eval()
        return self.output_modules[space]

    def predict(
        self,
        X: np.ndarray | Sequence,
        output_space: str | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Outputs for rows (tabular, float64) or images (float32 (n, C, H, W) in [0, 1]).

        Returns float64 (rows, outputs): one column per class for classifiers (binary ones
        too), one per target for regressors, in `output_space` ('probability', 'margin' or
        'value'; None or 'auto' for the model's default). A single row may be given 1-D.
        The rows are evaluated `batch_size` at a time, by default as many as fit in
        PREDICT_BATCH_BYTES of the input the model is given, so a caller (an explainer too)
        may pass all its rows at once.
        """
        space = self.resolve_output_space(output_space)
        X = np.asarray(X, dtype=np.float32 if self.modality == "image" else np.float64)
        if X.ndim == 1:
            X = X[None, :]
        module = None if self.predict_fn is not None else self.torch_module(space)
        if self.predict_fn is None and module is None:
            raise AssertionError("a Model needs predict_fn or a torch module")
        itemsize = X.itemsize if module is None else 4  # a network is given float32
        step = batch_size or rows_per_chunk(itemsize * math.prod(X.shape[1:]), PREDICT_BATCH_BYTES)
        chunks = []
        for rows in chunk_slices(len(X), step):
            if module is None:
                out = np.asarray(self.predict_fn(X[rows], space), dtype=np.float64)
            else:
                with torch.inference_mode():
                    # A writable float32 batch: the rows may be a read-only view of the data.
                    batch = torch.from_numpy(np.require(X[rows], np.float32, "W"))
                    out = module(batch.to(self.device)).double().cpu().numpy()
            chunks.append(out.reshape(rows.stop - rows.start, -1))
        return np.concatenate(chunks) if chunks else np.empty((0, self.n_outputs))

    def summary(self) -> dict[str, Any]:
        """What the UI, the CLI and the report show about the model."""
        return {
            "name": self.name,
            "format": self.format,
            "kind": self.kind,
            "task": self.task,
            "modality": self.modality,
            "n_features": self.n_features,
            "input_shape": list(self.input_shape),
            "normalization": None
            if self.normalization is None
            else {"mean": list(self.normalization[0]), "std": list(self.normalization[1])},
            "feature_names": self.feature_names,
            "class_names": self.class_names,
            "output_spaces": list(self.output_spaces),
            "handles_missing": self.handles_missing,
            "missing_features": list(self.missing_features),
            "categories": {name: list(names) for name, names in self.categories.items()},
            "unseen": dict(self.unseen),
            "sha256": self.sha256,
            "notes": list(self.notes),
        }
