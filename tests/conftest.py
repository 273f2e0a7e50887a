"""Small models and data shared by the test suite (the same fixtures `check_explainer` uses)."""

from __future__ import annotations

import os
import tempfile

import pytest

from explainers.testing import (  # noqa: F401  (re-exported for the tests)
    FEATURES,
    N_FEATURES,
    fixture,
    make_dataset,
    synthetic_frame,
    trained_mlp,
)
from model_zoo import Dataset, Model

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
