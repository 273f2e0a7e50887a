"""`check_explainer`: the contract every explainer, built-in or plugin, must pass.

Plugin authors call `check_explainer(MyExplainer)` in their own tests. It runs the class
on small built-in models (torch MLPs for binary, multiclass and regression tasks, an
XGBoost ensemble, and a CNN on a synthetic image task) and checks shapes, finiteness,
determinism under a seed, additivity where claimed, batch equals row-by-row, and that
parameters round-trip.

The image task puts its evidence in a known place: a bright square on a dim noisy
background, whose quadrant is the class (`patch_images`). A method that points at the
square points at the evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

import numpy as np
import pandas as pd
import torch

from whybox.explainers.base import Explainer, Explanation
from whybox.model_zoo import Dataset, Model
from whybox.model_zoo.architectures import MLP, SmallCNN
from whybox.model_zoo.image_data import ImageSet
from whybox.model_zoo.wrap import wrap_torch

N_FEATURES = 5
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
ROWS = [0, 1, 2, 3]
PATCH_SIDE, PATCH = 28, 6
QUADRANTS = ["top-left", "top-right", "bottom-left", "bottom-right"]


def synthetic_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, N_FEATURES)), columns=FEATURES)


def synthetic_signal(X: np.ndarray) -> np.ndarray:
    """A nonlinear target with an interaction, so attributions are not trivially linear."""
    return X[:, 0] * 2 - X[:, 1] + X[:, 2] * X[:, 3]


def make_dataset(frame: pd.DataFrame, name: str = "synthetic") -> Dataset:
    return Dataset(frame=frame.astype(np.float64), sha256="0" * 64, name=name)


def trained_mlp(task: str, seed: int = 0, hidden: tuple[int, ...] = (16, 16)) -> MLP:
    """An MLP fitted briefly (and deterministically) to the synthetic signal.

    `task` is 'binary' (one logit), 'multiclass' (three logits) or 'regression'.
    """
    torch.manual_seed(seed)
    X = torch.tensor(synthetic_frame(400, seed).to_numpy(), dtype=torch.float32)
    signal = torch.tensor(synthetic_signal(X.numpy()), dtype=torch.float32)
    module = MLP(N_FEATURES, 3 if task == "multiclass" else 1, hidden)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.01, weight_decay=1e-3)
    for _ in range(80):
        optimizer.zero_grad()
        out = module(X)
        if task == "binary":
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                out[:, 0], (signal > 0).float()
            )
        elif task == "regression":
            loss = torch.nn.functional.mse_loss(out[:, 0], signal)
        else:
            classes = torch.bucketize(signal, torch.tensor([-1.0, 1.0]))
            loss = torch.nn.functional.cross_entropy(out, classes)
        loss.backward()
        optimizer.step()
    return module.eval()


def mlp_model(task: str) -> Model:
    """`trained_mlp(task)` as a `Model` with named features."""
    module_output = {"binary": "logit", "multiclass": "logits", "regression": "value"}[task]
    return wrap_torch(
        trained_mlp(task), N_FEATURES, module_output, name=f"{task} mlp", feature_names=FEATURES
    )


def xgboost_classifier(n_trees: int = 20) -> Model:
    """A small XGBoost ensemble, saved to JSON and read back through `load_model`."""
    import xgboost

    from whybox.model_zoo import load_model

    X = synthetic_frame(400).to_numpy()
    matrix = xgboost.DMatrix(X, label=synthetic_signal(X) > 0, feature_names=FEATURES)
    params = {"objective": "binary:logistic", "max_depth": 3, "seed": 0, "nthread": 1}
    booster = xgboost.train(params, matrix, num_boost_round=n_trees)
    return load_model(bytes(booster.save_raw("json")), name="xgboost.json", isolated=False)


def patch_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (n, 1, 28, 28) in [0, 1], their classes (the square's quadrant) and the
    square's top-left corners (n, 2); the square is `PATCH` pixels wide."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.3, size=(n, 1, PATCH_SIDE, PATCH_SIDE)).astype(np.float32)
    classes = rng.integers(0, len(QUADRANTS), n)
    half = PATCH_SIDE // 2
    corners = np.column_stack(
        [
            (classes // 2) * half + rng.integers(1, half - PATCH, n),
            (classes % 2) * half + rng.integers(1, half - PATCH, n),
        ]
    )
    for image, (row, col) in zip(images, corners, strict=True):
        image[0, row : row + PATCH, col : col + PATCH] = rng.uniform(0.8, 1.0)
    return images, classes, corners


def image_set(images: np.ndarray, name: str = "patches") -> ImageSet:
    display = np.repeat((images.transpose(0, 2, 3, 1) * 255).astype(np.uint8), 3, axis=3)
    return ImageSet(
        images=images,
        display=display[..., :3],
        sources=[f"{name}[{i}]" for i in range(len(images))],
        sha256="0" * 64,
        name=name,
    )


def trained_patch_cnn(seed: int = 0, epochs: int = 6) -> SmallCNN:
    """A small CNN fitted (deterministically, in seconds) to the patch task."""
    torch.manual_seed(seed)
    images, classes, _ = patch_images(2048, seed)
    network = SmallCNN(1, len(QUADRANTS), (PATCH_SIDE, PATCH_SIDE), (16, 32, 32))
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-3)
    inputs, labels = torch.from_numpy(images), torch.from_numpy(classes)
    for _ in range(epochs):
        for batch in torch.randperm(len(images)).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(network(inputs[batch]), labels[batch]).backward()
            optimizer.step()
    return network.eval()


def patch_model(seed: int = 0) -> Model:
    network = trained_patch_cnn(seed)
    return wrap_torch(
        network, network.input_shape, "logits", name="patch cnn", class_names=QUADRANTS
    )


FIXTURES: dict[str, Callable[[], Model]] = {
    "binary-mlp": lambda: mlp_model("binary"),
    "multiclass-mlp": lambda: mlp_model("multiclass"),
    "regression-mlp": lambda: mlp_model("regression"),
    "binary-xgboost": xgboost_classifier,
    "patch-cnn": patch_model,
}


@cache
def fixture(name: str) -> Model:
    return FIXTURES[name]()


def _same(a: Explanation, b: Explanation, what: str, atol: float) -> None:
    scale = max(1.0, float(np.abs(a.values).max(initial=0.0)))
    if not np.allclose(a.values, b.values, rtol=0, atol=atol * scale):
        worst = float(np.abs(a.values - b.values).max())
        raise AssertionError(f"{what}: values differ by up to {worst:.3g}")


def check_explainer(cls: type[Explainer], params: dict | None = None) -> list[str]:
    """Run the contract on every built-in fixture `cls` supports; return the fixtures checked."""
    name = cls.__name__
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", cls.name), f"{name}.name must be kebab-case"
    assert cls.display_name and cls.summary, f"{name} needs display_name and summary"
    assert all(p.help for p in cls.params), f"every parameter of {name} needs help text"
    explainer = cls(**(params or {}))
    again = cls(**explainer.get_params())
    assert again.get_params() == explainer.get_params(), f"{name} parameters do not round-trip"
    tabular = make_dataset(synthetic_frame())
    images = image_set(patch_images(8, seed=1)[0])
    checked = []
    for fixture_name in FIXTURES:
        model = fixture(fixture_name)
        dataset = images if model.modality == "image" else tabular
        if not explainer.supports(model, dataset):
            continue
        _check_on(explainer, model, dataset, f"{name} on {fixture_name}")
        checked.append(fixture_name)
    assert checked, f"{name} supports none of the built-in fixtures {', '.join(FIXTURES)}"
    return checked


def _check_on(explainer: Explainer, model: Model, dataset: Dataset | ImageSet, label: str) -> None:
    batch = explainer.explain(model, dataset, rows=ROWS)
    shape = (len(ROWS), *dataset.values.shape[1:])
    assert batch.values.shape == shape, f"{label}: values shape {batch.values.shape}"
    assert batch.base_values.shape == (len(ROWS),), f"{label}: base_values shape"
    assert np.isfinite(batch.values).all() and np.isfinite(batch.base_values).all(), (
        f"{label}: not finite"
    )
    named = explainer.name in (batch.method, batch.params.get("chosen_by"))
    assert named and batch.output_space in model.output_spaces, f"{label}: metadata"
    assert list(batch.rows) == ROWS, f"{label}: rows not recorded"
    if batch.standard_errors is not None:
        assert batch.standard_errors.shape == batch.values.shape, f"{label}: standard_errors shape"
    if batch.additive:
        spread = float(np.abs(batch.predictions - batch.base_values).max(initial=0.0))
        tolerance = 1e-4 + 0.01 * spread
        assert batch.additivity_gap is not None and batch.additivity_gap <= tolerance, (
            f"{label}: additivity gap {batch.additivity_gap} over {tolerance:.3g}"
        )
    _same(batch, explainer.explain(model, dataset, rows=ROWS), f"{label}: same seed, new run", 1e-9)
    for position, row in enumerate(ROWS):
        single = explainer.explain(model, dataset, rows=[row])
        single.values = np.concatenate(
            [batch.values[:position], single.values, batch.values[position + 1 :]]
        )
        _same(batch, single, f"{label}: row {row} alone vs in a batch", 1e-5)
