"""Models trained on raw tables with text columns, saved as users save them, and brute-force
interventional Shapley values over the raw columns, computed without whybox."""

from __future__ import annotations

import io
import itertools
import math
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

FEATURES = ["age", "income", "home", "status"]
TEXT = ["home", "status"]
HOMES, STATUSES = ["own", "rent", "mortgage"], ["single", "married", "divorced"]


def training_frame(n: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    """Raw columns (text included, some missing) and a binary label that depends on them."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.normal(45, 12, n).round(1),
            "income": rng.normal(50, 20, n).round(1),
            "home": rng.choice(HOMES, n),
            "status": rng.choice(STATUSES, n),
        }
    )
    frame.loc[rng.choice(n, 30, replace=False), "income"] = np.nan
    frame.loc[rng.choice(n, 30, replace=False), "status"] = np.nan
    score = (
        (frame.age - 45) / 12
        + (frame.home == "rent") * 1.5
        - (frame.status == "married")
        + frame.income.fillna(50).sub(50).div(20)
    )
    return frame, (score + rng.normal(0, 0.5, n) > 0.5).to_numpy(int)


def explained_csv() -> bytes:
    """The user's file: text columns as text, an empty cell, an NA, and a category ('boat')
    no model saw."""
    return (
        b"age,income,home,status,notes\n"
        b"30,40,own,single,a\n"
        b"52,,rent,married,b\n"
        b"41,61.5,mortgage,NA,c\n"
        b"67,80,boat,divorced,d\n"
        b"25,35,rent,single,e\n"
        b"48,55,own,married,f\n"
        b"59,70,mortgage,divorced,g\n"
        b"36,45,rent,,h\n"
    )


def raw_rows() -> pd.DataFrame:
    """The explained file as pandas reads it: the values the model is given, by name."""
    return pd.read_csv(io.BytesIO(explained_csv()))[FEATURES]


def as_categories(frame: pd.DataFrame, categories: dict[str, list[str]]) -> pd.DataFrame:
    """Text columns as pandas categories with the model's own categories (others missing)."""
    frame = frame.copy()
    for column, names in categories.items():
        frame[column] = pd.Categorical(frame[column], categories=names)
    return frame


def brute_shapley(
    f: Callable[[pd.DataFrame], np.ndarray], x: pd.DataFrame, background: pd.DataFrame
) -> tuple[np.ndarray, float]:
    """Interventional Shapley values of row `x` over the raw columns: v(S) is the mean of f
    over the background rows with the columns in S taken from x. Returns (values, v(empty))."""
    d = len(FEATURES)
    masks = list(itertools.product([False, True], repeat=d))
    frames = []
    for mask in masks:
        frame = background.copy()
        for j, on in enumerate(mask):
            if on:
                frame[FEATURES[j]] = x[FEATURES[j]].iloc[0]
        frames.append(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = np.asarray(f(pd.concat(frames, ignore_index=True)), dtype=np.float64)
    v = dict(zip(masks, out.reshape(len(masks), len(background)).mean(axis=1), strict=True))
    phi = np.zeros(d)
    for mask in masks:
        size = sum(mask)
        for i in range(d):
            if not mask[i]:
                weight = math.factorial(size) * math.factorial(d - size - 1) / math.factorial(d)
                with_i = tuple(on or j == i for j, on in enumerate(mask))
                phi[i] += weight * (v[with_i] - v[mask])
    return phi, v[(False,) * d]


def pipelines() -> dict[str, object]:
    """scikit-learn pipelines that take the raw columns, one per encoder, unfitted."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    text = SimpleImputer(strategy="most_frequent")

    def pipeline(encoder, model, numeric=numbers):
        prep = ColumnTransformer([("num", numeric, ["age", "income"]), ("cat", encoder, TEXT)])
        return Pipeline([("prep", prep), ("model", model)])

    return {
        "one-hot": pipeline(
            make_pipeline(text, OneHotEncoder(handle_unknown="ignore")), LogisticRegression()
        ),
        "ordinal": pipeline(
            OrdinalEncoder(
                handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2
            ),
            RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0),
            numeric=SimpleImputer(),
        ),
        "target": pipeline(
            TargetEncoder(target_type="continuous"),
            GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0),
        ),
        "one-hot-trees": pipeline(
            OneHotEncoder(handle_unknown="ignore"),
            RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0),
            numeric=SimpleImputer(),
        ),
    }


def skops_pipeline(name: str) -> tuple[bytes, object]:
    """A fitted pipeline saved with skops, and the fitted object."""
    import skops.io as sio

    frame, label = training_frame()
    fitted = pipelines()[name].fit(frame, label if name != "target" else label * 3.0)
    return sio.dumps(fitted), fitted


def booster_files(tmp_path) -> dict[str, tuple[str, object]]:
    """XGBoost (JSON, UBJ) and LightGBM (text) models trained on pandas category columns:
    {name: (path, scikit-learn-style model)}."""
    import lightgbm
    import xgboost

    frame, label = training_frame()
    cats = as_categories(frame, {c: sorted(frame[c].dropna().unique()) for c in TEXT})
    xgb = xgboost.XGBClassifier(
        n_estimators=15, max_depth=3, enable_categorical=True, tree_method="hist"
    ).fit(cats, label)
    lgb = lightgbm.LGBMClassifier(n_estimators=15, min_child_samples=5, verbose=-1)
    lgb.fit(cats, label)
    files = {}
    for name, suffix, model in (
        ("xgboost-json", "json", xgb),
        ("xgboost-ubj", "ubj", xgb),
        ("lightgbm", "txt", lgb),
    ):
        path = tmp_path / f"model.{suffix}"
        (model.get_booster() if name.startswith("xgboost") else model.booster_).save_model(path)
        files[name] = (str(path), model)
    return files
