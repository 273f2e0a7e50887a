"""Small models and data shared by the test suite, built in-process in well under a second."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from model_zoo import Dataset
from model_zoo.architectures import MLP
from model_zoo.wrap import wrap_torch

N_FEATURES = 5
FEATURES = [f"f{i}" for i in range(N_FEATURES)]


def synthetic_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, N_FEATURES)), columns=FEATURES)


def make_dataset(frame: pd.DataFrame) -> Dataset:
    return Dataset(frame=frame.astype(np.float64), sha256="0" * 64, name="synthetic")


def trained_mlp(n_outputs: int, seed: int = 0, hidden=(16, 16)) -> MLP:
    """An MLP fitted briefly to a nonlinear synthetic target (deterministic)."""
    torch.manual_seed(seed)
    frame = synthetic_frame(400, seed)
    X = torch.tensor(frame.to_numpy(), dtype=torch.float32)
    signal = X[:, 0] * 2 - X[:, 1] + X[:, 2] * X[:, 3]
    module = MLP(N_FEATURES, n_outputs, hidden)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.01, weight_decay=1e-3)
    for _ in range(80):
        optimizer.zero_grad()
        out = module(X)
        if n_outputs == 1:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], (signal > 0).float())
        else:
            classes = torch.bucketize(signal, torch.tensor([-1.0, 1.0]))
            loss = torch.nn.functional.cross_entropy(out, classes)
        loss.backward()
        optimizer.step()
    return module.eval()


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return make_dataset(synthetic_frame())


@pytest.fixture(scope="session")
def binary_mlp():
    return wrap_torch(trained_mlp(1), N_FEATURES, "logit", name="binary mlp", feature_names=FEATURES)


@pytest.fixture(scope="session")
def multiclass_mlp():
    return wrap_torch(trained_mlp(3), N_FEATURES, "logits", name="3-class mlp", feature_names=FEATURES)


@pytest.fixture(scope="session")
def regression_mlp():
    return wrap_torch(trained_mlp(1, seed=1), N_FEATURES, "value", name="regression mlp", feature_names=FEATURES)
