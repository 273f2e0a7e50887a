"""`load_model`: a model file, recognised by its content, as a `Model`.

Safe formats load by default. Formats that can run code when loaded (pickle, joblib, full
torch checkpoints, TorchScript, torch.export archives) load only where the operator has
enabled trusted loading; the uploader never decides that. Each model library is imported
only when a file of its format arrives, so importing model_zoo stays quick.

Each format's loader lives in a module of its own (`boosters`, `sklearn_models`,
`onnx_models`, `safetensors_models`, `trusted`), what they share in `model_file`, and the
child process that first loads an uploaded file in `sandbox`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from whybox.model_zoo.boosters import load_lightgbm, load_xgboost
from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.formats import FORMATS, sniff
from whybox.model_zoo.limits import read_source
from whybox.model_zoo.model import Model, sha256_of
from whybox.model_zoo.model_file import ModelFile, check_input_size
from whybox.model_zoo.onnx_models import load_onnx
from whybox.model_zoo.safetensors_models import SAVE_SAFETENSORS, load_safetensors
from whybox.model_zoo.sandbox import LOAD_CHECK, NATIVE_CHECKED, in_child
from whybox.model_zoo.settings import TRUST_ENV, trusted_loading_enabled
from whybox.model_zoo.sklearn_models import load_skops
from whybox.model_zoo.trusted import load_pickle, load_torch, load_torch_export, load_torchscript

_LOADERS: dict[str, Callable[[ModelFile, str], Model]] = {
    "xgboost-json": load_xgboost,
    "xgboost-ubj": load_xgboost,
    "lightgbm-text": load_lightgbm,
    "skops": load_skops,
    "onnx": load_onnx,
    "safetensors": load_safetensors,
    "pickle": load_pickle,
    "joblib": load_pickle,
    "torch": load_torch,
    "torchscript": load_torchscript,
    "torch-export": load_torch_export,
}


def load_model(
    source: bytes | str | Path,
    name: str | None = None,
    trusted: bool | None = None,
    isolated: bool = True,
) -> Model:
    """Load a model file (a path, or its bytes) as a `Model`, recognising it by content.

    `trusted=None` follows the operator's setting (WHYBOX_TRUST_MODELS); formats that can
    run code when loaded are refused unless trusted. A safe-format file is first loaded in a
    child process under the load limits unless `isolated` is False (whybox's own demos).
    Every problem is a one-line WhyboxError.
    """
    raw, name = read_source(source, name, "model", "model")
    key = sniff(raw, name)
    if trusted is None:
        trusted = trusted_loading_enabled()
    if not FORMATS[key].safe and not trusted:
        raise WhyboxError(_refusal(key, name))
    file = ModelFile(raw, name, sha256_of(raw), isolated)
    if isolated and FORMATS[key].safe and key not in NATIVE_CHECKED:
        in_child(LOAD_CHECK, name, file, key)
    model = _LOADERS[key](file, key)
    if model.modality == "tabular":
        check_input_size(model.input_shape, name)
    return model


def _refusal(key: str, name: str) -> str:
    if key in ("pickle", "joblib"):
        advice = (
            "save scikit-learn models with skops (skops.io.dump), XGBoost with "
            "save_model('model.json'), LightGBM with save_model('model.txt'), torch weights "
            "with safetensors, or export to ONNX"
        )
    else:
        advice = (
            f"save the weights with safetensors ({SAVE_SAFETENSORS} for a "
            "model_zoo architecture) or export the network to ONNX (torch.onnx.export)"
        )
    return (
        f"{name!r} is {FORMATS[key].label}, which can run code when loaded, so it was not "
        f"opened; {advice}; an operator can enable trusted loading with --trust-model or "
        f"{TRUST_ENV}=1"
    )
