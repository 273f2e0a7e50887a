"""`load_model`: a model file, recognised by its content, as a `Model`.

Safe formats load by default. Formats that can run code when loaded (pickle, joblib, full
torch checkpoints, TorchScript, torch.export archives) load only where the operator has
enabled trusted loading; the uploader never decides that. Each model library is imported
only when a file of its format arrives, so importing model_zoo stays quick.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.formats import FORMATS, first_line, sniff
from whybox.model_zoo.image_data import COLORS
from whybox.model_zoo.lazy import LazyModule
from whybox.model_zoo.limits import (
    COLUMNS,
    LOAD_MEMORY_MB,
    LOAD_SECONDS,
    PIXELS,
    UNPACKED_MB,
    read_source,
)
from whybox.model_zoo.model import TASKS, Model, sha256_of
from whybox.model_zoo.output_space import (
    MODULE_OUTPUTS,
    class_count,
    map_outputs,
    output_spaces_for,
)
from whybox.model_zoo.settings import TRUST_ENV, trusted_loading_enabled
from whybox.model_zoo.wrap import PROBE_SIDE, wrap_torch

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

# Metadata keys that whybox reads from ONNX metadata_props and safetensors headers.
META_ARCHITECTURE = "whybox.architecture"
META_CONFIG = "whybox.config"
META_MODULE_OUTPUT = "whybox.module_output"
META_TASK = "whybox.task"
META_FEATURE_NAMES = "whybox.feature_names"
META_CLASS_NAMES = "whybox.class_names"
SAFETENSORS_REQUIRED = (META_ARCHITECTURE, META_CONFIG, META_MODULE_OUTPUT)
# XGBoost keeps user attributes (booster.set_attr) in its model file; class names go here.
XGBOOST_CLASS_NAMES = "whybox_class_names"

# A model file is first loaded in a child process (stdin: the file; argv[1]: the memory limit,
# argv[2]: the parent's sys.path as JSON, so that the child imports the same code)
# under the operator's limits on time (LOAD_SECONDS) and address space (LOAD_MEMORY_MB), so a
# file that hangs a parser, exhausts memory or crashes a native library costs only that
# child; the server loads the file itself only once the child did. A child that runs out of
# memory says so with OUT_OF_MEMORY on stderr (native libraries print their own words for it,
# matched by MEMORY_WORDS), a refused file with WHYBOX_ERROR and the message.
OUT_OF_MEMORY = "whybox-out-of-memory"
MEMORY_WORDS = "MemoryError|bad_alloc|allocat|out of memory"
WHYBOX_ERROR = "whybox-error: "
CHILD_PRELUDE = rf"""
import json, re, resource, sys

MEMORY_WORDS, OUT_OF_MEMORY, WHYBOX_ERROR = {MEMORY_WORDS!r}, {OUT_OF_MEMORY!r}, {WHYBOX_ERROR!r}

