"""The audit trail: runs recorded by `whybox explain`, listed by `whybox runs`, checked for
tampering, and the same inputs and seed giving the same bytes."""

import getpass
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest

from whybox.dashboard import settings
from whybox.dashboard.cli.main import main
from whybox.dashboard.runs import audit
from whybox.dashboard.runs.audit import RunStore
from whybox.dashboard.runs.records import load_run
from whybox.model_zoo import WhyboxError

CREDIT = ["demo:credit-xgboost", "demo:credit", "--rows", "0:5"]
MLP = ["demo:credit-mlp", "demo:credit", "--explainer", "permutation-shap", "--rows", "2:4"]


def explain(out: Path, store: Path, *args: str) -> dict:
    assert main(["explain", *args, "--out", str(out), "--store", str(store)]) == 0
    return json.loads((out / "run.json").read_text())


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> tuple[Path, dict, dict]:
    root = tmp_path_factory.mktemp("history")
    store = root / "runs.sqlite"
    first = explain(root / "first", store, *CREDIT)
    second = explain(root / "second", store, *MLP, "--seed", "3")
    return store, first, second


def copied_run(history, tmp_path: Path):
    """The first run of `history` in a directory of its own, to change files in."""
    store, first, _ = history
    return load_run(
        shutil.copytree(RunStore(store).get(first["run_id"]).directory, tmp_path / "run")
    )


def test_explain_records_the_run_and_the_hash_of_every_file(history) -> None:
    store, first, _ = history
    entry = RunStore(store).get(first["run_id"])
    directory = Path(entry.directory)
    assert directory.name == "first" and directory.is_absolute()
    run_json = hashlib.sha256((directory / "run.json").read_bytes()).hexdigest()
    assert entry.files == first["files"] | {"run.json": run_json}
    assert (entry.user, entry.source, entry.command) == (getpass.getuser(), "cli", first["command"])
    assert (entry.model_name, entry.model_format) == ("credit-xgboost", "xgboost-json")
    assert entry.model_sha256 == first["model"]["sha256"]
    assert entry.data_sha256 == first["data"]["sha256"] and entry.data_name == "credit.csv"
    assert (entry.explainer, entry.params, entry.seed) == ("tree-shap", first["params"], 0)
    assert (entry.output_space, entry.target, entry.device) == ("margin", ["good"], first["device"])
    assert entry.versions == first["versions"] and entry.rows == 5
    assert entry.created == first["created"] and entry.seconds >= first["seconds"] > 0


