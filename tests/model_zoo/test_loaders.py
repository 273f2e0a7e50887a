"""load_model: every accepted format against its library's own predictions, and every refusal."""

from __future__ import annotations

import functools
import importlib
import io
import json
import os
import pathlib
import pickle
import subprocess
import sys
import zipfile

import joblib
import lightgbm as lgb
import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import skops.io as sio
import torch
import xgboost as xgb
from onnx import TensorProto, helper
from safetensors.torch import save as save_tensors
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from whybox.model_zoo import WhyboxError, load_model
from whybox.model_zoo.architectures import MLP
from whybox.model_zoo.formats import sniff
from whybox.model_zoo.model import NVIDIA_DEVICES
from whybox.model_zoo.safetensors_models import save_safetensors
from whybox.model_zoo.settings import TRUST_ENV
from whybox.model_zoo.wrap import wrap_torch

N, D = 120, 4
NAMES = ["age", "income", "debt", "tenure"]
TOL = 1e-5
SAVER = "whybox.model_zoo.safetensors_models.save_safetensors"  # messages name it


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, D))
    signal = X[:, 0] - X[:, 1] + 0.5 * X[:, 2] * X[:, 3]
    return {
        "X": X,
        "binary": (signal > 0).astype(int),
        "multiclass": np.digitize(signal, [-0.7, 0.7]),
        "regression": signal + 0.1 * rng.normal(size=N),
    }


def one_line_error(source, **kwargs) -> str:
    with pytest.raises(WhyboxError) as info:
        load_model(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def onnx_bytes(model: onnx.ModelProto) -> bytes:
    return model.SerializeToString()


def ml_model(nodes, inputs, outputs, initializers=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


# XGBoost ------------------------------------------------------------------------------------

XGB_CASES = {
    "binary:logistic": ("binary", 2),
    "multi:softprob": ("multiclass", 3),
    "multi:softmax": ("multiclass", 3),
    "reg:squarederror": ("regression", 0),
}


@pytest.mark.parametrize(
    ("objective", "raw_format"),
    [(objective, "json") for objective in XGB_CASES]
    + [("binary:logistic", "ubj"), ("reg:squarederror", "ubj")],
)
def test_xgboost_matches_the_library(data, objective, raw_format):
    target, n_classes = XGB_CASES[objective]
    params = {"objective": objective, "max_depth": 3, "nthread": 1}
    if n_classes > 2:
        params["num_class"] = n_classes
    dtrain = xgb.DMatrix(data["X"], data[target], feature_names=NAMES)
    booster = xgb.train(params, dtrain, num_boost_round=4)
    classes = [f"class {i}" for i in range(n_classes)]
    if n_classes:
        booster.set_attr(whybox_class_names=json.dumps(classes))
    raw = bytes(booster.save_raw(raw_format))

    model = load_model(raw, name="model.bin")  # the suffix says nothing; the content does

    assert model.format == f"xgboost-{raw_format}"
    assert (model.kind, model.n_features, model.feature_names) == ("tree", D, NAMES)
    assert model.handles_missing
    dtest = xgb.DMatrix(data["X"], feature_names=NAMES)
    margin = booster.predict(dtest, output_margin=True)
    if n_classes == 0:
        assert model.task == "regression" and model.output_spaces == ("value",)
        np.testing.assert_allclose(model.predict(data["X"])[:, 0], booster.predict(dtest), atol=TOL)
        return
    assert model.task == "classification"
    assert model.class_names == classes
    if n_classes == 2:
        np.testing.assert_allclose(
            model.predict(data["X"], "margin"), np.c_[-margin, margin], atol=TOL
        )
        probability = booster.predict(dtest)
        expected = np.c_[1 - probability, probability]
    else:
        np.testing.assert_allclose(model.predict(data["X"], "margin"), margin, atol=TOL)
        expected = booster.predict(dtest) if objective == "multi:softprob" else None
    got = model.predict(data["X"], "probability")
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=TOL)
    if expected is not None:
        np.testing.assert_allclose(got, expected, atol=TOL)


def test_xgboost_file_named_bin_and_missing_values(data, tmp_path):
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(data["X"], data["regression"]), 3)
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(booster.save_raw("json")))

    model = load_model(path)

    assert (model.name, model.format, model.feature_names) == ("weights.bin", "xgboost-json", None)
    X = data["X"][:5].copy()
    X[0, 1] = np.nan
    expected = booster.predict(xgb.DMatrix(X))
    np.testing.assert_allclose(model.predict(X)[:, 0], expected, atol=TOL)


