"""XGBoost and LightGBM boosters as `Model`s: their files (XGBoost JSON or UBJ, LightGBM
text), first parsed and tried in a child by the library alone, and their objects."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from whybox.model_zoo.limits import available_cores
from whybox.model_zoo.model import Model
from whybox.model_zoo.model_file import ModelFile, damaged, meta_list
from whybox.model_zoo.output_space import map_outputs, output_spaces_for
from whybox.model_zoo.sandbox import NATIVE_CHECK, in_child

# XGBoost keeps user attributes (booster.set_attr) in its model file; class names go here.
XGBOOST_CLASS_NAMES = "whybox_class_names"
# Both libraries send a category they never saw (a code beyond theirs) down the same
# branches as a missing value.
BOOSTER_UNSEEN = "a missing value"


# XGBoost ------------------------------------------------------------------------------------


def load_xgboost(file: ModelFile, key: str) -> Model:
    import xgboost as xgb

    canonical = in_child(NATIVE_CHECK, "xgboost", file, key) if file.isolated else file.raw
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(canonical))
    except (xgb.core.XGBoostError, UnicodeDecodeError) as exc:  # its error text can be binary
        raise damaged(file, key, exc) from None
    return wrap_xgboost(booster, file, key)


def _xgboost_categories(booster: Any) -> dict[str, list[str]]:
    """The category names of categorical features, where the file stores them (XGBoost 3
    does for a model trained on pandas categories; codes alone are all older files have)."""
    if "c" not in (booster.feature_types or []):
        return {}
    try:
        stored = booster.get_categories(export_to_arrow=True).to_arrow()
    except (AttributeError, ValueError):  # an XGBoost before 3, or no categories stored
        return {}
    return {
        str(name): [str(v) for v in values.to_pylist()]
        for name, values in stored
        if values is not None
    }


def wrap_xgboost(booster: Any, file: ModelFile, key: str) -> Model:
    learner = json.loads(booster.save_config())["learner"]
    objective = learner["objective"]["name"]
    booster.set_param({"nthread": available_cores()})
    if objective in ("binary:logistic", "binary:logitraw"):
        module_output, n_classes = "logit", 2
    elif objective.startswith("multi:"):
        module_output = "logits"
        n_classes = int(learner["learner_model_param"]["num_class"])
    else:
        module_output, n_classes = "value", 0
    class_names = None
    if n_classes:
        named = meta_list(booster.attributes(), XGBOOST_CLASS_NAMES, n_classes, "classes")
        class_names = named or [str(i) for i in range(n_classes)]

    def predict(X: np.ndarray, space: str) -> np.ndarray:
        X = np.ascontiguousarray(X)
        if module_output == "value":
            return booster.inplace_predict(X, predict_type="value")
        return map_outputs(booster.inplace_predict(X, predict_type="margin"), module_output, space)

    categories = _xgboost_categories(booster)
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
        categories=categories,
        unseen=dict.fromkeys(categories, BOOSTER_UNSEEN),
        predict_fn=predict,
    )


# LightGBM -----------------------------------------------------------------------------------


def load_lightgbm(file: ModelFile, key: str) -> Model:
    import lightgbm as lgb

    canonical = in_child(NATIVE_CHECK, "lightgbm", file, key) if file.isolated else file.raw
    try:
        booster = lgb.Booster(model_str=canonical.decode("utf-8"))
    except (UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
        raise damaged(file, key, exc) from None
    return wrap_lightgbm(booster, file, key)


def _lightgbm_categories(booster: Any, dump: dict, names: list[str]) -> dict[str, list[str]]:
    """The category names of categorical features: LightGBM stores those of a pandas frame's
    category columns (`pandas_categorical`), in the order of the features it treats as
    categorical (those whose feature_infos list values). Codes alone where they disagree."""
    stored = booster.pandas_categorical or []
    infos = dump.get("feature_infos", {})
    categorical = [n for n in names if infos.get(n, {}).get("values")]
    if len(stored) != len(categorical):
        return {}
    return {n: [str(v) for v in values] for n, values in zip(categorical, stored, strict=True)}


def wrap_lightgbm(
    booster: Any, file: ModelFile, key: str, class_names: list[str] | None = None
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
    categories = {} if unnamed else _lightgbm_categories(booster, dump, names)

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
        categories=categories,
        unseen=dict.fromkeys(categories, BOOSTER_UNSEEN),
        predict_fn=predict,
    )
