"""`check_explainer`: the contract every explainer, built-in or plugin, must pass.

Plugin authors call `check_explainer(MyExplainer)` in their own tests. It runs the class
on small built-in models (torch MLPs for binary, multiclass and regression tasks, an
XGBoost ensemble, and a CNN on a synthetic image task) and checks shapes, finiteness,
determinism under a seed, additivity where claimed, batch equals row-by-row, and that
parameters round-trip. Failures raise `ContractViolation`, with what was expected.

The image task puts its evidence in a known place: a bright square on a dim noisy
background, whose quadrant is the class (`patch_images`). A method that points at the
square points at the evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
import torch

from whybox.explainers.base import (
    Explainer,
    Explanation,
    additivity_tolerance,
    output_spread,
)
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


@dataclass(frozen=True)
class Fixture:
    """A built-in model for the contract: its input kind, known before it is built."""

    modality: str
    build: Callable[[], Model]


FIXTURES: dict[str, Fixture] = {
    "binary-mlp": Fixture("tabular", lambda: mlp_model("binary")),
    "multiclass-mlp": Fixture("tabular", lambda: mlp_model("multiclass")),
    "regression-mlp": Fixture("tabular", lambda: mlp_model("regression")),
    "binary-xgboost": Fixture("tabular", xgboost_classifier),
    "patch-cnn": Fixture("image", patch_model),
}


@cache
def fixture(name: str) -> Model:
    return FIXTURES[name].build()


class ContractViolation(AssertionError):
    """An explainer breaks the contract; the message says what was expected and found.

    Raised explicitly, so the checks also run under `python -O`, which strips `assert`.
    """


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractViolation(message)


def _same(a: Explanation, b: Explanation, what: str, atol: float) -> None:
    scale = max(1.0, float(np.abs(a.values).max(initial=0.0)))
    worst = float(np.abs(a.values - b.values).max(initial=0.0))
    _require(
        worst <= atol * scale,
        f"{what}: values differ by up to {worst:.3g}; expected at most {atol * scale:.3g}",
    )


def check_explainer(cls: type[Explainer], params: dict | None = None) -> list[str]:
    """Run the contract on every built-in fixture `cls` supports; return the fixtures checked.

    Fixtures of a modality the class does not handle are skipped before they are built,
    so a tabular plugin's check takes seconds. Raises `ContractViolation`.
    """
    name = cls.__name__
    _require(
        isinstance(cls, type) and issubclass(cls, Explainer),
        f"{cls!r} is not a subclass of whybox.explainers.base.Explainer",
    )
    _require(
        bool(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", cls.name)),
        f"{name}.name must be kebab-case, like 'my-method'; found {cls.name!r}",
    )
    _require(
        bool(cls.display_name and cls.summary),
        f"{name} needs a display_name and a summary; found {cls.display_name!r} and "
        f"{cls.summary!r}",
    )
    helpless = [p.name for p in cls.params if not p.help]
    _require(not helpless, f"every parameter of {name} needs help text; {helpless} have none")
    explainer = cls(**(params or {}))
    again = cls(**explainer.get_params())
    _require(
        again.get_params() == explainer.get_params(),
        f"{name} parameters do not round-trip: {explainer.get_params()} became "
        f"{again.get_params()}",
    )
    tabular = make_dataset(synthetic_frame())
    images = image_set(patch_images(8, seed=1)[0])
    checked = []
    for fixture_name, spec in FIXTURES.items():
        if spec.modality not in cls.modalities:
            continue
        model = fixture(fixture_name)
        dataset = images if model.modality == "image" else tabular
        if not explainer.supports(model, dataset):
            continue
        _check_on(explainer, model, dataset, f"{name} on {fixture_name}")
        checked.append(fixture_name)
    _require(
        bool(checked),
        f"{name} supports none of the built-in fixtures {', '.join(FIXTURES)} "
        f"(its modalities: {', '.join(cls.modalities)})",
    )
    return checked


def _check_on(explainer: Explainer, model: Model, dataset: Dataset | ImageSet, label: str) -> None:
    """Shapes, finite values and names are checked by `explain` itself (a WhyboxError);
    here: metadata, additivity where claimed, determinism, and batch against row by row."""
    batch = explainer.explain(model, dataset, rows=ROWS)
    _require(
        explainer.name in (batch.method, batch.params.get("chosen_by")),
        f"{label}: method {batch.method!r}; expected {explainer.name!r}",
    )
    _require(
        batch.output_space in model.output_spaces,
        f"{label}: output space {batch.output_space!r}; expected one of {model.output_spaces}",
    )
    _require(list(batch.rows) == ROWS, f"{label}: rows {list(batch.rows)}; expected {ROWS}")
    if batch.standard_errors is not None:
        _require(
            batch.standard_errors.shape == batch.values.shape,
            f"{label}: standard_errors of shape {batch.standard_errors.shape}; expected "
            f"{batch.values.shape}",
        )
    _require(not batch.failures, f"{label}: {'; '.join(batch.failures)}")
    if batch.additive:
        tolerance = additivity_tolerance(output_spread(batch))
        _require(
            batch.additivity_gap is not None and batch.additivity_gap <= tolerance,
            f"{label}: additivity gap {batch.additivity_gap}; expected at most {tolerance:.3g}",
        )
    _same(batch, explainer.explain(model, dataset, rows=ROWS), f"{label}: same seed, new run", 1e-9)
    for position, row in enumerate(ROWS):
        single = explainer.explain(model, dataset, rows=[row])
        single.values = np.concatenate(
            [batch.values[:position], single.values, batch.values[position + 1 :]]
        )
        _same(batch, single, f"{label}: row {row} alone vs in a batch", 1e-5)
