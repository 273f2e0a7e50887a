"""The formats that can run code when loaded: pickle and joblib, full torch checkpoints,
TorchScript and torch.export archives. `load_model` reaches these loaders only where the
operator enabled trusted loading; the uploader never decides that."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from whybox.model_zoo.boosters import wrap_lightgbm, wrap_xgboost
from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.formats import FORMATS
from whybox.model_zoo.lazy import LazyModule
from whybox.model_zoo.model import Model
from whybox.model_zoo.model_file import ModelFile, damaged
from whybox.model_zoo.safetensors_models import SAVE_SAFETENSORS
from whybox.model_zoo.sklearn_models import wrap_sklearn
from whybox.model_zoo.wrap import runnable_shape, wrap_torch

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")


def load_pickle(file: ModelFile, key: str) -> Model:
    """Only reached with trusted loading on: unpickling runs whatever code the file names."""
    import joblib

    try:
        obj = joblib.load(io.BytesIO(file.raw))
    except Exception as exc:  # unpickling can raise anything
        raise damaged(file, key, exc) from None
    return _wrap_object(obj, file, key)


def load_torch(file: ModelFile, key: str) -> Model:
    """Only reached with trusted loading on: a full checkpoint unpickles arbitrary objects."""
    try:
        obj = torch.load(io.BytesIO(file.raw), map_location="cpu", weights_only=False)
    except Exception as exc:  # unpickling can raise anything
        raise damaged(file, key, exc) from None
    if isinstance(obj, dict):
        raise WhyboxError(
            f"{file.name!r} holds a state_dict (weights only), not a model; save the weights "
            f"with {SAVE_SAFETENSORS}, or the whole network with torch.save(model)"
        )
    return _wrap_object(obj, file, key)


def load_torchscript(file: ModelFile, key: str) -> Model:
    """Only reached with trusted loading on: TorchScript archives hold code and pickles."""
    try:
        module = torch.jit.load(io.BytesIO(file.raw), map_location="cpu")
    except Exception as exc:  # TorchScript raises its own error types
        raise damaged(file, key, exc) from None
    return _wrap_torch_object(module, file, key)


def load_torch_export(file: ModelFile, key: str) -> Model:
    """Refused even when trusted: an exported program cannot be switched to eval mode."""
    raise WhyboxError(
        f"{file.name!r} is {FORMATS[key].label}, which whybox does not load even when trusted; "
        "export the network to ONNX (torch.onnx.export) or save its weights with safetensors"
    )


def _wrap_object(obj: Any, file: ModelFile, key: str) -> Model:
    """A model object from a trusted pickle or checkpoint, wrapped by what library made it."""
    library = type(obj).__module__.split(".")[0]
    if library == "xgboost":
        import xgboost as xgb

        if isinstance(obj, xgb.XGBModel):
            return wrap_xgboost(obj.get_booster(), file, key)
        if isinstance(obj, xgb.Booster):
            return wrap_xgboost(obj, file, key)
    if library == "lightgbm":
        import lightgbm as lgb

        if isinstance(obj, lgb.LGBMModel):
            classes = getattr(obj, "classes_", None)
            names = [str(c) for c in classes] if classes is not None else None
            return wrap_lightgbm(obj.booster_, file, key, class_names=names)
        if isinstance(obj, lgb.Booster):
            return wrap_lightgbm(obj, file, key)
    if isinstance(obj, torch.nn.Module):
        return _wrap_torch_object(obj, file, key)
    if library == "sklearn":
        return wrap_sklearn(obj, file, key)
    raise WhyboxError(
        f"{file.name!r} holds a {type(obj).__module__}.{type(obj).__qualname__}, which is not "
        "a model whybox can use (scikit-learn, XGBoost, LightGBM or a torch module)"
    )


def _input_shape(module: torch.nn.Module) -> tuple[int, ...] | None:
    """What the network takes: its `input_shape` attribute, else its first layer's inputs.

    A first Linear layer means (features,), a first Conv2d (channels, 0, 0), 0 marking a
    side of size unknown yet (scripted modules keep the class name as original_name).
    """
    declared = getattr(module, "input_shape", None)
    if isinstance(declared, (tuple, list)) and declared:
        return tuple(int(side) for side in declared)
    for sub in module.modules():
        layer = getattr(sub, "original_name", type(sub).__name__)
        if layer == "Linear":
            return (int(sub.weight.shape[1]),)
        if layer == "Conv2d":
            return (int(sub.weight.shape[1]) * int(getattr(sub, "groups", 1)), 0, 0)
    return None


def _wrap_torch_object(module: torch.nn.Module, file: ModelFile, key: str) -> Model:
    """A torch module from a trusted file; one output is a logit only if it says so.

    A single output is read as a regression value unless the module has the attribute
    `whybox_task = "classification"`; several outputs are class logits.
    """
    shape = _input_shape(module)
    if not shape:
        raise WhyboxError(
            f"could not tell what {file.name!r} takes (it has no Linear or Conv2d layer); "
            "save it as safetensors with whybox metadata, or export it to ONNX"
        )
    module.eval()
    shape, width = runnable_shape(module, shape, file.name)
    if width > 1:
        meaning = "logits"
    else:
        meaning = "logit" if getattr(module, "whybox_task", None) == "classification" else "value"
    return wrap_torch(module, shape, meaning, name=file.name, format=key, sha256=file.sha256)