limit, sys.path[:] = int(sys.argv[1]), json.loads(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def out_of_memory(exc):
    while exc is not None:
        text = str(exc)
        if isinstance(exc, MemoryError) or re.search(MEMORY_WORDS, text):
            return True
        exc = exc.__context__
    return False


def report(kind, exc, traceback):
    if out_of_memory(exc):
        sys.stderr.write(OUT_OF_MEMORY + "\n")
    sys.__excepthook__(kind, exc, traceback)


sys.excepthook = report
"""
LOAD_CHECK = (
    CHILD_PRELUDE
    + r"""
from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.loaders import load_model

try:
    load_model(sys.stdin.buffer.read(), name=sys.argv[3], trusted=False, isolated=False)
except WhyboxError as exc:
    if out_of_memory(exc):
        raise
    sys.exit(WHYBOX_ERROR + str(exc))
"""
)
# XGBoost and LightGBM end the whole process (SIGSEGV/SIGABRT) on some malformed files: a
# truncated upload, a tree missing a field or pointing past its nodes, and LightGBM's reader
# can overrun its buffer without crashing. So their child (argv[3]: the library) parses and
# tries the model with the library alone and writes it back in the library's own format;
# only that copy is parsed here.
NATIVE_CHECKED = ("xgboost-json", "xgboost-ubj", "lightgbm-text")
NATIVE_CHECK = (
    CHILD_PRELUDE
    + r"""
# Optional integrations both libraries probe for at import; blocking them makes the child
# start in about half a second instead of two.
blocked = ["sklearn", "pandas", "pyarrow", "polars", "dask", "datatable", "cudf", "cupy"]
sys.modules.update(dict.fromkeys(blocked))

import numpy

library, raw = sys.argv[3], sys.stdin.buffer.read()
if library == "xgboost":
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(bytearray(raw))
    width = booster.num_features()
else:
    import lightgbm

    # The training-parameters block is not needed to predict, and LightGBM's reader of it
    # overruns its buffer on a malformed line, so it is dropped before parsing.
    head, found, rest = raw.decode("utf-8").partition("\nparameters:\n")
    text = head + "\n" + rest.partition("end of parameters\n")[2] if found else head
    booster = lightgbm.Booster(model_str=text)
    width = booster.num_feature()
normal = numpy.random.default_rng(0).normal(size=(16, width))
edges = [numpy.zeros((1, width)), numpy.full((1, width), numpy.nan)]
rows = numpy.vstack([normal, 1e30 * normal, -1e30 * normal, *edges])
if library == "xgboost":
    booster.inplace_predict(rows, predict_type="margin")
    sys.stdout.buffer.write(booster.save_raw("ubj"))
else:
    booster.predict(rows, raw_score=True)
    sys.stdout.buffer.write(booster.model_to_string(num_iteration=-1).encode("utf-8"))
"""
)
CHILD_ENV = {  # a child on the CPU, few threads and malloc arenas: its address space stays small
    "OMP_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
    "CUDA_VISIBLE_DEVICES": "",
}
ONNX_BATCH_BYTES = 64 * 2**20  # input bytes per onnxruntime call
MAX_STATIC_BATCH_BYTES = 4 * ONNX_BATCH_BYTES  # input bytes of one call to a fixed-batch graph
IMAGE_PROBE_SIDES = (224, 64, 32, 28)  # image sizes tried on a network of unknown input size
PROBE_ROWS = 7  # rows of the random batch that checks an ONNX graph converted to torch
CONVERSION_TOLERANCE = 1e-4
# ONNX ops that pass values through unchanged in meaning, skipped when asking what made an output.
ONNX_PASS_THROUGH = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast"}
ONNX_PROBABILITY_TRANSFORMS = {"SOFTMAX", "SOFTMAX_ZERO", "LOGISTIC"}  # ai.onnx.ml post_transform

# scikit-learn internals a fitted estimator holds, beyond the estimators themselves. Every
# class defined in these modules is trusted (they hold data, and run no code of the file's).
SKLEARN_INTERNAL_MODULES = (
    "sklearn._loss._loss",
    "sklearn._loss.link",
    "sklearn._loss.loss",
    "sklearn.ensemble._hist_gradient_boosting.binning",
    "sklearn.ensemble._hist_gradient_boosting.predictor",
    "sklearn.gaussian_process.kernels",
    "sklearn.metrics._dist_metrics",
    "sklearn.neighbors._ball_tree",
    "sklearn.neighbors._kd_tree",
    "sklearn.neural_network._stochastic_optimizers",
    "sklearn.tree._tree",
)
SKLEARN_INTERNAL_TYPES = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.gaussian_process._gpc._BinaryGaussianProcessClassifierLaplace",
    "sklearn.utils._bunch.Bunch",
    "numpy.dtype",
    # HistGradientBoosting with categorical features keeps partial(check_array, ...); skops
    # checks a partial's function and arguments as types of their own.
    "functools.partial",
    "sklearn.utils.validation.check_array",
)
SKLEARN_TREE_MODULES = (
    "sklearn.tree.",
    "sklearn.ensemble._forest",
    "sklearn.ensemble._gb",
    "sklearn.ensemble._hist_gradient_boosting.",
    "sklearn.ensemble._iforest",
)
SKLEARN_LINEAR = ("LinearSVC", "LinearSVR")  # linear models outside sklearn.linear_model
MAX_NAMED = 8


@dataclass(frozen=True)
class _File:
    raw: bytes
    name: str
    sha256: str
    isolated: bool = True  # load it in a child process first (see CHILD_PRELUDE)


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
    file = _File(raw, name, sha256_of(raw), isolated)
    if isolated and FORMATS[key].safe and key not in NATIVE_CHECKED:
        _in_child(LOAD_CHECK, name, file, key)
    model = _LOADERS[key](file, key)
    if model.modality == "tabular":
        _check_input_size(model.input_shape, name)
    return model


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


@cache
def trusted_sklearn_types() -> frozenset[str]:
    """The fixed list of types a skops file may hold: installed scikit-learn's and a few helpers.

    skops trusts its own defaults (containers, numpy arrays, ufuncs) besides these. A type is
    never trusted because a file names it.
    """
    from sklearn.utils import all_estimators

    names = {f"{cls.__module__}.{cls.__qualname__}" for _, cls in all_estimators()}
    for module_name in SKLEARN_INTERNAL_MODULES:
        module = importlib.import_module(module_name)
        names.update(
            f"{cls.__module__}.{cls.__qualname__}"
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if cls.__module__ == module_name
        )
    return frozenset(names | set(SKLEARN_INTERNAL_TYPES))


def _refusal(key: str, name: str) -> str:
    if key in ("pickle", "joblib"):
        advice = (
            "save scikit-learn models with skops (skops.io.dump), XGBoost with "
            "save_model('model.json'), LightGBM with save_model('model.txt'), torch weights "
            "with safetensors, or export to ONNX"
        )
    else:
        advice = (
            "save the weights with safetensors (model_zoo.loaders.save_safetensors for a "
            "model_zoo architecture) or export the network to ONNX (torch.onnx.export)"
        )
    return (
        f"{name!r} is {FORMATS[key].label}, which can run code when loaded, so it was not "
        f"opened; {advice}; an operator can enable trusted loading with --trust-model or "
        f"{TRUST_ENV}=1"
    )


def _damaged(file: _File, key: str, exc: BaseException) -> WhyboxError:
    return WhyboxError(
        f"{file.name!r} looks like {FORMATS[key].label} but could not be read "
        f"({first_line(exc)}); save the model again"
    )


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _meta_list(meta: dict[str, str], key: str, length: int, what: str) -> list[str] | None:
    """A JSON list of `length` names from metadata `key`, None when the key is absent."""
    if key not in meta:
        return None
    try:
        names = json.loads(meta[key])
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list):
        raise WhyboxError(
            f"the metadata {key} must be a JSON list of names; it is {meta[key][:80]!r}"
        )
    if len(names) != length:
        raise WhyboxError(
            f"the metadata {key} names {len(names)} {what} but the model has {length}; "
            "fix the metadata when saving the model"
        )
    return [str(n) for n in names]


def _check_input_size(shape: Sequence[int], name: str) -> None:
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


def _in_child(script: str, argument: str, file: _File, key: str) -> bytes:
    """`script` run on the file in a child process under the load limits: its stdout.

    Any failure there, a hang, exhausted memory or a crash included, is a one-line error.
    """
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-I",  # no environment or current directory on its path: the parent's instead
                "-c",
                script,
                str(LOAD_MEMORY_MB.bytes()),
                json.dumps(sys.path),
                argument,
            ],
            input=file.raw,
            capture_output=True,
            timeout=LOAD_SECONDS.value(),
            env={**os.environ, **CHILD_ENV},
        )
    except subprocess.TimeoutExpired:
        raise WhyboxError(
            f"loading {file.name!r} was stopped after {LOAD_SECONDS.shown()}, the limit set by "
            f"{LOAD_SECONDS.setting}; a file built to hang its parser looks like this, so the "
            "operator should raise the limit only for a model known to be slow to load"
        ) from None
    stderr = result.stderr.decode("utf-8", errors="replace")
    if result.returncode == 0:
        return result.stdout
    refused = [line for line in stderr.splitlines() if line.startswith(WHYBOX_ERROR)]
    if refused:
        raise WhyboxError(refused[-1].removeprefix(WHYBOX_ERROR))
    if OUT_OF_MEMORY in stderr or re.search(MEMORY_WORDS, stderr):
        raise WhyboxError(
            f"loading {file.name!r} needed more memory than the limit of "
            f"{LOAD_MEMORY_MB.shown()} set by {LOAD_MEMORY_MB.setting}; a file built to "
            "exhaust memory looks like this, so raise the limit only for a model known to be big"
        )
    if result.returncode < 0:
        crash = signal.Signals(-result.returncode).name
        reason = f"it is malformed (truncated?) and crashed its parser with {crash}"
    else:
        reason = _child_error(stderr) or "its loader failed"
    raise _damaged(file, key, ValueError(reason))


def _child_error(stderr: str) -> str | None:
    """The message of a failed child: LightGBM's [Fatal] line, else the Python exception's."""
    lines = stderr.strip().splitlines()
    for line in lines:
        if "[Fatal]" in line:
            return line.split("[Fatal]", 1)[1].strip()
    for line in lines:
        found = re.match(r"[\w.]*(?:Error|Exception): (.*)", line)
        if found:
            return found.group(1)
    return lines[-1] if lines else None


# XGBoost ------------------------------------------------------------------------------------


def _load_xgboost(file: _File, key: str) -> Model:
    import xgboost as xgb

    canonical = _in_child(NATIVE_CHECK, "xgboost", file, key) if file.isolated else file.raw
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(canonical))
    except (xgb.core.XGBoostError, UnicodeDecodeError) as exc:  # its error text can be binary
        raise _damaged(file, key, exc) from None
    return _wrap_xgboost(booster, file, key)


def _wrap_xgboost(booster: Any, file: _File, key: str) -> Model:
    learner = json.loads(booster.save_config())["learner"]
    objective = learner["objective"]["name"]
    booster.set_param({"nthread": _cpu_count()})
    if objective in ("binary:logistic", "binary:logitraw"):
        module_output, n_classes = "logit", 2
    elif objective.startswith("multi:"):
        module_output = "logits"
        n_classes = int(learner["learner_model_param"]["num_class"])
    else:
        module_output, n_classes = "value", 0
    class_names = None
    if n_classes:
        named = _meta_list(booster.attributes(), XGBOOST_CLASS_NAMES, n_classes, "classes")
        class_names = named or [str(i) for i in range(n_classes)]

    def predict(X: np.ndarray, space: str) -> np.ndarray:
        X = np.ascontiguousarray(X)
        if module_output == "value":
            return booster.inplace_predict(X, predict_type="value")
        return map_outputs(booster.inplace_predict(X, predict_type="margin"), module_output, space)

    return Model(
        name=file.name,
        format=key,
        kind="tree",
        task="classification" if n_classes else "regression",
        n_features=booster.num_features(),
        feature_names=list(booster.feature_names) if booster.feature_names else None,
        class_names=class_names,
        output_spaces=output_spaces_for(module_output),
        sha256=file.sha256,
        native=booster,
        handles_missing=True,
        predict_fn=predict,
    )


# LightGBM -----------------------------------------------------------------------------------


def _load_lightgbm(file: _File, key: str) -> Model:
    import lightgbm as lgb

    canonical = _in_child(NATIVE_CHECK, "lightgbm", file, key) if file.isolated else file.raw
    try:
        booster = lgb.Booster(model_str=canonical.decode("utf-8"))
    except (UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
        raise _damaged(file, key, exc) from None
    return _wrap_lightgbm(booster, file, key)


def _wrap_lightgbm(
    booster: Any, file: _File, key: str, class_names: list[str] | None = None
) -> Model:
    """Margin from raw scores; probability and value from LightGBM's own transform."""
    dump = booster.dump_model(num_iteration=1)  # the header only costs one iteration's trees
    objective = str(dump.get("objective", "")).split(" ")[0]
    if objective == "binary":
        module_output, n_classes = "logit", 2
    elif objective.startswith("multiclass"):
        module_output, n_classes = "logits", int(dump["num_class"])
    else:
        module_output, n_classes = "value", 0
    names = list(booster.feature_name())
    unnamed = names == [f"Column_{i}" for i in range(len(names))]

    def predict(X: np.ndarray, space: str) -> np.ndarray:
        if space == "margin":
            return map_outputs(booster.predict(X, raw_score=True), module_output, space)
        transformed = booster.predict(X)
        return map_outputs(transformed, "probability" if n_classes else "value", space)

    return Model(
        name=file.name,
        format=key,
        kind="tree",
        task="classification" if n_classes else "regression",
        n_features=booster.num_feature(),
        feature_names=None if unnamed else names,
        class_names=(class_names or [str(i) for i in range(n_classes)]) if n_classes else None,
        output_spaces=output_spaces_for(module_output),
        sha256=file.sha256,
        native=booster,
        handles_missing=True,
        predict_fn=predict,
    )


# scikit-learn -------------------------------------------------------------------------------


def _load_skops(file: _File, key: str) -> Model:
    import skops.io as sio

    with zipfile.ZipFile(io.BytesIO(file.raw)) as archive:  # sniffing read it already
        size = sum(info.file_size for info in archive.infolist())
    if size > UNPACKED_MB.bytes():
        raise UNPACKED_MB.exceeded(
            f"{file.name!r} unpacks to {size / 2**20:,.0f} MB", "save a smaller model"
        )
    try:
        found = sio.get_untrusted_types(data=file.raw)
    except Exception as exc:  # skops raises many types for damaged schemas
        raise _damaged(file, key, exc) from None
    refused = sorted(t for t in found if t not in trusted_sklearn_types())
    if refused:
        raise WhyboxError(
            f"{file.name!r} holds type(s) whybox does not trust: {_names(refused)}; only "
            "scikit-learn estimators and their internals load from skops files, so save a "
            "plain scikit-learn model, or export it to ONNX"
        )
    try:
        estimator = sio.loads(file.raw, trusted=found)
    except Exception as exc:  # as above: whatever skops raises, the file is unusable
        raise _damaged(file, key, exc) from None
    return _wrap_sklearn(estimator, file, key)


def _sklearn_kind(estimator: Any) -> str:
    module, cls = type(estimator).__module__, type(estimator).__name__
    if module.startswith(SKLEARN_TREE_MODULES):
        return "tree"
    if module.startswith("sklearn.linear_model.") or cls in SKLEARN_LINEAR:
        return "linear"
    return "other"


def _wrap_sklearn(estimator: Any, file: _File, key: str) -> Model:
    kind_name = type(estimator).__name__
    if not hasattr(estimator, "predict"):
        raise WhyboxError(f"{file.name!r} holds a {kind_name}, not a fitted scikit-learn model")
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is None:
        raise WhyboxError(f"the {kind_name} in {file.name!r} is not fitted; fit it before saving")
    names = getattr(estimator, "feature_names_in_", None)
    feature_names = [str(n) for n in names] if names is not None else None
    classes = getattr(estimator, "classes_", None)
    spaces = tuple(
        space
        for space, method in (("probability", "predict_proba"), ("margin", "decision_function"))
        if classes is not None and hasattr(estimator, method)
    )
    if classes is not None and not spaces:
        raise WhyboxError(
            f"the {kind_name} in {file.name!r} has neither predict_proba nor decision_function, "
            "so its scores cannot be explained; use a classifier that has one"
        )

    def frame(X: np.ndarray) -> np.ndarray | pd.DataFrame:
        return pd.DataFrame(X, columns=feature_names) if feature_names else X

    def predict(X: np.ndarray, space: str) -> np.ndarray:
        if space == "value":
            return estimator.predict(frame(X))
        if space == "probability":
            return estimator.predict_proba(frame(X))
        margin = np.asarray(estimator.decision_function(frame(X)))
        return map_outputs(margin, "logit" if margin.ndim == 1 else "logits", space)

    return Model(
        name=file.name,
        format=key,
        kind=_sklearn_kind(estimator),
        task="classification" if classes is not None else "regression",
        n_features=int(n_features),
        feature_names=feature_names,
        class_names=[str(c) for c in classes] if classes is not None else None,
        output_spaces=spaces or ("value",),
        sha256=file.sha256,
        native=estimator,
        handles_missing=kind_name.startswith("HistGradientBoosting"),
        predict_fn=predict,
    )


# ONNX ---------------------------------------------------------------------------------------


def _onnx_tensors(proto: Any) -> Iterator[Any]:
    """Every tensor an ONNX model stores: initializers, constants, subgraphs', functions'."""

    def in_nodes(nodes: Sequence[Any]) -> Iterator[Any]:
        for node in nodes:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                for sparse in [attr.sparse_tensor, *attr.sparse_tensors]:
                    yield from (sparse.values, sparse.indices)
                for graph in [attr.g, *attr.graphs]:
                    yield from in_graph(graph)

    def in_graph(graph: Any) -> Iterator[Any]:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
        yield from in_nodes(graph.node)

    yield from in_graph(proto.graph)
    for function in proto.functions:
        yield from in_nodes(function.node)


def _probability_like(graph: Any, output: str) -> bool:
    """Whether the graph makes `output` with a Softmax/Sigmoid (or names it a probability)."""
    if "prob" in output.lower():
        return True
    producers = {out: node for node in graph.node for out in node.output}
    node = producers.get(output)
    while node is not None and node.op_type in ONNX_PASS_THROUGH and node.input:
        node = producers.get(node.input[0])
    if node is None:
        return False
    if node.op_type in ("Softmax", "Sigmoid"):
        return True
    return any(
        a.name == "post_transform" and a.s.decode() in ONNX_PROBABILITY_TRANSFORMS
        for a in node.attribute
    )


def _onnx_meaning(
    meta: dict[str, str], width: int, probability_like: bool, name: str
) -> tuple[str, list[str]]:
    """What the chosen output means (a MODULE_OUTPUTS value) and notes on how that was decided."""
    task, declared = meta.get(META_TASK), meta.get(META_MODULE_OUTPUT)
    if task is not None and task not in TASKS:
        raise WhyboxError(f"the metadata {META_TASK} is {task!r}; use one of {', '.join(TASKS)}")
    if declared is not None and declared not in MODULE_OUTPUTS:
        raise WhyboxError(
            f"the metadata {META_MODULE_OUTPUT} is {declared!r}; "
            f"use one of {', '.join(MODULE_OUTPUTS)}"
        )
    notes: list[str] = []
    if declared is not None:
        meaning = declared
    elif task == "regression" or (task is None and width == 1):
        meaning = "value"
        if task is None and probability_like:
            notes.append(
                "the single output looks like a probability but is read as a regression value; "
                f"set the ONNX metadata {META_TASK}=classification if it is a class probability"
            )
    elif probability_like:
        meaning = "probability"
    else:
        meaning = "logit" if width == 1 else "logits"
    if declared is None and task is None:
        notes.append(f"no whybox metadata in the ONNX file; its output was read as {meaning}")
    if (meaning == "logit" and width != 1) or (meaning == "logits" and width < 2):
        raise WhyboxError(
            f"{name!r} declares its output as {meaning} but the output has {width} column(s); "
            f"fix the metadata {META_MODULE_OUTPUT}"
        )
    if task is not None and (task == "regression") != (meaning == "value"):
        raise WhyboxError(
            f"{name!r} declares task {task} but output {meaning}; fix the whybox metadata"
        )
    return meaning, notes


def _load_onnx(file: _File, key: str) -> Model:
    import onnx
    import onnxruntime as ort

    try:
        proto = onnx.load_from_string(file.raw)
    except Exception as exc:  # protobuf's DecodeError and onnx's own errors
        raise _damaged(file, key, exc) from None
    external = [t.name or "(unnamed)" for t in _onnx_tensors(proto) if _is_external(t)]
    if external:
        raise WhyboxError(
            f"{file.name!r} keeps tensor(s) {_names(external)} in external data files, which "
            "whybox never reads; save the model as a single file "
            "(onnx.save_model(model, path, save_as_external_data=False))"
        )
    graph = proto.graph
    stored = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in stored]
    dims = inputs[0].type.tensor_type.shape.dim if len(inputs) == 1 else []
    if len(dims) not in (2, 4):
        raise WhyboxError(
            f"{file.name!r} is an ONNX model with {len(inputs)} input(s) of another shape; whybox "
            "explains models with one float input of (rows, features) or (images, C, H, W)"
        )
    input_shape = tuple(d.dim_value for d in dims[1:])
    static_batch = dims[0].dim_value
    if min(static_batch, *input_shape) < 0:
        raise WhyboxError(f"{file.name!r} declares a negative input size; export it again")
    _check_input_size(input_shape, file.name)
    batch_bytes = static_batch * math.prod(side or PROBE_SIDE for side in input_shape) * 4
    if batch_bytes > MAX_STATIC_BATCH_BYTES:
        raise WhyboxError(
            f"{file.name!r} has a fixed batch of {static_batch:,} inputs "
            f"({batch_bytes / 2**20:,.0f} MiB per call); export it with a dynamic batch "
            "dimension (torch.onnx.export(..., dynamic_axes=...))"
        )
    dtype = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64}.get(
        inputs[0].type.tensor_type.elem_type
    )
    if not input_shape[0] or dtype is None:
        raise WhyboxError(
            f"{file.name!r} needs a float input with a fixed number of "
            f"{'features' if len(dims) == 2 else 'channels'}; export it with that dimension "
            "fixed and a float32 input"
        )
    try:
        session = ort.InferenceSession(file.raw, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise _damaged(file, key, exc) from None
    output = _onnx_output(session, file.name)
    output_index = [o.name for o in graph.output].index(output)
    run = _onnx_runner(session, inputs[0].name, output, dtype, static_batch)
    probe_shape = (static_batch or PROBE_ROWS, *(side or PROBE_SIDE for side in input_shape))
    rng = np.random.default_rng(0)
    probe = rng.normal(size=probe_shape) if len(dims) == 2 else rng.uniform(size=probe_shape)
    try:
        expected = run(probe).reshape(len(probe), -1)
    except Exception as exc:  # onnxruntime errors on graphs it cannot run
        raise WhyboxError(f"onnxruntime could not run {file.name!r}: {first_line(exc)}") from None
    width = expected.shape[1]
    meta = {p.key: p.value for p in proto.metadata_props}
    meaning, notes = _onnx_meaning(meta, width, _probability_like(graph, output), file.name)
    task = "regression" if meaning == "value" else "classification"
    n_classes = class_count(meaning, width)
    class_names = _meta_list(meta, META_CLASS_NAMES, n_classes, "classes")
    if task == "classification" and class_names is None:
        class_names = [str(i) for i in range(n_classes)]
    module, failure = _onnx_to_torch(proto, output_index, probe, expected, dtype)
    if failure:
        notes.append(f"gradient methods are unavailable for this ONNX model: {failure}")

    def predict(X: np.ndarray, space: str) -> np.ndarray:
        if len(X) == 0:
            return np.empty((0, len(class_names) if class_names else width))
        return map_outputs(run(X), meaning, space)

    image = len(dims) == 4
    n_features = int(np.prod(input_shape))
    return Model(
        name=file.name,
        format=key,
        kind="onnx",
        task=task,
        n_features=n_features,
        modality="image" if image else "tabular",
        input_shape=input_shape,
        feature_names=None
        if image
        else _meta_list(meta, META_FEATURE_NAMES, n_features, "features"),
        class_names=class_names,
        output_spaces=output_spaces_for(meaning),
        sha256=file.sha256,
        native=session,
        predict_fn=None if module is not None else predict,
        module=module,
        module_output=meaning if module is not None else None,
        notes=notes,
    )


def _is_external(tensor: Any) -> bool:
    from onnx import TensorProto

    return tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _onnx_output(session: Any, name: str) -> str:
    """The output to explain: a float tensor, preferring one named like a probability."""
    outputs = session.get_outputs()
    for out in outputs:
        if "prob" in out.name.lower() and not out.type.startswith("tensor("):
            raise WhyboxError(
                f"{name!r} gives its probabilities as a ZipMap (a list of dicts); export the "
                "classifier with zipmap disabled (skl2onnx: options={'zipmap': False})"
            )
    floats = [o for o in outputs if o.type in ("tensor(float)", "tensor(double)")]
    if not floats:
        raise WhyboxError(f"{name!r} has no float tensor output to explain")
    return next((o.name for o in floats if "prob" in o.name.lower()), floats[0].name)


def _onnx_runner(
    session: Any, input_name: str, output: str, dtype: type, static_batch: int
) -> Callable[[np.ndarray], np.ndarray]:
    """Evaluate in large batches; a graph with a fixed batch size gets padded batches of it."""

    def run(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=dtype)
        step = static_batch or max(1, ONNX_BATCH_BYTES // (4 * int(np.prod(X.shape[1:]))))
        chunks = []
        for start in range(0, len(X), step):
            chunk = X[start : start + step]
            rows = len(chunk)
            if static_batch and rows < step:
                padding = np.zeros((step - rows, *X.shape[1:]), dtype=dtype)
                chunk = np.concatenate([chunk, padding])
            out = session.run([output], {input_name: np.ascontiguousarray(chunk)})[0]
            chunks.append(np.asarray(out).reshape(len(chunk), -1)[:rows])
        return np.concatenate(chunks)

    return run


def _onnx_to_torch(
    proto: Any, index: int, probe: np.ndarray, expected: np.ndarray, dtype: type
) -> tuple[torch.nn.Module | None, str | None]:
    """A torch module equal to the graph on a random batch, or None and the reason.

    `probe` is a batch of the graph's one input, of any rank ((rows, features), (n, C, H, W)).
    """
    if dtype is not np.float32:
        return None, "its input is float64; export it with a float32 input"
    from whybox.model_zoo.modules import OnnxOutput
    from whybox.model_zoo.onnx_torch import UnsupportedGraph, convert

    try:
        module = OnnxOutput(convert(proto), index).eval()
        with torch.no_grad():
            got = module(torch.from_numpy(np.ascontiguousarray(probe, dtype=np.float32)))
        got = got.double().numpy().reshape(expected.shape)
    except UnsupportedGraph as exc:
        return None, f"whybox cannot convert the graph to torch ({exc})"
    except Exception as exc:  # an op torch rejects for this graph's shapes or attributes
        return None, f"the graph could not run as torch ({first_line(exc)})"
    close = np.allclose(
        got, expected, rtol=CONVERSION_TOLERANCE, atol=CONVERSION_TOLERANCE, equal_nan=True
    )
    if not close:
        gap = float(np.nanmax(np.abs(got - expected)))
        return None, f"the graph converted to torch differs from onnxruntime by up to {gap:.3g}"
    return module, None


# safetensors --------------------------------------------------------------------------------


def _load_safetensors(file: _File, key: str) -> Model:
    from safetensors.torch import load

    from whybox.model_zoo.architectures import ARCHITECTURES

    size = int.from_bytes(file.raw[:8], "little")
    try:
        header = json.loads(file.raw[8 : 8 + size])
        tensors = load(file.raw)
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise _damaged(file, key, exc) from None
    meta = header.get("__metadata__") or {}
    missing = [k for k in SAFETENSORS_REQUIRED if k not in meta]
    if missing:
        raise WhyboxError(
            f"{file.name!r} is a safetensors file without the whybox metadata "
            f"{', '.join(missing)}; "
            f"weights alone do not say how to build the network, so the metadata must name the "
            f"architecture ({', '.join(ARCHITECTURES)}), its config (JSON constructor "
            f"arguments) and the output ({', '.join(MODULE_OUTPUTS)}); write the file with "
            "whybox.model_zoo.loaders.save_safetensors"
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
    try:
        config = json.loads(meta[META_CONFIG])
    except json.JSONDecodeError:
        config = None
    if not isinstance(config, dict):
        raise WhyboxError(
            f"the metadata {META_CONFIG} must be a JSON object of constructor arguments"
        )
    module = _build_architecture(architecture, config, tensors, file.name)
    shape, width = _runnable_shape(module, module.input_shape, file.name)
    class_names = None
    if meaning != "value":
        class_names = _meta_list(meta, META_CLASS_NAMES, class_count(meaning, width), "classes")
    feature_names = None
    if len(shape) == 1:
        feature_names = _meta_list(meta, META_FEATURE_NAMES, shape[0], "features")
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
            f"{json.dumps(config)}: {_names(problems)}; save the weights and config together "
            "with model_zoo.loaders.save_safetensors"
        )
    module = build(**config)
    module.load_state_dict(tensors, strict=True)
    return module.eval()


# Trusted formats ----------------------------------------------------------------------------


def _load_pickle(file: _File, key: str) -> Model:
    """Only reached with trusted loading on: unpickling runs whatever code the file names."""
    import joblib

    try:
        obj = joblib.load(io.BytesIO(file.raw))
    except Exception as exc:  # unpickling can raise anything
        raise _damaged(file, key, exc) from None
    return _wrap_object(obj, file, key)


def _load_torch(file: _File, key: str) -> Model:
    """Only reached with trusted loading on: a full checkpoint unpickles arbitrary objects."""
    try:
        obj = torch.load(io.BytesIO(file.raw), map_location="cpu", weights_only=False)
    except Exception as exc:  # unpickling can raise anything
        raise _damaged(file, key, exc) from None
    if isinstance(obj, dict):
        raise WhyboxError(
            f"{file.name!r} holds a state_dict (weights only), not a model; save the weights "
            "with model_zoo.loaders.save_safetensors, or the whole network with torch.save(model)"
        )
    return _wrap_object(obj, file, key)


def _load_torchscript(file: _File, key: str) -> Model:
    """Only reached with trusted loading on: TorchScript archives hold code and pickles."""
    try:
        module = torch.jit.load(io.BytesIO(file.raw), map_location="cpu")
    except Exception as exc:  # TorchScript raises its own error types
        raise _damaged(file, key, exc) from None
    return _wrap_torch_object(module, file, key)


def _load_torch_export(file: _File, key: str) -> Model:
    """Refused even when trusted: an exported program cannot be switched to eval mode."""
    raise WhyboxError(
        f"{file.name!r} is {FORMATS[key].label}, which whybox does not load even when trusted; "
        "export the network to ONNX (torch.onnx.export) or save its weights with safetensors"
    )


def _wrap_object(obj: Any, file: _File, key: str) -> Model:
    """A model object from a trusted pickle or checkpoint, wrapped by what library made it."""
    library = type(obj).__module__.split(".")[0]
    if library == "xgboost":
        import xgboost as xgb

        if isinstance(obj, xgb.XGBModel):
            return _wrap_xgboost(obj.get_booster(), file, key)
        if isinstance(obj, xgb.Booster):
            return _wrap_xgboost(obj, file, key)
    if library == "lightgbm":
        import lightgbm as lgb

        if isinstance(obj, lgb.LGBMModel):
            classes = getattr(obj, "classes_", None)
            names = [str(c) for c in classes] if classes is not None else None
            return _wrap_lightgbm(obj.booster_, file, key, class_names=names)
        if isinstance(obj, lgb.Booster):
            return _wrap_lightgbm(obj, file, key)
    if isinstance(obj, torch.nn.Module):
        return _wrap_torch_object(obj, file, key)
    if library == "sklearn":
        return _wrap_sklearn(obj, file, key)
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


def _runnable_shape(
    module: torch.nn.Module, shape: tuple[int, ...], name: str
) -> tuple[tuple[int, ...], int]:
    """The input shape the network runs on, and its output width.

    Image sides left open (0) are tried at several sizes: a network that runs on all of
    them takes any size, one that runs on one size only is fixed to it.
    """
    _check_input_size(shape, name)
    candidates = [shape]
    if not all(shape):
        candidates = [tuple(s or side for s in shape) for side in IMAGE_PROBE_SIDES]
    widths: dict[tuple[int, ...], int] = {}
    failure = ""
    for candidate in candidates:
        try:
            with torch.inference_mode():
                widths[candidate] = module(torch.zeros(1, *candidate)).reshape(1, -1).shape[1]
        except Exception as exc:  # a user's network can raise anything
            failure = first_line(exc)
    if not widths:
        what = (
            f"one row of {shape[0]} features"
            if len(shape) == 1
            else f"{shape[0]}-channel images of {' or '.join(f'{c[1]}x{c[2]}' for c in candidates)}"
        )
        raise WhyboxError(
            f"{name!r} could not run on {what} ({failure}); whybox explains networks that take "
            "(rows, features) or (images, channels, height, width) input"
        )
    if len(widths) == len(candidates):
        return shape, next(iter(widths.values()))
    return next(iter(widths.items()))


def _wrap_torch_object(module: torch.nn.Module, file: _File, key: str) -> Model:
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
    shape, width = _runnable_shape(module, shape, file.name)
    if width > 1:
        meaning = "logits"
    else:
        meaning = "logit" if getattr(module, "whybox_task", None) == "classification" else "value"
    return wrap_torch(module, shape, meaning, name=file.name, format=key, sha256=file.sha256)


_LOADERS: dict[str, Callable[[_File, str], Model]] = {
    "xgboost-json": _load_xgboost,
    "xgboost-ubj": _load_xgboost,
    "lightgbm-text": _load_lightgbm,
    "skops": _load_skops,
    "onnx": _load_onnx,
    "safetensors": _load_safetensors,
    "pickle": _load_pickle,
    "joblib": _load_pickle,
    "torch": _load_torch,
    "torchscript": _load_torchscript,
    "torch-export": _load_torch_export,
}
