"""scikit-learn models as `Model`s: skops files, opened only when every type they hold is on
a fixed list of trusted scikit-learn types, and fitted estimators."""

from __future__ import annotations

import importlib
import inspect
import io
import zipfile
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.limits import UNPACKED_MB
from whybox.model_zoo.model import Model
from whybox.model_zoo.model_file import ModelFile, damaged, listed
from whybox.model_zoo.output_space import map_outputs

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


def load_skops(file: ModelFile, key: str) -> Model:
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
        raise damaged(file, key, exc) from None
    refused = sorted(t for t in found if t not in trusted_sklearn_types())
    if refused:
        raise WhyboxError(
            f"{file.name!r} holds type(s) whybox does not trust: {listed(refused)}; only "
            "scikit-learn estimators and their internals load from skops files, so save a "
            "plain scikit-learn model, or export it to ONNX"
        )
    try:
        estimator = sio.loads(file.raw, trusted=found)
    except Exception as exc:  # as above: whatever skops raises, the file is unusable
        raise damaged(file, key, exc) from None
    return wrap_sklearn(estimator, file, key)


def _sklearn_kind(estimator: Any) -> str:
    module, cls = type(estimator).__module__, type(estimator).__name__
    if module.startswith(SKLEARN_TREE_MODULES):
        return "tree"
    if module.startswith("sklearn.linear_model.") or cls in SKLEARN_LINEAR:
        return "linear"
    return "other"


def wrap_sklearn(estimator: Any, file: ModelFile, key: str) -> Model:
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