def test_xgboost_tree_pointing_past_its_nodes_is_refused(data):
    """XGBoost itself segfaults predicting with this; the loader tries it in a child first."""
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(data["X"], data["regression"]), 2)
    document = json.loads(bytes(booster.save_raw("json")))
    tree = document["learner"]["gradient_booster"]["model"]["trees"][0]
    tree["left_children"][0], tree["split_indices"][0] = 100000, 999999
    message = one_line_error(json.dumps(document).encode(), name="model.json")
    assert "XGBoost JSON" in message


# LightGBM -----------------------------------------------------------------------------------

LGB_CASES = {"binary": 2, "multiclass": 3, "regression": 0}


@pytest.mark.parametrize("named", [True, False])
@pytest.mark.parametrize("objective", list(LGB_CASES))
def test_lightgbm_matches_the_library(data, objective, named):
    n_classes = LGB_CASES[objective]
    params = {"objective": objective, "num_leaves": 4, "verbose": -1, "num_threads": 1}
    if n_classes > 2:
        params["num_class"] = n_classes
    names = NAMES if named else "auto"
    train = lgb.Dataset(data["X"], data[objective], feature_name=names, params={"verbose": -1})
    booster = lgb.train(params, train, num_boost_round=4)

    model = load_model(booster.model_to_string().encode(), name="model.txt")

    assert (model.format, model.kind, model.n_features) == ("lightgbm-text", "tree", D)
    assert model.feature_names == (NAMES if named else None)
    X = data["X"]
    if n_classes == 0:
        assert model.task == "regression"
        np.testing.assert_allclose(model.predict(X)[:, 0], booster.predict(X), atol=TOL)
        return
    assert model.class_names == [str(i) for i in range(n_classes)]
    raw, probability = booster.predict(X, raw_score=True), booster.predict(X)
    if n_classes == 2:
        raw, probability = np.c_[-raw, raw], np.c_[1 - probability, probability]
    np.testing.assert_allclose(model.predict(X, "margin"), raw, atol=TOL)
    np.testing.assert_allclose(model.predict(X, "probability"), probability, atol=TOL)


def test_lightgbm_texts_that_crash_lightgbm_are_refused(data):
    """LightGBM 4 aborts the process on these; the loader must survive and say why."""
    booster = lgb.train({"verbose": -1}, lgb.Dataset(data["X"], data["regression"]), 2)
    text = booster.model_to_string()
    cut_in_trees = text[: text.index("Tree=1") + 40]
    without_num_leaves = "\n".join(
        line for line in text.splitlines() if not line.startswith("num_leaves=")
    )
    for broken in (cut_in_trees, without_num_leaves):
        assert "LightGBM" in one_line_error(broken.encode(), name="model.txt")


def test_lightgbm_text_cut_in_its_training_parameters_still_predicts(data):
    """The parameters block is not needed to predict (and its reader overruns on a cut line)."""
    booster = lgb.train({"verbose": -1}, lgb.Dataset(data["X"], data["regression"]), 2)
    text = booster.model_to_string()
    model = load_model(text[: text.index("end of parameters") - 5].encode())
    np.testing.assert_allclose(model.predict(data["X"])[:, 0], booster.predict(data["X"]), atol=TOL)


# scikit-learn through skops -----------------------------------------------------------------

SKLEARN_CASES = {
    "logistic": (lambda: LogisticRegression(), "binary", "linear"),
    "logistic-3": (lambda: LogisticRegression(), "multiclass", "linear"),
    "forest": (lambda: RandomForestClassifier(5, max_depth=3, random_state=0), "binary", "tree"),
    "gbm": (lambda: GradientBoostingClassifier(n_estimators=5, random_state=0), "binary", "tree"),
    "hgb": (lambda: HistGradientBoostingClassifier(max_iter=5), "multiclass", "tree"),
    "forest-reg": (
        lambda: RandomForestRegressor(5, max_depth=3, random_state=0),
        "regression",
        "tree",
    ),
    "pipeline": (lambda: make_pipeline(StandardScaler(), LogisticRegression()), "binary", "other"),
}


