"""An identifier column (--id, the sidebar's "Identifier column"): kept out of the features
and carried into attributions.csv, run.json, the audit trail, the report and the Local view;
and suggested where the data has one the model does not use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.dashboard.test_app import explain
from whybox.dashboard.runs.audit import RunStore
from whybox.model_zoo import WhyboxError, demos, load_data

WHYBOX = str(Path(sys.executable).with_name("whybox"))
APP = Path(__file__).parents[2] / "dashboard" / "app" / "main.py"
IDS = [f"C-{i:03d}" for i in range(6)]


@pytest.fixture(scope="module")
def credit_with_ids() -> pd.DataFrame:
    frame = pd.read_csv(demos.data_path("credit")).head(len(IDS))
    frame.insert(0, "customer_id", IDS)
    return frame


def test_explain_with_id_from_a_european_excel_csv(credit_with_ids, tmp_path):
    """The CLI end to end: a semicolon CSV with decimal commas, as Excel saves it in Europe."""
    data = tmp_path / "credit.csv"
    data.write_bytes(credit_with_ids.to_csv(index=False, sep=";", decimal=",").encode("cp1252"))
    out, store = tmp_path / "run", tmp_path / "store.db"
    command = [WHYBOX, "explain", "demo:credit-xgboost", str(data), "--explainer", "tree-shap"]
    command += ["--out", str(out), "--id", "customer_id", "--label", "Status", "--rows", "1:4"]
    command += ["--store", str(store), "--report", str(tmp_path / "report.html")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    attributions = pd.read_csv(out / "attributions.csv")
    assert list(attributions.columns[:2]) == ["row", "customer_id"]
    assert attributions["customer_id"].tolist() == IDS[1:4]
    assert "customer_id" not in attributions.columns[2:-2]  # not a feature
    record = json.loads((out / "run.json").read_text())
    assert record["data"]["id"] == "customer_id"
    assert record["data"]["explained_ids"] == IDS[1:4]
    assert any("decimal comma" in note for note in record["data"]["notes"])
    (entry,) = RunStore(store).runs()
    assert entry.command[entry.command.index("--id") + 1] == "customer_id"
    assert (entry.id_column, entry.identifiers) == ("customer_id", IDS[1:4])
    assert RunStore(store).runs(identifier="C-002") == [entry]
    assert RunStore(store).runs(identifier="C-004") == []  # in the data, not explained
    listed = subprocess.run(
        [WHYBOX, "runs", "--store", str(store), "--id", "C-000"], capture_output=True, text=True
    )
    assert listed.returncode == 0 and "no runs that explained 'C-000'" in listed.stdout
    assert not RunStore(store).verify(entry.run_id)  # attributions.csv with ids as recorded
    report = (tmp_path / "report.html").read_text()
    assert "Row 2, customer_id C-002" in report


def test_without_id_the_note_suggests_it(credit_with_ids):
    data = load_data(
        credit_with_ids.to_csv(index=False).encode(),
        demos.resolve_model("demo:credit-xgboost"),
        label="Status",
    )
    assert any("--id customer_id" in note for note in data.notes), data.notes
    assert data.ids is None


def test_a_position_model_suggests_id_rather_than_label(binary_mlp, dataset):
    frame = dataset.frame.copy()
    frame.columns = [f"f{i}" for i in range(frame.shape[1])]
    frame.insert(0, "case_no", range(1000, 1000 + len(frame)))
    raw = frame.to_csv(index=False).encode()
    data = load_data(raw, _unnamed(binary_mlp), id="case_no")
    assert data.id_name == "case_no" and data.ids.tolist()[:2] == [1000, 1001]
    with pytest.raises(WhyboxError) as caught:
        load_data(raw, _unnamed(binary_mlp))
    assert "'case_no' looks like an identifier: name it with --id case_no" in str(caught.value)
    assert "--label" not in str(caught.value)


def _unnamed(model):
    """The model as one that takes its features by position (no names)."""
    import copy

    unnamed = copy.copy(model)
    unnamed.feature_names = None
    return unnamed


def test_id_errors_name_the_columns(credit_with_ids):
    raw = credit_with_ids.to_csv(index=False).encode()
    with pytest.raises(WhyboxError, match="identifier column 'nope' is not in the data"):
        load_data(raw, id="nope")
    with pytest.raises(WhyboxError, match="cannot be both the label and the identifier"):
        load_data(raw, label="Status", id="Status")


def test_dashboard_identifier_column(credit_with_ids):
    """Chosen in the sidebar: the job rebuilds the same data, the Local view labels rows by
    identifier, the reproducing command has --id."""
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    at.radio(key="source").set_value("Upload files").run()
    at.file_uploader(key="model_file").upload(
        "credit.json", demos.model_path("credit-xgboost").read_bytes()
    ).run()
    raw = credit_with_ids.to_csv(index=False).encode()
    at.file_uploader(key="data_file").upload("credit.csv", raw, "text/csv").run()
    assert at.selectbox(key="id_column").options == ["none", *credit_with_ids.columns]
    at.selectbox(key="id_column").set_value("customer_id").run()
    at.text_input(key="label").set_value("Status").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    inputs = at.session_state["inputs"]
    assert inputs.data.id_name == "customer_id" and "--id" in inputs.source
    assert dict(inputs.data_source.options)["id"] == "customer_id"
    at.selectbox(key="explainer").set_value("tree-shap").run()
    explain(at)
    at.switch_page("views/local.py").run()
    assert not at.exception
    at.text_input(key="local_row:id").set_value("C-001").run()  # found by identifier
    assert not at.exception and at.number_input(key="local_row").value == 1
    assert any(c.value.startswith(r"Row 1 (customer\_id C-001)") for c in at.caption)