def test_runs_lists_newest_first(history, capsys) -> None:
    store, first, second = history
    assert main(["runs", "--store", str(store)]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == [
        "TIME",
        "RUN",
        "ID",
        "USER",
        "MODEL",
        "EXPLAINER",
        "ROWS",
        "SECONDS",
        "DIRECTORY",
    ]
    assert [line.split()[1] for line in lines] == [second["run_id"], first["run_id"]]
    sha = second["model"]["sha256"][:8]
    assert lines[0].split()[2:7] == [getpass.getuser(), "credit-mlp", sha, "permutation-shap", "2"]
    assert lines[0].endswith(str((store.parent / "second").resolve()))

    assert main(["runs", "--store", str(store), "--limit", "1", "--json"]) == 0
    (newest,) = json.loads(capsys.readouterr().out)
    assert newest["run_id"] == second["run_id"] and newest["seed"] == 3
    assert newest["files"]["attributions.csv"] == second["files"]["attributions.csv"]


def test_runs_of_an_empty_store_says_so_and_creates_nothing(tmp_path, capsys) -> None:
    assert main(["runs", "--store", str(tmp_path / "none.sqlite")]) == 0
    assert capsys.readouterr().out.strip() == f"no runs recorded in {tmp_path / 'none.sqlite'}"
    assert not (tmp_path / "none.sqlite").exists()


def test_record_get_round_trip(history, tmp_path) -> None:
    run = copied_run(history, tmp_path)
    store = RunStore(tmp_path / "deep" / "runs.sqlite")
    store.record(run, source="dashboard", user=None, duration=1.5)
    entry = store.get(run.run_id)
    assert (entry.user, entry.source, entry.seconds) == (None, "dashboard", 1.5)
    assert entry.directory == str(run.directory.resolve()) and store.runs() == [entry]
    with pytest.raises(WhyboxError, match="already recorded"):
        store.record(run, source="cli", user="x", duration=1.0)
    with pytest.raises(WhyboxError, match="no run 'nope' in the run store"):
        store.get("nope")


def test_runs_of_one_user_or_one_session(history, tmp_path) -> None:
    run = copied_run(history, tmp_path)
    store = RunStore(tmp_path / "runs.sqlite")
    owners = [("ann", None), (None, "session-a"), (None, "session-b"), ("ann", "session-b")]
    for user, session in owners:
        run.record["run_id"] = f"{user}-{session}"
        store.record(run, source="dashboard", user=user, duration=1.0, session=session)
    assert {e.run_id for e in store.runs(user="ann")} == {"ann-None", "ann-session-b"}
    assert {e.run_id for e in store.runs(session="session-b")} == {
        "None-session-b",
        "ann-session-b",
    }
    assert [e.run_id for e in store.runs(user="ann", session="session-b")] == ["ann-session-b"]
    assert store.runs(user="bob") == [] and len(store.runs()) == 4


def test_verify_shows_changed_and_missing_files(history, tmp_path) -> None:
    run = copied_run(history, tmp_path)
    store = RunStore(tmp_path / "runs.sqlite")
    store.record(run, source="cli", user=None, duration=1.0)
    assert store.verify(run.run_id) == []
    csv = run.directory / "attributions.csv"
    csv.write_text(csv.read_text().replace("0.", "1.", 1))
    assert store.verify(run.run_id) == ["attributions.csv"]
    (run.directory / "explanation.npz").unlink()
    record = run.directory / "run.json"
    record.write_text(record.read_text().replace('"seed": 0', '"seed": 1'))
    assert store.verify(run.run_id) == ["attributions.csv", "explanation.npz", "run.json"]


WRITER = """
import json, sys, types
from pathlib import Path
from whybox.dashboard.runs.audit import RunStore
path, prefix, source = sys.argv[1:]
record = json.loads((Path(source) / "run.json").read_text())
for i in range(20):
    run = types.SimpleNamespace(directory=Path(source), record=dict(record, run_id=f"{prefix}{i}"))
    RunStore(Path(path)).record(run, "cli", None, 0.5)
"""


def test_threads_and_processes_record_at_once(history, tmp_path) -> None:
    path = tmp_path / "runs.sqlite"  # created by whichever writer comes first
    source = RunStore(history[0]).get(history[1]["run_id"])
    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"p{n}-", source.directory])
        for n in range(2)
    ]
    record = load_run(Path(source.directory)).record

    def write(prefix: str) -> None:
        for i in range(20):
            run = types.SimpleNamespace(
                directory=Path(source.directory), record=dict(record, run_id=f"{prefix}{i}")
            )
            RunStore(path).record(run, "dashboard", "ann", 0.5)

    threads = [threading.Thread(target=write, args=(f"t{n}-",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [process.wait(timeout=60) for process in processes] == [0, 0]
    ids = {entry.run_id for entry in RunStore(path).runs()}
    assert ids == {f"{who}{n}-{i}" for who in "pt" for n in range(2) for i in range(20)}


def test_an_unwritable_store_is_an_error_before_any_work(tmp_path, capsys) -> None:
    (tmp_path / "file").write_text("not a folder")
    store = tmp_path / "file" / "runs.sqlite"
    status = main(["explain", *CREDIT, "--out", str(tmp_path / "out"), "--store", str(store)])
    err = capsys.readouterr().err
    assert status == 2 and "WHYBOX_STORE" in err and str(store) in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_older_store_is_read_and_gains_the_later_columns(history, tmp_path, version) -> None:
    path = tmp_path / "old.sqlite"
    schema = audit.SCHEMA
    for added in range(version + 1, audit.SCHEMA_VERSION + 1):
        for column, kind in audit.ADDED[added].items():
            schema = schema.replace(f"\n    {column} {kind},", "").replace(
                f",\n    {column} {kind}", ""
            )
    later = range(version + 1, audit.SCHEMA_VERSION + 1)
    assert all(f" {c} " not in schema for added in later for c in audit.ADDED[added])
    older = RunStore(tmp_path / "older.sqlite")
    older.record(copied_run(history, tmp_path), "cli", "ann", 1.0)
    columns = ", ".join(c for c in audit.COLUMNS if f"    {c} " in schema)
    with sqlite3.connect(path) as connection:
        connection.execute(schema)
        connection.execute(f"PRAGMA user_version = {version}")
        connection.execute(f"ATTACH '{older.path}' AS older")
        connection.execute(f"INSERT INTO runs ({columns}) SELECT {columns} FROM older.runs")
        connection.execute("UPDATE runs SET run_id = 'old'")
    read = RunStore(path, create=False)
    assert [e.run_id for e in read.runs()] == ["old"]  # read as it is
    assert read.runs(identifier="1") == [] and read.runs(user="ann")[0].identifiers is None
    store = RunStore(path)
    store.record(load_run(tmp_path / "run"), "dashboard", None, 1.0, session="s")
    assert [e.session for e in store.runs()] == ["s", None]
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == audit.SCHEMA_VERSION


def test_a_store_from_a_newer_version_is_refused(tmp_path) -> None:
    path = tmp_path / "runs.sqlite"
    RunStore(path)
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(WhyboxError, match="schema version 99"):
        RunStore(path).runs()


def test_store_path_setting(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(settings.STORE_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert settings.store_path() == tmp_path / "whybox" / "runs.sqlite"
    monkeypatch.setenv(settings.STORE_ENV, str(tmp_path / "audit.db"))
    assert settings.store_path() == tmp_path / "audit.db"


DETERMINISM = {
    "tree-shap": [
        "demo:credit-xgboost",
        "demo:credit",
        "--explainer",
        "tree-shap",
        "--rows",
        "0:3",
    ],
    "permutation-shap": [*MLP, "--seed", "3"],
    "integrated-gradients": [
        "demo:digits-cnn",
        "demo:digits",
        "--explainer",
        "integrated-gradients",
        "--rows",
        "0:2",
    ],
}
REPEAT = """
import json, sys
from whybox.dashboard.cli.main import main
from whybox.dashboard.runs import audit
sys.exit(max(main(args) for args in json.loads(sys.argv[1])))
"""


@pytest.mark.slow
def test_the_same_inputs_and_seed_give_the_same_bytes(tmp_path) -> None:
    """Once in this process (whose random state earlier tests have moved) and once in a
    fresh one (another hash seed): every file of the attributions must match, byte for byte."""
    store = str(tmp_path / "runs.sqlite")
    runs = {
        copy: {name: tmp_path / copy / name for name in DETERMINISM} for copy in ("here", "fresh")
    }
    for name, args in DETERMINISM.items():
        assert main(["explain", *args, "--out", str(runs["here"][name]), "--store", store]) == 0
    commands = [
        ["explain", *args, "--out", str(runs["fresh"][name]), "--store", store]
        for name, args in DETERMINISM.items()
    ]
    subprocess.run([sys.executable, "-c", REPEAT, json.dumps(commands)], check=True, timeout=300)
    for name in DETERMINISM:
        here, fresh = (json.loads((runs[c][name] / "run.json").read_text()) for c in runs)
        assert here["run_id"] != fresh["run_id"] and here["files"] == fresh["files"]
        written = {"attributions.npy" if name == "integrated-gradients" else "attributions.csv"}
        assert written | {"explanation.npz"} <= set(here["files"])
        for file in here["files"]:
            assert (runs["here"][name] / file).read_bytes() == (
                runs["fresh"][name] / file
            ).read_bytes(), f"{name}: {file}"
    assert (
        json.loads((runs["here"]["permutation-shap"] / "run.json").read_text())[
            "max_standard_error"
        ]
        > 0
    )  # sampled, so the seed is what makes it repeatable
    other_seed = tmp_path / "seed-4"
    assert main(["explain", *MLP, "--seed", "4", "--out", str(other_seed), "--store", store]) == 0
    assert (other_seed / "attributions.csv").read_bytes() != (
        runs["here"]["permutation-shap"] / "attributions.csv"
    ).read_bytes()