@pytest.mark.parametrize("case", list(SKLEARN_CASES))
def test_skops_matches_the_library(data, case):
    make, target, kind = SKLEARN_CASES[case]
    frame = pd.DataFrame(data["X"], columns=NAMES)
    estimator = make().fit(frame, data[target])

    model = load_model(sio.dumps(estimator), name="model.skops")

    assert (model.format, model.kind, model.n_features, model.feature_names) == (
        "skops",
        kind,
        D,
        NAMES,
    )
    assert model.handles_missing == (case == "hgb")
    if target == "regression":
        assert model.task == "regression"
        np.testing.assert_allclose(
            model.predict(data["X"])[:, 0], estimator.predict(frame), atol=TOL
        )
        return
    assert model.task == "classification"
    assert model.class_names == [str(c) for c in estimator.classes_]
    got = model.predict(data["X"], "probability")
    np.testing.assert_allclose(got, estimator.predict_proba(frame), atol=TOL)
    if hasattr(estimator, "decision_function"):
        margin = estimator.decision_function(frame)
        expected = np.c_[-margin, margin] if margin.ndim == 1 else margin
        np.testing.assert_allclose(model.predict(data["X"], "margin"), expected, atol=TOL)


def test_skops_without_feature_names_and_with_missing_values(data):
    estimator = HistGradientBoostingClassifier(max_iter=3).fit(data["X"], data["binary"])
    model = load_model(sio.dumps(estimator))
    X = data["X"][:4].copy()
    X[1, 2] = np.nan
    assert model.feature_names is None
    np.testing.assert_allclose(
        model.predict(X, "probability"), estimator.predict_proba(X), atol=TOL
    )


class Custom:
    """A class of the test's own, which no server-side list trusts."""

    def __init__(self) -> None:
        self.weights = [1.0, 2.0]


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (FunctionTransformer(func=eval), "builtins.eval"),
        (FunctionTransformer(func=functools.partial(os.system, "true")), "system"),
        (Custom(), "Custom"),
    ],
    ids=["eval", "partial-os-system", "custom-class"],
)
def test_skops_refuses_types_outside_the_trusted_list(payload, named):
    message = one_line_error(sio.dumps(payload), name="model.skops")
    assert named in message and "does not trust" in message


# ONNX ---------------------------------------------------------------------------------------


def export_onnx(module: torch.nn.Module, n_features: int) -> onnx.ModelProto:
    buffer = io.BytesIO()
    args = (torch.zeros(2, n_features),)
    try:
        torch.onnx.export(
            module,
            args,
            buffer,
            dynamo=False,
            input_names=["x"],
            output_names=["scores"],
            dynamic_axes={"x": {0: "rows"}, "scores": {0: "rows"}},
        )
    except TypeError:  # a torch whose exporter has no TorchScript path: the dynamo one
        rows = torch.export.Dim("rows")
        torch.onnx.export(
            module,
            args,
            buffer,
            input_names=["x"],
            output_names=["scores"],
            dynamic_shapes={"x": {0: rows}},
        )
    return onnx.load_from_string(buffer.getvalue())


