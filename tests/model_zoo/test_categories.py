"""Text columns fed as they are to models that encode them, as codes everywhere else."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from tests.model_zoo.categorical import (
    HOMES,
    STATUSES,
    as_categories,
    booster_files,
    explained_csv,
    raw_rows,
    skops_pipeline,
    training_frame,
)
from whybox.model_zoo import WhyboxError, load_data, load_model
from whybox.model_zoo.categories import decode, encode, names


def test_codes_round_trip_with_known_categories_first():
    codes, found = encode(pd.Series(["b", None, "z", "a", "b", "y"]), known=["b", "a"])
    assert found == ["b", "a", "y", "z"]
    np.testing.assert_array_equal(codes, [0, np.nan, 3, 1, 0, 2])
    assert names(found, codes).tolist() == ["b", None, "z", "a", "b", "y"]
    assert names(["b", "a"], np.array([2.0]))[0] not in ("b", "a")  # an unseen stand-in


def test_numbers_read_from_a_file_match_category_names():
    codes, found = encode(pd.Series([1.0, 2.0, np.nan]), known=["2", "1"])
    assert found == ["2", "1"]
    np.testing.assert_array_equal(codes, [1, 0, np.nan])


def test_data_alone_turns_text_columns_into_codes():
    data = load_data(b"age,home\n30,own\n40,rent\n50,\n60,own\n", name="d.csv")
    assert data.categories == {"home": ["own", "rent"]}
    np.testing.assert_array_equal(data.values[:, 1], [0, 1, np.nan, 0])
    frame = decode(data.values, data.feature_names, data.categories)
    assert frame["home"].tolist()[:2] == ["own", "rent"] and pd.isna(frame["home"][2])


@pytest.mark.parametrize("name", ["one-hot", "ordinal", "target", "one-hot-trees"])
def test_a_pipeline_takes_the_raw_csv(name):
    raw, fitted = skops_pipeline(name)
    model = load_model(raw, name="pipeline.skops")
    assert model.feature_names == ["age", "income", "home", "status"]
    assert model.categories == {"home": sorted(HOMES), "status": sorted(STATUSES)}
    assert model.handles_missing
    data = load_data(explained_csv(), model, name="data.csv")
    assert data.feature_names == model.feature_names
    assert data.categories["home"] == [*sorted(HOMES), "boat"]
    assert any(
        "'home': 1 row(s) have a category the model never saw ('boat')" in n for n in data.notes
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = (
            fitted.predict(raw_rows()) if name == "target" else fitted.predict_proba(raw_rows())
        )
    space = "value" if name == "target" else "probability"
    np.testing.assert_allclose(
        model.predict(data.values, space).reshape(expected.shape), expected, atol=1e-12
    )
    assert model.kind == ("other" if name == "one-hot" else "tree")


def test_unseen_categories_refused_where_the_encoder_refuses_them():
    import skops.io as sio
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame, label = training_frame()
    pipeline = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(), ["home"]), ("passthrough", ["age"]), remainder="drop"
        ),
        LogisticRegression(),
    ).fit(frame[["age", "home"]], label)
    model = load_model(sio.dumps(pipeline), name="strict.skops")
    assert model.unseen == {"home": None}
    with pytest.raises(WhyboxError) as info:
        load_data(b"age,home\n30,own\n40,boat\n", model)
    message = str(info.value)
    assert "'boat'" in message and "refuses" in message and "\n" not in message
    with pytest.raises(WhyboxError, match="missing values in column\\(s\\) 'age'"):
        load_data(b"age,home\n,own\n40,rent\n", model)


def test_a_column_selector_pipeline_loads():
    import skops.io as sio
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame, label = training_frame()
    frame = frame.dropna()
    pipeline = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(), make_column_selector(dtype_include="object")),
            remainder="passthrough",
        ),
        LogisticRegression(max_iter=500),
    ).fit(frame, label[frame.index])
    model = load_model(sio.dumps(pipeline), name="selector.skops")
    assert set(model.categories) == {"home", "status"}


@pytest.mark.parametrize("name", ["xgboost-json", "xgboost-ubj", "lightgbm"])
def test_boosters_name_their_categories(tmp_path, name):
    path, fitted = booster_files(tmp_path)[name]
    model = load_model(path)
    assert model.categories == {"home": sorted(HOMES), "status": sorted(STATUSES)}
    data = load_data(explained_csv(), model, name="data.csv")
    assert any("the model treats it as a missing value" in n for n in data.notes)
    expected = fitted.predict_proba(as_categories(raw_rows(), model.categories))
    np.testing.assert_allclose(model.predict(data.values, "probability"), expected, atol=1e-6)
