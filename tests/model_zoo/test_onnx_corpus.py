"""A corpus of real exported ONNX networks: every exporter installed here (torch's TorchScript
and dynamo exporters, skl2onnx, onnxmltools for XGBoost and LightGBM), at fixed and dynamic
batch sizes, and with dynamic dimensions written as -1, 0 or names (as paddle2onnx, tf2onnx
and older torch exporters write them). Each file loads, predicts what onnxruntime computes,
and gets every method it can: gradient methods where its graph converts to torch (with the
values of the torch network it was exported from, where there is one), model-agnostic ones
where it does not. The corpus is exported once per session, into a temporary folder."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from whybox.explainers import registry
from whybox.explainers.testing import (
    N_FEATURES,
    image_set,
    make_dataset,
    mlp_model,
    patch_images,
    synthetic_frame,
    synthetic_signal,
)
from whybox.model_zoo import Dataset, Model, load_model
from whybox.model_zoo.architectures import SmallCNN
from whybox.model_zoo.image_data import ImageSet
from whybox.model_zoo.wrap import wrap_torch

TABULAR_GRADIENTS = ["integrated-gradients", "saliency", "deeplift", "gradient-shap"]
IMAGE_GRADIENTS = [*TABULAR_GRADIENTS, "smoothgrad", "grad-cam", "guided-grad-cam"]
AGNOSTIC = ["exact-shapley", "kernel-shap"]  # the corpus's graphs that do not convert are tabular
FAST = {
    "integrated-gradients": {"steps": 16},
    "gradient-shap": {"samples": 4},
    "smoothgrad": {"samples": 4},
    "kernel-shap": {"samples": 64},
}
ROWS = range(4)


@dataclass
class Entry:
    """One exported file, the file onnxruntime checks it against (itself unless its dims
    were edited into ones onnxruntime reads as fixed), and the network it came from."""

    raw: bytes
    modality: str
    differentiable: bool
    reference: Model | None = None
    source: bytes | None = None


def torch_onnx(
    network: torch.nn.Module, example: torch.Tensor, folder: Path, dynamo: bool, dynamic: bool
) -> bytes:
    path = folder / f"export-{len(list(folder.iterdir()))}.onnx"
    if dynamo:
        shapes = {"dynamic_shapes": ({0: torch.export.Dim("n")},)} if dynamic else {}
    else:
        shapes = {"dynamic_axes": {"x": {0: "n"}, "y": {0: "n"}}} if dynamic else {}
    torch.onnx.export(
        copy.deepcopy(network),
        (example,),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamo=dynamo,
        verbose=False,
        **({"external_data": False} if dynamo else {}),
        **shapes,
    )
    return path.read_bytes()


def with_dims(raw: bytes, batch: int | str, sides: int | str | None = None) -> bytes:
    """`raw` with its input's and outputs' batch dimension (and, given `sides`, an image's
    height and width) rewritten: an int as dim_value, a str as dim_param."""
    proto = onnx.load_from_string(raw)
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        axes = [0] + ([2, 3] if sides is not None and len(dims) == 4 else [])
        for axis in axes:
            new = batch if axis == 0 else sides
            if isinstance(new, str):
                dims[axis].dim_param = new if axis == 0 else f"{new}_{axis}"
            else:
                dims[axis].dim_value = new
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


@pytest.fixture(scope="session")
def tabular() -> tuple[Dataset, np.ndarray]:
    frame = synthetic_frame(200, seed=3)
    return make_dataset(frame), frame.to_numpy()


@pytest.fixture(scope="session")
def images() -> ImageSet:
    return image_set(patch_images(8, seed=5)[0])


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Entry]:
    from onnxmltools import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType as SklearnFloats
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folder = tmp_path_factory.mktemp("onnx-corpus")
    mlp = mlp_model("multiclass")
    torch.manual_seed(0)
    cnn = SmallCNN(1, 4, (28, 28), (8, 8, 8)).eval()
    cnn_model = wrap_torch(cnn, cnn.input_shape, "logits", name="cnn")
    rows, image = torch.zeros(2, N_FEATURES), torch.zeros(2, 1, 28, 28)
    entries: dict[str, Entry] = {}
    for exporter, dynamo in [("torchscript", False), ("dynamo", True)]:
        for batch, dynamic in [("dynamic", True), ("fixed", False)]:
            entries[f"{exporter}-mlp-{batch}"] = Entry(
                torch_onnx(mlp.module, rows, folder, dynamo, dynamic), "tabular", True, mlp
            )
            entries[f"{exporter}-cnn-{batch}"] = Entry(
                torch_onnx(cnn, image, folder, dynamo, dynamic), "image", True, cnn_model
            )
    for name in ("mlp", "cnn"):
        source = entries[f"torchscript-{name}-dynamic"]
        for dim in (-1, 0, "batch_size", "N", "unk__123"):
            sides = dim if name == "cnn" and dim != "batch_size" else None
            edited = with_dims(source.raw, dim, sides)
            entries[f"torchscript-{name}-dim-{dim}"] = Entry(
                edited, source.modality, True, source.reference, source.raw
            )

    X = synthetic_frame(300, seed=1).to_numpy().astype(np.float32)
    y = (synthetic_signal(X) > 0).astype(np.int64)
    zipmap = {"zipmap": False}
    sklearn = {
        "mlp": (MLPClassifier((8,), max_iter=300, random_state=0), True),
        "scaler-mlp": (
            make_pipeline(StandardScaler(), MLPClassifier((8,), max_iter=300, random_state=0)),
            True,
        ),
        "mlp-regressor": (
            MLPRegressor(hidden_layer_sizes=(8,), max_iter=300, random_state=0),
            True,
        ),
        "logistic": (LogisticRegression(), False),
        "forest": (RandomForestClassifier(5, max_depth=3, random_state=0), False),
    }
    for name, (estimator, differentiable) in sklearn.items():
        target = synthetic_signal(X) if name.endswith("regressor") else y
        estimator.fit(X, target)
        options = None if name.endswith("regressor") else zipmap
        proto = to_onnx(estimator, X[:1], options=options, target_opset={"": 17, "ai.onnx.ml": 3})
        entries[f"skl2onnx-{name}"] = Entry(proto.SerializeToString(), "tabular", differentiable)
    fixed = to_onnx(
        sklearn["mlp"][0],
        initial_types=[("X", SklearnFloats([3, N_FEATURES]))],
        options=zipmap,
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    entries["skl2onnx-mlp-fixed"] = Entry(fixed.SerializeToString(), "tabular", True)

    import lightgbm
    import xgboost

    types = [("X", FloatTensorType([None, N_FEATURES]))]
    boosters = {
        "xgboost": convert_xgboost(
            xgboost.XGBClassifier(n_estimators=5, max_depth=3).fit(X, y),
            initial_types=types,
            target_opset=15,
        ),
        "lightgbm": convert_lightgbm(
            lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y),
            initial_types=types,
            target_opset=15,
            zipmap=False,
        ),
    }
    for name, proto in boosters.items():
        entries[f"onnxmltools-{name}"] = Entry(proto.SerializeToString(), "tabular", False)
    return entries


NAMES = [
    *(
        f"{e}-{n}-{b}"
        for e in ("torchscript", "dynamo")
        for n in ("mlp", "cnn")
        for b in ("dynamic", "fixed")
    ),
    *(
        f"torchscript-{n}-dim-{d}"
        for n in ("mlp", "cnn")
        for d in (-1, 0, "batch_size", "N", "unk__123")
    ),
    *(
        f"skl2onnx-{n}"
        for n in ("mlp", "scaler-mlp", "mlp-regressor", "logistic", "forest", "mlp-fixed")
    ),
    "onnxmltools-xgboost",
    "onnxmltools-lightgbm",
]


@pytest.fixture(scope="session")
def loaded(corpus: dict[str, Entry]) -> Callable[[str], Model]:
    models: dict[str, Model] = {}

    def load(name: str) -> Model:
        if name not in models:
            models[name] = load_model(corpus[name].raw, name=f"{name}.onnx", isolated=False)
        return models[name]

    return load


def onnxruntime_outputs(raw: bytes, X: np.ndarray, output: str) -> np.ndarray:
    session = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: X.astype(np.float32)}
    return np.asarray(session.run([output], feed)[0]).reshape(len(X), -1)


def test_corpus_lists_every_entry(corpus: dict[str, Entry]) -> None:
    assert sorted(corpus) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_loads_and_predicts_what_onnxruntime_computes(
    name: str, corpus: dict[str, Entry], loaded, tabular, images
) -> None:
    entry, model = corpus[name], loaded(name)
    assert model.modality == entry.modality
    assert (model.module is not None) == entry.differentiable, model.notes
    X = tabular[1][:5] if entry.modality == "tabular" else images.values[:5]
    proto = onnx.load_from_string(entry.raw)
    floats = [o.name for o in proto.graph.output if o.type.tensor_type.elem_type == 1]
    output = next((o for o in floats if "prob" in o), floats[0])
    space = "margin" if "margin" in model.output_spaces else model.output_spaces[0]
    source = entry.source or entry.raw
    static = proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value
    if static and entry.source is None:  # a fixed batch: onnxruntime takes that many rows
        expected = np.concatenate(
            [
                onnxruntime_outputs(source, X[i : i + static], output)
                for i in range(0, static * (len(X) // static), static)
            ]
        )
        X = X[: len(expected)]
    else:
        expected = onnxruntime_outputs(source, X, output)
    np.testing.assert_allclose(model.predict(X, space), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["torchscript-cnn-dim--1", "torchscript-mlp-dim-0"])
def test_dynamic_dims_pass_the_sandboxed_check(name: str, corpus: dict[str, Entry]) -> None:
    """The loader's child process accepts them too (the dashboard and CLI load this way)."""
    model = load_model(corpus[name].raw, name=f"{name}.onnx")
    assert model.module is not None
    assert model.input_shape == ((1, 0, 0) if "cnn" in name else (N_FEATURES,))