def test_onnx_mlp_converts_to_an_equal_torch_module(data):
    torch.manual_seed(0)
    module = MLP(D, 3, (8,)).eval()
    proto = export_onnx(module, D)
    onnx.helper.set_model_props(
        proto,
        {
            "whybox.feature_names": json.dumps(NAMES),
            "whybox.class_names": json.dumps(["low", "mid", "high"]),
            "whybox.module_output": "logits",
        },
    )
    raw = onnx_bytes(proto)

    model = load_model(raw, name="mlp.onnx")

    assert (model.format, model.kind, model.task, model.n_features) == (
        "onnx",
        "onnx",
        "classification",
        D,
    )
    assert model.feature_names == NAMES and model.class_names == ["low", "mid", "high"]
    assert model.torch_module() is not None and model.predict_fn is None
    X = data["X"].astype(np.float32)
    session = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    logits = session.run(None, {"x": X})[0]
    np.testing.assert_allclose(model.predict(X, "margin"), logits, atol=TOL)
    probability = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    np.testing.assert_allclose(model.predict(X, "probability"), probability, atol=TOL)
    with torch.no_grad():
        converted = model.torch_module("margin")(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(converted, logits, atol=TOL)


def test_onnx_without_metadata_reads_the_graph(data):
    torch.manual_seed(1)
    proto = export_onnx(torch.nn.Sequential(MLP(D, 2, (4,)), torch.nn.Softmax(dim=1)), D)
    model = load_model(onnx_bytes(proto), name="model.onnx")
    assert model.task == "classification" and model.output_spaces == ("probability",)
    assert model.class_names == ["0", "1"]
    assert any("no whybox metadata" in note for note in model.notes)

    regression = load_model(onnx_bytes(export_onnx(MLP(D, 1, (4,)), D)))
    assert (regression.task, regression.output_spaces) == ("regression", ("value",))


def test_onnx_graph_torch_cannot_run_keeps_onnxruntime(data):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, D])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    coefficients = [1.0, -2.0, 0.5, 3.0]
    node = helper.make_node(
        "LinearRegressor",
        ["x"],
        ["y"],
        domain="ai.onnx.ml",
        coefficients=coefficients,
        intercepts=[0.25],
    )
    model = load_model(onnx_bytes(ml_model([node], [x], [y])), name="linear.onnx")

    assert model.torch_module() is None and model.predict_fn is not None
    assert any("gradient methods are unavailable" in note for note in model.notes)
    expected = data["X"] @ np.array(coefficients) + 0.25
    np.testing.assert_allclose(model.predict(data["X"])[:, 0], expected, atol=1e-4)


def test_onnx_zipmap_output_is_refused():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    label = helper.make_tensor_value_info("label", TensorProto.INT64, [None])
    score_map = helper.make_map_type_proto(
        TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])
    )
    probabilities = helper.make_value_info(
        "probabilities", helper.make_sequence_type_proto(score_map)
    )
    nodes = [
        helper.make_node(
            "LinearClassifier",
            ["x"],
            ["label", "scores"],
            domain="ai.onnx.ml",
            coefficients=[1.0, 0.0, 0.0, 1.0],
            intercepts=[0.0, 0.0],
            classlabels_ints=[0, 1],
            post_transform="SOFTMAX",
        ),
        helper.make_node(
            "ZipMap", ["scores"], ["probabilities"], domain="ai.onnx.ml", classlabels_int64s=[0, 1]
        ),
    ]
    message = one_line_error(onnx_bytes(ml_model(nodes, [x], [label, probabilities])))
    assert "zipmap" in message.lower()


def test_onnx_external_data_is_refused_without_reading_it(tmp_path, monkeypatch):
    secret = tmp_path / "secret"
    secret.write_bytes(np.ones(D, dtype=np.float32).tobytes())
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    weights = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[D, 1])
    weights.data_location = TensorProto.EXTERNAL
    weights.external_data.add(key="location", value="../secret")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, D])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]

    message = one_line_error(onnx_bytes(ml_model(nodes, [x], [y], [weights])), name="m.onnx")

    assert "external data" in message and "never reads" in message


# safetensors --------------------------------------------------------------------------------


def test_safetensors_round_trip(data, tmp_path):
    torch.manual_seed(2)
    module = MLP(D, 1, (8, 8)).eval()
    config = {"n_features": D, "n_outputs": 1, "hidden": [8, 8]}
    path = tmp_path / "mlp.safetensors"
    raw = save_safetensors(
        module, "mlp", config, "logit", path, feature_names=NAMES, class_names=["no", "yes"]
    )
    assert path.read_bytes() == raw

    model = load_model(path)

    assert (model.format, model.kind, model.task) == ("safetensors", "torch", "classification")
    assert model.feature_names == NAMES and model.class_names == ["no", "yes"]
    assert model.torch_module() is not None
    reference = wrap_torch(module, D, "logit")
    for space in ("margin", "probability"):
        np.testing.assert_allclose(
            model.predict(data["X"], space), reference.predict(data["X"], space), atol=TOL
        )


