"""ONNX graphs that take a table one column per input, text columns as strings (skl2onnx's
export of a pipeline on a data frame): explained from the raw CSV, per raw column."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from tests.model_zoo.categorical import FEATURES, TEXT, brute_shapley, training_frame
from whybox.explainers.shapley import ExactShapley
from whybox.model_zoo import WhyboxError, load_data, load_model

CSV = (
    b"age,income,home,status\n"
    b"30,40,own,single\n"
    b"52,61.5,rent,married\n"
    b"67,80,boat,divorced\n"
    b"25,35,rent,single\n"
    b"59,70,mortgage,divorced\n"
)


def exported(handle_unknown: str = "ignore") -> tuple[bytes, object]:
    """A one-hot + scaler + logistic regression pipeline and its skl2onnx export."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, label = training_frame()
    keep = frame.notna().all(axis=1).to_numpy()
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown=handle_unknown), TEXT),
        ]
    )
    fitted = Pipeline([("prep", prep), ("model", LogisticRegression())])
    fitted.fit(frame[keep], label[keep])
    types = [
        (name, StringTensorType([None, 1]) if name in TEXT else FloatTensorType([None, 1]))
        for name in FEATURES
    ]
    graph = to_onnx(fitted, initial_types=types, options={"zipmap": False})
    return graph.SerializeToString(), fitted


@pytest.fixture(scope="module")
def pipeline() -> tuple[bytes, object]:
    return exported()


def test_columns_by_name_and_categories_from_the_graph(pipeline) -> None:
    raw, fitted = pipeline
    model = load_model(raw, name="pipeline.onnx")
    assert model.feature_names == FEATURES and model.module is None
    encoder = fitted.named_steps["prep"].named_transformers_["cat"]
    assert model.categories == {
        name: list(names) for name, names in zip(TEXT, encoder.categories_, strict=True)
    }
    data = load_data(CSV, model, name="data.csv")
    assert any("'boat'" in note for note in data.notes), data.notes
    frame = pd.read_csv(io.BytesIO(CSV))
    np.testing.assert_allclose(
        model.predict(data.values, "probability"), fitted.predict_proba(frame), atol=1e-5
    )


def test_exact_shapley_is_shapley_over_the_raw_columns(pipeline) -> None:
    raw, fitted = pipeline
    model = load_model(raw, name="pipeline.onnx", isolated=False)
    data = load_data(CSV, model, name="data.csv")
    explanation = ExactShapley(background=len(data), output_space="probability").explain(
        model, data, target=1
    )
    assert explanation.feature_names == FEATURES and explanation.additivity_gap < 1e-9
    background = pd.read_csv(io.BytesIO(CSV))
    for row in range(len(background)):
        values, base = brute_shapley(
            lambda X: fitted.predict_proba(X)[:, 1], background.iloc[[row]], background
        )
        np.testing.assert_allclose(explanation.values[row], values, atol=1e-6)
        np.testing.assert_allclose(explanation.base_values[row], base, atol=1e-6)


def test_a_graph_that_refuses_unseen_categories_refuses_the_data() -> None:
    raw, _ = exported(handle_unknown="error")
    model = load_model(raw, name="strict.onnx", isolated=False)
    with pytest.raises(WhyboxError, match="boat"):
        load_data(CSV, model, name="data.csv")