@pytest.mark.parametrize("name", NAMES)
def test_every_method_it_supports_runs(
    name: str, corpus: dict[str, Entry], loaded, tabular, images
) -> None:
    entry, model = corpus[name], loaded(name)
    data = tabular[0] if entry.modality == "tabular" else images
    gradients = TABULAR_GRADIENTS if entry.modality == "tabular" else IMAGE_GRADIENTS
    for method in gradients:
        explainer = registry.get(method)(**FAST.get(method, {}))
        support = explainer.supports(model, data)
        assert bool(support) == entry.differentiable, (method, support.reason)
        if not support:
            continue
        values = explainer.explain(model, data, rows=ROWS).values
        assert values.shape == (len(ROWS), *data.values.shape[1:]) and np.isfinite(values).all()
        if entry.reference is not None:
            reference = explainer.explain(entry.reference, data, rows=ROWS).values
            scale = np.abs(reference).max()
            np.testing.assert_allclose(values, reference, atol=1e-4 * scale, err_msg=method)
    for method in [] if entry.differentiable else AGNOSTIC:
        values = registry.get(method)(**FAST.get(method, {})).explain(model, data, rows=ROWS).values
        assert values.shape == (len(ROWS), *data.values.shape[1:]) and np.isfinite(values).all()


def test_deeplift_refuses_a_graph_fixed_to_one_input(tmp_path: Path, images) -> None:
    """DeepLIFT evaluates each input beside its baseline, two rows, which a graph exported
    for batches of exactly one cannot take; integrated-gradients still runs."""
    torch.manual_seed(0)
    cnn = SmallCNN(1, 4, (28, 28), (8, 8, 8)).eval()
    raw = torch_onnx(cnn, torch.zeros(1, 1, 28, 28), tmp_path, False, False)
    model = load_model(raw, name="batch-of-one.onnx", isolated=False)
    support = registry.get("deeplift")().supports(model, images)
    assert not support and "exported for batches of exactly 1" in support.reason
    explanation = registry.get("integrated-gradients")(steps=8).explain(model, images, rows=[0, 1])
    assert np.isfinite(explanation.values).all()