def test_safetensors_without_whybox_metadata_is_refused():
    raw = save_tensors(dict(MLP(D, 1, (4,)).state_dict()))
    message = one_line_error(raw, name="weights.safetensors")
    for key in ("whybox.architecture", "whybox.config", "whybox.module_output"):
        assert key in message
    assert message.endswith(f"write the file with {SAVER}")


def test_messages_name_the_writer_by_a_path_that_imports():
    module, _, function = SAVER.rpartition(".")
    assert getattr(importlib.import_module(module), function) is save_safetensors


def test_safetensors_with_tensors_that_do_not_fit_the_config():
    module = MLP(D, 1, (4,))
    raw = save_safetensors(module, "mlp", {"n_features": D, "hidden": [6]}, "value")
    message = one_line_error(raw)
    assert "layers.0.weight is [4, 4], expected [6, 4]" in message and SAVER in message


def test_safetensors_with_an_unknown_architecture():
    raw = save_tensors(
        {"w": torch.zeros(2)},
        metadata={
            "whybox.architecture": "vgg",
            "whybox.config": "{}",
            "whybox.module_output": "value",
        },
    )
    assert "'vgg'" in one_line_error(raw) and "mlp" in one_line_error(raw)


# Formats that can run code ------------------------------------------------------------------


class Boom:
    """Unpickling this creates the marker file: proof that a loader ran the file's code."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def joblib_bytes(obj, compress=0) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer, compress=compress)
    return buffer.getvalue()


UNSAFE_PAYLOADS = {
    "pickle-5": lambda boom: pickle.dumps(boom, protocol=5),
    "pickle-0": lambda boom: pickle.dumps(boom, protocol=0),
    "joblib": lambda boom: joblib_bytes(boom),
    "joblib-zlib": lambda boom: joblib_bytes(boom, compress=("zlib", 3)),
    "joblib-gzip": lambda boom: joblib_bytes(boom, compress=("gzip", 3)),
    "joblib-xz": lambda boom: joblib_bytes(boom, compress=("xz", 3)),
    "joblib-bz2": lambda boom: joblib_bytes(boom, compress=("bz2", 3)),
}


@pytest.mark.parametrize("kind", list(UNSAFE_PAYLOADS))
def test_pickles_are_refused_without_running_them(kind, tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / "marker"
    raw = UNSAFE_PAYLOADS[kind](Boom(marker))

    message = one_line_error(raw, name="model.json")  # the name claims a safe format

    assert not marker.exists()
    assert "pickle" in message
    for advice in ("skops", "ONNX", "safetensors", TRUST_ENV):
        assert advice in message


def torch_bytes(kind: str, module: torch.nn.Module | None = None) -> bytes:
    module = module if module is not None else MLP(D, 1, (4,)).eval()
    buffer = io.BytesIO()
    if kind == "torch":
        torch.save(module, buffer)
    elif kind == "torchscript":
        torch.jit.save(torch.jit.script(module), buffer)
    else:
        rows = torch.export.Dim("rows")
        program = torch.export.export(module, (torch.zeros(2, D),), dynamic_shapes=({0: rows},))
        torch.export.save(program, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("kind", "label"),
    [("torch", "torch.save"), ("torchscript", "TorchScript"), ("torch-export", "torch.export")],
)
def test_torch_archives_are_refused(kind, label, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    raw = torch_bytes(kind)
    assert sniff(raw, "model.pt") == kind
    message = one_line_error(raw, name="model.pt")
    assert label in message and "safetensors" in message and "ONNX" in message
    assert SAVER in message or kind == "torch-export"


@pytest.mark.parametrize("kind", ["torch", "torchscript"])
def test_torch_archives_load_when_trusted(data, kind):
    torch.manual_seed(3)
    module = MLP(D, 3, (4,)).eval()
    model = load_model(torch_bytes(kind, module), trusted=True)
    assert (model.format, model.task, model.n_features) == (kind, "classification", D)
    assert model.class_names == ["0", "1", "2"]
    expected = wrap_torch(module, D, "logits").predict(data["X"], "margin")
    np.testing.assert_allclose(model.predict(data["X"], "margin"), expected, atol=TOL)


def test_trusted_state_dict_is_refused_with_the_writer_named():
    buffer = io.BytesIO()
    torch.save(MLP(D, 1, (4,)).state_dict(), buffer)
    message = one_line_error(buffer.getvalue(), name="weights.pt", trusted=True)
    assert "state_dict" in message and SAVER in message


def test_torch_export_archives_are_refused_even_when_trusted():
    assert "even when trusted" in one_line_error(torch_bytes("torch-export"), trusted=True)


def test_trusted_pickle_of_a_sklearn_estimator(data, monkeypatch):
    estimator = LogisticRegression().fit(data["X"], data["binary"])
    raw = pickle.dumps(estimator)
    monkeypatch.setenv(TRUST_ENV, "1")

    model = load_model(raw, name="model.pkl")

    assert (model.format, model.kind, model.task) == ("pickle", "linear", "classification")
    np.testing.assert_allclose(
        model.predict(data["X"], "probability"), estimator.predict_proba(data["X"]), atol=TOL
    )


def test_trusted_joblib_of_xgboost_and_lightgbm_estimators(data):
    classifier = xgb.XGBClassifier(n_estimators=3, max_depth=2).fit(data["X"], data["binary"])
    model = load_model(joblib_bytes(classifier, compress=3), trusted=True)
    assert (model.format, model.kind) == ("joblib", "tree")
    np.testing.assert_allclose(
        model.predict(data["X"], "probability"), classifier.predict_proba(data["X"]), atol=TOL
    )
    labels = np.array(["a", "b", "c"])[data["multiclass"]]
    lgbm = lgb.LGBMClassifier(n_estimators=3, num_leaves=4, verbose=-1).fit(data["X"], labels)
    model = load_model(pickle.dumps(lgbm), trusted=True)
    assert model.class_names == ["a", "b", "c"]
    np.testing.assert_allclose(
        model.predict(data["X"], "probability"), lgbm.predict_proba(data["X"]), atol=TOL
    )


def test_trusted_pickle_of_something_else_is_refused():
    assert "builtins.dict" in one_line_error(pickle.dumps({"a": 1}), trusted=True)


# Unknown and damaged files ------------------------------------------------------------------


def test_empty_file(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"")
    assert "empty" in one_line_error(path)


def test_missing_file(tmp_path):
    assert "not found" in one_line_error(tmp_path / "nope.json")


def test_unknown_content_lists_the_accepted_formats():
    message = one_line_error(bytes(range(7, 200)), name="model.bin")
    for accepted in ("XGBoost", "LightGBM", "skops", "ONNX", "safetensors"):
        assert accepted in message
    assert "text" in one_line_error(b"age,income\n1,2\n", name="data.csv")
    assert "not an XGBoost model" in one_line_error(b'{"weights": [1, 2]}', name="w.json")
    assert "not a skops" in one_line_error(zip_bytes({"readme.txt": "hi"}))


def zip_bytes(entries: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in entries.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_damaged_files_name_their_format(data):
    booster = xgb.train({}, xgb.DMatrix(data["X"], data["regression"]), 2)
    text = bytes(booster.save_raw("json"))
    assert "XGBoost JSON" in one_line_error(text[: len(text) // 2])
    lightgbm_text = lgb.train(
        {"verbose": -1}, lgb.Dataset(data["X"], data["regression"]), 2
    ).model_to_string()
    assert "LightGBM" in one_line_error(lightgbm_text[:200].encode())
    assert "skops" in one_line_error(zip_bytes({"schema.json": "{not json"}))
    proto = onnx_bytes(export_onnx(MLP(D, 1, (4,)), D))
    assert "ONNX" in one_line_error(proto[: len(proto) // 2], name="model.onnx")


def test_auto_device_is_torchs_answer_without_importing_torch_where_no_gpu_can_be():
    """A tree job's worker need not import torch to learn there is no GPU."""
    code = (
        "import sys\nfrom whybox.model_zoo.model import resolve_device\n"
        "print(resolve_device('auto'), 'torch' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    device, imported = shown.stdout.split()
    assert device == ("cuda" if torch.cuda.is_available() else "cpu")
    no_driver = sys.platform.startswith("linux") and not any(map(os.path.exists, NVIDIA_DEVICES))
    assert imported == str(not no_driver)
