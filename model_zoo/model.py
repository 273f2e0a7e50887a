"""`Model`: one wrapper for every model source, with explicit output spaces."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from model_zoo.errors import WhyboxError

OUTPUT_SPACES = ("probability", "margin", "value")
TASKS = ("classification", "regression")
KINDS = ("tree", "linear", "torch", "onnx", "other")
# What a torch module's raw output means, so it can be mapped to every output space.
MODULE_OUTPUTS = ("logit", "logits", "probability", "value")


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def resolve_device(device: str = "auto") -> str:
    """Map `auto` to `cuda` when a GPU is present, else `cpu`; refuse `cuda` without one."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise WhyboxError(
            "--device cuda was asked for but no CUDA GPU is available; use cpu or auto"
        )
    if device not in {"cpu", "cuda"}:
        raise WhyboxError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


class OutputSpaceModule(torch.nn.Module):
    """Wraps a network so that it returns (rows, outputs) in one chosen output space.

    Binary classifiers with one logit give two columns, one per class: in margin space
    (-z, z), in probability space (1 - p, p), so a class index always selects its column.
    """

    def __init__(self, module: torch.nn.Module, module_output: str, output_space: str) -> None:
        super().__init__()
        self.module, self.module_output, self.output_space = module, module_output, output_space

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.module(x)
        if raw.ndim == 1:
            raw = raw.unsqueeze(1)
        raw = raw.reshape(raw.shape[0], -1)
        kind, space = self.module_output, self.output_space
        if kind == "value":
            return raw
        if kind == "logit":
            if space == "margin":
                return torch.cat([-raw, raw], dim=1)
            p = torch.sigmoid(raw)
            return torch.cat([1 - p, p], dim=1)
        if kind == "logits":
            return raw if space == "margin" else torch.softmax(raw, dim=1)
        # probability
        return torch.cat([1 - raw, raw], dim=1) if raw.shape[1] == 1 else raw


def output_spaces_for(module_output: str) -> tuple[str, ...]:
    return {
        "logit": ("probability", "margin"),
        "logits": ("probability", "margin"),
        "probability": ("probability",),
        "value": ("value",),
    }[module_output]


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
    modality: str = "tabular"
    input_shape: tuple[int, ...] = ()
    predict_fn: Callable[[np.ndarray, str], np.ndarray] | None = field(default=None, repr=False)
    module: torch.nn.Module | None = field(default=None, repr=False)
    module_output: str | None = None
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)

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

    def to(self, device: str) -> Model:
        """Move the model's evaluation to `device` (cpu or cuda) where its source allows."""
        device = resolve_device(device)
        if self.module is not None:
            self.module.to(device)
            self.device = device
        return self

    def torch_module(self, output_space: str | None = None) -> torch.nn.Module | None:
        if self.module is None or self.module_output is None:
            return None
        space = self.resolve_output_space(output_space)
        return OutputSpaceModule(self.module, self.module_output, space).eval()

    def predict(
        self, X: np.ndarray | Sequence, output_space: str | None = None, batch_size: int = 65536
    ) -> np.ndarray:
        space = self.resolve_output_space(output_space)
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if self.predict_fn is not None:
            out = np.asarray(self.predict_fn(X, space), dtype=np.float64)
            return out.reshape(len(X), -1)
        module = self.torch_module(space)
        if module is None:
            raise AssertionError("a Model needs predict_fn or a torch module")
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(X), batch_size):
                batch = torch.from_numpy(X[start : start + batch_size].astype(np.float32))
                chunks.append(module(batch.to(self.device)).double().cpu().numpy())
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
            "feature_names": self.feature_names,
            "class_names": self.class_names,
            "output_spaces": list(self.output_spaces),
            "handles_missing": self.handles_missing,
            "sha256": self.sha256,
            "notes": list(self.notes),
        }
