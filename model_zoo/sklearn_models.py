"""scikit-learn models as `Model`s: skops files, opened only when every type they hold is on
a fixed list of trusted scikit-learn types, and fitted estimators."""

from __future__ import annotations

import importlib
import inspect
import io
import warnings
import zipfile
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from whybox.model_zoo.categories import decode
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
    # ColumnTransformer(..., make_column_selector(dtype_include="object")): holds a pattern
    # and dtypes, and selects columns by them.
    "sklearn.compose._column_transformer.make_column_selector",
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


def final_estimator(estimator: Any) -> Any:
    """The model at the end of a pipeline (the estimator itself otherwise)."""
    from sklearn.pipeline import Pipeline

    return final_estimator(estimator.steps[-1][1]) if isinstance(estimator, Pipeline) else estimator


def _selected(columns: list[str], selected: Any) -> list[str]:
    """The input columns a ColumnTransformer's entry names (names, positions, a slice or mask)."""
    if isinstance(selected, slice) or np.asarray(selected).dtype == bool:
        return [str(c) for c in np.asarray(columns, dtype=object)[selected]]
    items = [selected] if np.isscalar(selected) else list(selected)
    return [columns[i] if isinstance(i, (int, np.integer)) else str(i) for i in items]


def _input_encoders(step: Any, columns: list[str]) -> Iterator[tuple[Any, list[str]]]:
    """The encoders that see the model's input columns as given (past imputers only), each
    with the columns it encodes."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, TargetEncoder

    if isinstance(step, Pipeline):
        for _, inner in step.steps:
            if inner is None or isinstance(inner, str):  # "passthrough"
                continue
            yield from _input_encoders(inner, columns)
            if not isinstance(inner, SimpleImputer):
                return
    elif isinstance(step, ColumnTransformer):
        for _, inner, selected in step.transformers_:
            if not isinstance(inner, str):  # "drop", "passthrough"
                yield from _input_encoders(inner, _selected(columns, selected))
    elif isinstance(step, (OneHotEncoder, OrdinalEncoder, TargetEncoder)):
        yield step, columns


def _source_map(step: Any, n_inputs: int) -> list[int] | None:
    """For each column a fitted pipeline step outputs, the position of the input column it
    comes from; None where outputs mix inputs or their origin is not known."""
    from sklearn.base import OneToOneFeatureMixin
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, TargetEncoder

    if step is None or isinstance(step, str):  # "passthrough"
        return list(range(n_inputs))
    if isinstance(step, Pipeline):
        sources = list(range(n_inputs))
        for _, inner in step.steps:
            mapped = _source_map(inner, len(sources))
            if mapped is None:
                return None
            sources = [sources[i] for i in mapped]
        return sources
    if isinstance(step, ColumnTransformer):
        names = [str(c) for c in getattr(step, "feature_names_in_", range(n_inputs))]
        sources = []
        for name, inner, selected in step.transformers_:
            width = step.output_indices_[name]
            if inner == "drop" or width.stop == width.start:
                continue
            columns = [names.index(c) for c in _selected(names, selected)]
            mapped = _source_map(inner, len(columns))
            if mapped is None or len(mapped) != width.stop - width.start:
                return None
            sources += [columns[i] for i in mapped]
        return sources
    if isinstance(step, OneHotEncoder):
        widths = getattr(step, "_n_features_outs", None)  # per input column, after drop
        return None if widths is None else [j for j, n in enumerate(widths) for _ in range(n)]
    if isinstance(step, TargetEncoder):
        per_column = len(step.classes_) if step.target_type_ == "multiclass" else 1
        return [j for j in range(n_inputs) for _ in range(per_column)]
    if isinstance(step, SimpleImputer) and step.add_indicator:
        return list(range(n_inputs)) + [int(j) for j in step.indicator_.features_]
    identity = isinstance(step, FunctionTransformer) and step.func is None
    if identity or isinstance(step, (OneToOneFeatureMixin, SimpleImputer)):
        return list(range(n_inputs))
    return None


def encoded_sources(pipeline: Any) -> np.ndarray | None:
    """For each column a pipeline's final model takes, the input column it comes from, so
    that contributions of the encoded columns add up per input column; None where not known."""
    sources = _source_map(pipeline[:-1], pipeline.n_features_in_)
    if sources is None or len(sources) != final_estimator(pipeline).n_features_in_:
        return None
    return np.asarray(sources, dtype=np.int64)


def _unseen(encoder: Any) -> str | None:
    """What `encoder` makes of a category it never saw, or None where it refuses one."""
    kind = type(encoder).__name__
    if kind == "TargetEncoder":
        return "the mean target its TargetEncoder learned"
    if encoder.handle_unknown == "error":
        return None
    if kind == "OrdinalEncoder":
        return f"its OrdinalEncoder's unknown_value ({encoder.unknown_value})"
    if encoder.handle_unknown == "ignore":
        return "all zeros in its one-hot columns"
    return "its OneHotEncoder's infrequent category (all zeros where it has none)"


def pipeline_categories(
    estimator: Any, feature_names: list[str]
) -> tuple[dict[str, list[str]], dict[str, str | None]]:
    """The text columns a pipeline's encoders take, their category names in code order, and
    what the encoders make of an unseen category. Columns encoded from numbers stay numbers."""
    categories: dict[str, list[str]] = {}
    unseen: dict[str, set[str | None]] = {}
    for encoder, columns in _input_encoders(estimator, feature_names):
        for column, found in zip(columns, encoder.categories_, strict=False):
            if found.dtype.kind not in "OUS":
                continue
            known = categories.setdefault(column, [])
            known += [str(c) for c in found if not pd.isna(c) and str(c) not in known]
            unseen.setdefault(column, set()).add(_unseen(encoder))
    return categories, {
        column: None if None in how else "; ".join(sorted(how)) for column, how in unseen.items()
    }


def _missing_features(
    predict: Callable[[np.ndarray, str], np.ndarray], n_features: int, space: str
) -> list[int] | None:
    """The features a model predicts with when missing (tried one at a time on a row of
    zeros, i.e. each category's first code), or None where that row fails already."""

    def runs(row: np.ndarray) -> bool:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                predict(row[None, :], space)
        except Exception:  # whatever a pipeline's steps raise, the row is refused
            return False
        return True

    if not runs(np.zeros(n_features)):
        return None
    return [j for j in range(n_features) if runs(np.where(np.arange(n_features) == j, np.nan, 0))]


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

    categories, unseen = (
        ({}, {}) if not feature_names else pipeline_categories(estimator, feature_names)
    )

    def frame(X: np.ndarray) -> np.ndarray | pd.DataFrame:
        return decode(X, feature_names, categories) if feature_names else X

    def predict(X: np.ndarray, space: str) -> np.ndarray:
        if space == "value":
            return estimator.predict(frame(X))
        if space == "probability":
            return estimator.predict_proba(frame(X))
        margin = np.asarray(estimator.decision_function(frame(X)))
        return map_outputs(margin, "logit" if margin.ndim == 1 else "logits", space)

    handles_missing = kind_name.startswith("HistGradientBoosting")
    missing_features: tuple[str, ...] = ()
    if feature_names and final_estimator(estimator) is not estimator:
        # A pipeline takes missing values where its steps impute or encode them: asked of it.
        taken = _missing_features(predict, int(n_features), (spaces or ("value",))[0]) or []
        handles_missing = len(taken) == n_features
        missing_features = () if handles_missing else tuple(feature_names[j] for j in taken)

    kind = _sklearn_kind(estimator)
    if final_estimator(estimator) is not estimator:
        # A pipeline ending in trees is a tree model: tree-shap sums its encoded columns.
        kind = "tree" if _sklearn_kind(final_estimator(estimator)) == "tree" else "other"
    return Model(
        name=file.name,
        format=key,
        kind=kind,
        task="classification" if classes is not None else "regression",
        n_features=int(n_features),
        feature_names=feature_names,
        class_names=[str(c) for c in classes] if classes is not None else None,
        output_spaces=spaces or ("value",),
        sha256=file.sha256,
        native=estimator,
        handles_missing=handles_missing,
        missing_features=missing_features,
        categories=categories,
        unseen=unseen,
        predict_fn=predict,
    )
