"""Tabular data: encodings, formats, and one clear error per kind of bad input."""

import io
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from whybox.model_zoo import WhyboxError, load_data
from whybox.model_zoo.data import Dataset

CSV = "a,b,label\n1,2,yes\n3,4.5,no\n"


def frame_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252"])
def test_csv_encodings(encoding):
    text = "größe;été\n1;2\n3;4\n" if encoding != "cp1252" else "größe,été\n1,2\n3,4\n"
    data = load_data(text.encode(encoding), name="x.csv")
    assert data.feature_names == ["größe", "été"]
    assert data.values.tolist() == [[1, 2], [3, 4]]


def test_label_column_is_split_off():
    data = load_data(CSV.encode(), label="label")
    assert data.feature_names == ["a", "b"]
    assert data.labels.tolist() == ["yes", "no"]
    assert len(data.sha256) == 64


def test_parquet_round_trip(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4]})
    path = tmp_path / "d.parquet"
    frame.to_parquet(path)
    assert load_data(path).values.tolist() == [[1, 3], [2, 4]]


def test_columns_matched_by_name_in_any_order(binary_mlp, dataset):
    shuffled = dataset.frame[list(reversed(dataset.feature_names))]
    data = load_data(frame_bytes(shuffled), binary_mlp)
    assert data.feature_names == binary_mlp.feature_names
    np.testing.assert_allclose(data.values, dataset.values)


def test_columns_the_model_does_not_use_are_left_out_with_a_note(binary_mlp, dataset):
    data = load_data(frame_bytes(dataset.frame.assign(extra="text", other=1.0)), binary_mlp)
    assert data.feature_names == binary_mlp.feature_names
    np.testing.assert_allclose(data.values, dataset.values)
    assert data.notes == ["ignored column(s) the model does not use: 'extra', 'other'"]


def test_columns_matched_by_position_when_model_has_no_names(binary_mlp, dataset):
    unnamed = replace(binary_mlp, feature_names=None)
    renamed = dataset.frame.set_axis(list("vwxyz"), axis=1)
    data = load_data(frame_bytes(renamed), unnamed)
    assert data.feature_names == list("vwxyz")


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda f: f.drop(columns=["f1", "f3"]), ["lacks", "'f1'", "'f3'"]),
        (lambda f: f.assign(f2="abc"), ["non-numeric", "'f2'"]),
        (lambda f: f.assign(f4=np.inf), ["infinite", "'f4'"]),
        (lambda f: f.assign(f0=np.nan), ["empty", "'f0'"]),
        (
            lambda f: f.assign(f0=[np.nan] + [1.0] * (len(f) - 1)),
            ["missing values", "'f0'", "impute"],
        ),
        (lambda f: f.iloc[:0], ["no data rows"]),
    ],
)
def test_bad_data_names_the_columns(binary_mlp, dataset, mutate, words):
    with pytest.raises(WhyboxError) as info:
        load_data(frame_bytes(mutate(dataset.frame.copy())), binary_mlp)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", ["empty"]),
        (b"   \n", ["empty"]),
        (b"\x00\x01\x02binary\xff" * 20, ["binary"]),
        (b"a,a,b\n1,2,3\n", ["duplicated", "'a'"]),
    ],
)
def test_unreadable_files(raw, words):
    with pytest.raises(WhyboxError) as info:
        load_data(raw, name="upload.csv")
    for word in words:
        assert word in str(info.value)


def test_unknown_label_column_is_named():
    with pytest.raises(WhyboxError, match="label column 'target'"):
        load_data(CSV.encode(), label="target")


def test_position_count_mismatch(binary_mlp):
    unnamed = replace(binary_mlp, feature_names=None)
    with pytest.raises(WhyboxError, match="5 features by position but the data has 2"):
        load_data(b"a,b\n1,2\n", unnamed)


def test_nan_passes_to_models_that_handle_missing_values():
    data = load_data(b"a,b\n1,\n3,4\n")  # no model: nothing to refuse for
    assert np.isnan(data.values[0, 1])


def test_background_is_reproducible_and_bounded(dataset):
    a, b = dataset.background(10, seed=3), dataset.background(10, seed=3)
    assert a.shape == (10, 5) and np.array_equal(a, b)
    assert not np.array_equal(a, dataset.background(10, seed=4))
    assert len(Dataset(frame=dataset.frame.iloc[:4], sha256="").background(10)) == 4
    with pytest.raises(WhyboxError):
        dataset.background(0)


def test_semicolon_and_whitespace_are_handled():
    data = load_data(io.BytesIO(b"a ; b\n1 ; 2\n").getvalue())
    assert data.feature_names == ["a", "b"]
