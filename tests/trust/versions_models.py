"""Two versions of a credit-like model for the version tests: the current one (A) trained
on honest labels, and candidates (B) with a planted regression, a planted change of reason,
or nothing but another seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from whybox.model_zoo import Dataset, Model, load_data, load_model

HOMES = ["rent", "own", "mortgage", "other"]
CLASSES = ["bad", "good"]


def applicants(n: int, seed: int) -> pd.DataFrame:
    """Applicants and their true Status: age, income (thousands), home, debt and noise."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 75, n),
            "income": rng.gamma(4, 15, n).round(1),
            "home": rng.choice(HOMES, n, p=[0.4, 0.3, 0.2, 0.1]),
            "debt": rng.normal(0, 1, n).round(3),
            "noise": rng.normal(0, 1, n).round(3),
        }
    )
    score = (
        (frame.income - 60) / 25 - frame.debt + (frame.home == "own") * 0.8 + (frame.age - 45) / 30
    )
    good = score + rng.logistic(0, 0.4, n) > 0
    frame["Status"] = np.where(good, "good", "bad")
    return frame


def in_cohort(frame: pd.DataFrame) -> np.ndarray:
    """The planted cohort: young applicants who rent."""
    return ((frame.age < 30) & (frame.home == "rent")).to_numpy()


def train(
    frame: pd.DataFrame,
    path: Path,
    seed: int = 0,
    classes: list[str] = CLASSES,
    drop: str | None = None,
    task: str = "classification",
) -> Model:
    """An XGBoost model (categorical home) saved as JSON and loaded as whybox loads it;
    `classes` in another order trains on the other label coding; `drop` leaves a column out."""
    import xgboost

    features = frame.drop(columns=["Status", *([drop] if drop else [])])
    features["home"] = pd.Categorical(features["home"], categories=HOMES)
    labels = (frame.Status == classes[1]).to_numpy(int)
    if task == "classification":
        model = xgboost.XGBClassifier(
            n_estimators=100, max_depth=4, learning_rate=0.1, subsample=0.8, colsample_bytree=0.8,
            random_state=seed, enable_categorical=True, tree_method="hist", n_jobs=1,
        )  # fmt: skip
    else:
        model = xgboost.XGBRegressor(
            n_estimators=50, max_depth=3, enable_categorical=True, tree_method="hist", n_jobs=1
        )
    booster = model.fit(features, labels).get_booster()
    if task == "classification":
        booster.set_attr(whybox_class_names=json.dumps(classes))
    booster.save_model(path)
    return load_model(path, isolated=False)


def read(frame: pd.DataFrame, model: Model) -> Dataset:
    return load_data(frame.to_csv(index=False).encode(), model, name="data.csv", label="Status")
