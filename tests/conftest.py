"""Small models and data shared by the test suite (the same fixtures `check_explainer` uses)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pytest

from whybox.explainers.testing import (  # noqa: F401  (re-exported for the tests)
    FEATURES,
    N_FEATURES,
    fixture,
    make_dataset,
    synthetic_frame,
    trained_mlp,
)
from whybox.model_zoo import Dataset, Model

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

# Demo models train on first use; a suite-wide cache keeps that to once per run and keeps
# the user's own cache untouched. Subprocesses (the CLI, the server) inherit it.
os.environ.setdefault("WHYBOX_CACHE_DIR", tempfile.mkdtemp(prefix="whybox-test-cache-"))
# Runs the tests make are recorded in a throwaway run store, not the user's.
os.environ.setdefault(
    "WHYBOX_STORE", os.path.join(tempfile.mkdtemp(prefix="whybox-test-store-"), "runs.sqlite")
)


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return make_dataset(synthetic_frame())


@pytest.fixture(scope="session")
def binary_mlp() -> Model:
    return fixture("binary-mlp")


@pytest.fixture(scope="session")
def multiclass_mlp() -> Model:
    return fixture("multiclass-mlp")


@pytest.fixture(scope="session")
def regression_mlp() -> Model:
    return fixture("regression-mlp")


def predict_only_model(
    predict_fn: Callable[[np.ndarray, str], np.ndarray],
    n_features: int,
    feature_names: list[str] | None = None,
) -> Model:
    """A regression model known only by its predictions, as trees and ONNX graphs are:
    no torch module."""
    return Model(
        name="predict only",
        format="other",
        kind="other",
        task="regression",
        n_features=n_features,
        feature_names=feature_names,
        class_names=None,
        output_spaces=("value",),
        sha256="",
        native=None,
        predict_fn=predict_fn,
    )


def settle(at: AppTest, timeout: float = 180) -> AppTest:
    """Run the page again until the session's jobs have ended, as a browser's progress
    panel does on its own every half second."""
    deadline = time.monotonic() + timeout
    while "jobs" in at.session_state and at.session_state["jobs"]:
        assert time.monotonic() < deadline, "the session's jobs did not end"
        time.sleep(0.2)
        at.run()
    return at
