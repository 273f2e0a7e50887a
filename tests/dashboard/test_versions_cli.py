"""`whybox diff`: diff.json with the flips, performance and a planted cohort, the audit
entry with both models' SHA-256, classes aligned by name, and a one-line error for every
pair of models (or data) that cannot be compared."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from tests.trust.versions_models import CLASSES, HOMES, applicants, in_cohort, train
from whybox.dashboard.cli.main import main
from whybox.dashboard.runs import audit
from whybox.dashboard.runs.audit import RunStore

ROWS = 1500


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    """Applicants, model A trained on them, and the candidates: B with the planted cohort's
    labels flipped, B with the classes in the other order, and B's that cannot be
    compared with A."""
    folder = tmp_path_factory.mktemp("versions")
    frame = applicants(ROWS, 0)
    frame.to_csv(folder / "data.csv", index=False)
    train(frame, folder / "a.json", seed=0)
    planted = frame.copy()
    cohort = in_cohort(frame)
    planted.loc[cohort, "Status"] = np.where(frame.Status[cohort] == "good", "bad", "good")
    train(planted, folder / "planted.json", seed=1)
    train(frame, folder / "reordered.json", seed=0, classes=["good", "bad"])
    train(frame, folder / "fewer.json", drop="noise")
    train(frame, folder / "regressor.json", task="regression")
    renamed = frame.assign(Status=frame.Status.map({"good": "yes", "bad": "no"}))
    train(renamed, folder / "renamed.json", classes=["no", "yes"])
    _numeric_home(frame, folder / "numeric.json")
    return folder


def _numeric_home(frame: pd.DataFrame, path) -> None:
    """Model A's recipe with `home` as numeric codes: it cannot read `home` as text."""
    import xgboost

    features = frame.drop(columns=["Status"])
    features["home"] = features["home"].map(HOMES.index)
    classifier = xgboost.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1)
    booster = classifier.fit(features, (frame.Status == "good").to_numpy(int)).get_booster()
    booster.set_attr(whybox_class_names=json.dumps(CLASSES))
    booster.save_model(path)


def _diff(folder, b: str, out, *extra: str) -> int:
    command = ["diff", str(folder / "a.json"), str(folder / b), str(folder / "data.csv")]
    return main([*command, "--label", "Status", "--out", str(out), *extra])


def test_diff_finds_the_planted_cohort_and_records_both_models(versions, tmp_path, capsys):
    out, store = tmp_path / "out", tmp_path / "runs.sqlite"
    command = ["--favourable", "good", "--no-explain", "--store", str(store)]
    assert _diff(versions, "planted.json", out, *command) == 0
    said = capsys.readouterr()
    assert said.out.startswith("B flips ") and "B is worse on 1 cohort: age ≤ 29" in said.out
    assert "predicting..." in said.err and "looking for cohorts where B is worse..." in said.err
    assert "explaining" not in said.err

    record = json.loads((out / "diff.json").read_text())
    assert record["command"][:2] == ["whybox", "diff"]
    assert record["models"]["A"]["sha256"] == _sha256(versions / "a.json")
    assert record["models"]["B"]["sha256"] == _sha256(versions / "planted.json")
    assert record["models"]["B"]["class_names"] == ["bad", "good"]  # the whole summary
    assert record["data"]["sha256"] == _sha256(versions / "data.csv")
    assert record["rows"] == ROWS and record["reasons"] is None
    flips = record["decisions"]["flips"]
    favourable = record["decisions"]["favourable"]
    assert flips["rows"] > 50 and sum(p["rows"] for p in flips["pairs"]) == flips["rows"]
    assert favourable["lost"] + favourable["gained"] == flips["rows"]
    accuracy = record["performance"]["accuracy"]
    assert accuracy["b"] < accuracy["a"] and accuracy["change_interval"][1] < 0
    cohort_rows = int(in_cohort(pd.read_csv(versions / "data.csv")).sum())
    [cohort] = record["cohorts"]
    assert set(cohort["conditions"]) == {"age ≤ 29", "home is rent"}
    assert cohort["rows"] == cohort_rows and cohort["b_loss"] > cohort["a_loss"] + 0.5
    assert cohort["p_adjusted"] < 0.05 and cohort["gap_interval"][0] > 0

    [entry] = RunStore(store).runs()
    assert entry.comparison and entry.source == "cli" and entry.rows == ROWS
    assert (entry.model_name, entry.model_b_name) == ("a.json", "planted.json")
    assert entry.model_sha256 == record["models"]["A"]["sha256"]
    assert entry.model_b_sha256 == record["models"]["B"]["sha256"]
    assert entry.data_sha256 == record["data"]["sha256"]
    assert entry.run_id == record["run_id"] and entry.explainer == "none"
    assert entry.params["favourable"] == "good" and entry.command == record["command"]
    assert RunStore(store).verify(entry.run_id) == []
    assert main(["runs", "--store", str(store)]) == 0
    listed = capsys.readouterr().out
    assert f"a.json {entry.model_sha256[:8]} vs planted.json {entry.model_b_sha256[:8]}" in listed
    assert "diff: none" in listed


def test_classes_in_another_order_are_aligned_by_name(versions, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert _diff(versions, "reordered.json", out, "--no-explain", "--seed", "3") == 0
    said = capsys.readouterr().out
    assert "within noise" in said and "No cohort where B is significantly worse" in said
    record = json.loads((out / "diff.json").read_text())
    assert record["models"]["B"]["class_names"] == ["good", "bad"]
    # The same data in the other label coding: the same model but for XGBoost's floating
    # point (misaligned, nearly every decision would flip).
    assert record["decisions"]["flips"]["share"] < 0.01
    assert record["decisions"]["change"]["mean_absolute"] < 0.02
    assert record["cohorts"] == [] and record["seed"] == 3
    low, high = record["performance"]["accuracy"]["change_interval"]
    assert low <= 0 <= high


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two small CNNs, one for 8 x 8 images and one for 10 x 10."""
    from whybox.model_zoo.architectures import SmallCNN
    from whybox.model_zoo.safetensors_models import save_safetensors

    folder = tmp_path_factory.mktemp("images")
    for side in (8, 10):
        config = {"in_channels": 1, "num_classes": 2, "image_size": [side, side]}
        raw = save_safetensors(SmallCNN(**config), "small-cnn", config, "logits")
        (folder / f"cnn{side}.safetensors").write_bytes(raw)
    return folder


BAD_INPUTS = {
    "other columns": (
        ["fewer.json"],
        "the models take different columns: only model A takes noise",
    ),
    "a classifier and a regressor": (
        ["regressor.json"],
        "model A is a classifier and model B a regressor; they do not predict the same thing",
    ),
    "other class names": (
        ["renamed.json"],
        "model A's classes are bad, good and model B's no, yes; compare models with the same "
        "classes",
    ),
    "data one model cannot read": (
        ["numeric.json"],
        "reading the data for model B: ",
    ),
    "an unknown favourable class": (
        ["planted.json", "--favourable", "great"],
        "favourable class 'great' is not among the model's classes (bad, good)",
    ),
    "an unknown method": (
        ["planted.json", "--method", "no-such-method"],
        "unknown explainer 'no-such-method'",
    ),
    "a bad report name": (
        ["planted.json", "--report", "sign-off.docx"],
        "cannot tell the report format from 'sign-off.docx'",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_saying_what_differs(versions, tmp_path, capsys, case) -> None:
    extra, message = BAD_INPUTS[case]
    out = tmp_path / "out"
    assert _diff(versions, extra[0], out, "--no-explain", *extra[1:]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.endswith("...")]  # the stages
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert "Traceback" not in err and not (out / "diff.json").exists()


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ("cnn8.safetensors", "cnn10.safetensors", "model A takes images of shape (1, 8, 8) and "
         "model B (1, 10, 10); compare models that take the same image size"),
        ("a.json", "cnn8.safetensors", "model A takes tabular input and model B image input"),
    ],
)  # fmt: skip
def test_models_of_other_inputs_are_refused_before_the_data_is_read(
    versions, images, tmp_path, capsys, a, b, message
) -> None:
    a, b = (versions / a if a.endswith(".json") else images / a), images / b
    missing = str(tmp_path / "no-such-data.csv")  # never read
    assert main(["diff", str(a), str(b), missing, "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_data_that_cannot_be_read_says_for_which_model(versions, tmp_path, capsys) -> None:
    command = ["diff", str(versions / "a.json"), str(versions / "planted.json")]
    command += [str(tmp_path / "no-such-data.csv"), "--out", str(tmp_path / "out")]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: reading the data for model A: ") and err.count("\n") == 1
    assert "no-such-data.csv" in err


def test_an_older_store_is_upgraded_to_record_comparisons(versions, tmp_path, capsys):
    """A store of schema 3 (before comparisons) is read as it is, and gains model B's
    columns when the first comparison is recorded; its runs read them as empty."""
    newer, path = tmp_path / "newer.sqlite", tmp_path / "old.sqlite"
    explained = ["explain", str(versions / "a.json"), str(versions / "data.csv"), "--rows"]
    explained += ["0:3", "--out", str(tmp_path / "run"), "--store", str(newer)]
    assert main(explained) == 0
    schema = audit.SCHEMA
    for column, kind in audit.ADDED[4].items():
        schema = schema.replace(f",\n    {column} {kind}", "")
    assert "model_b" not in schema
    columns = ", ".join(c for c in audit.COLUMNS if f"    {c} " in schema)
    with sqlite3.connect(path) as connection:
        connection.execute(schema)
        connection.execute("PRAGMA user_version = 3")
        connection.execute(f"ATTACH '{newer}' AS newer")
        connection.execute(f"INSERT INTO runs ({columns}) SELECT {columns} FROM newer.runs")
    [old] = RunStore(path, create=False).runs()
    assert not old.comparison and old.model_b_sha256 is None and old.explainer == "tree-shap"
    diffed = ["--no-explain", "--store", str(path)]
    assert _diff(versions, "planted.json", tmp_path / "out", *diffed) == 0
    capsys.readouterr()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == audit.SCHEMA_VERSION
    compared, again = RunStore(path).runs()
    assert again == old and compared.comparison
    assert compared.model_b_sha256 == _sha256(versions / "planted.json")
