"""Every file of the hostile corpus (make_corpus.py) fed to the command line and to the
dashboard's upload: each gets one clear line (or loads as it should), nothing in it runs,
memory stays flat, and the dashboard session keeps its earlier work."""

from __future__ import annotations

import atexit
import re
import resource
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import settle
from tests.hostile.make_corpus import DATA, IMAGE_MODEL, IMAGES, MODEL, Case, write_corpus
from whybox.dashboard.cli.main import main
from whybox.model_zoo import WhyboxError, demos, load_data, load_model

APP = Path(__file__).parents[2] / "dashboard" / "app" / "main.py"
MAX_GROWTH_MB = 1024  # growth of the process's peak memory that one file may cause
CORPUS = Path(tempfile.mkdtemp(prefix="whybox-hostile-"))
atexit.register(shutil.rmtree, CORPUS, ignore_errors=True)
CASES = write_corpus(CORPUS)
MODELS = {DATA: demos.model_path("credit-xgboost"), IMAGES: CORPUS / IMAGE_MODEL}
DEMO_DATA = "demo:credit"
# Warning categories Python does not print by default; any other warning is a stderr line.
SILENT = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def by_name(cases: list[Case]) -> dict:
    return {"argvalues": cases, "ids": [c.name for c in cases]}


def peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def code_ran(case: Case) -> bool:
    return case.marker is not None and (CORPUS / case.marker).exists()


def error_problems(case: Case, messages: list[str]) -> list[str]:
    """What is wrong with the error messages shown for `case` (nothing: one that matches)."""
    if len(messages) != 1:
        return [f"{case.name}: expected one error, got {messages}"]
    message = messages[0]
    if "\n" in message or "Traceback" in message or not re.search(case.error, message):
        return [f"{case.name}: {message!r} does not match /{case.error}/"]
    return []


@pytest.mark.parametrize("case", **by_name(CASES))
def test_command_line(
    case: Case, tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for setting in case.settings:
        monkeypatch.setenv(*setting)
    path = str(CORPUS / case.name)
    if case.target == MODEL:
        model, data = path, DEMO_DATA
    else:
        model, data = str(MODELS[case.target]), path
    before = peak_mb()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = main(["explain", model, data, "--out", str(tmp_path / "run"), "--rows", "0:2"])

    printed = [
        f"{w.category.__name__}: {w.message}\n"
        for w in caught
        if not issubclass(w.category, SILENT)
    ]
    err = "".join(printed) + capfd.readouterr().err  # what a terminal would show on stderr
    assert not code_ran(case)
    assert peak_mb() - before < MAX_GROWTH_MB
    if case.error is None:
        assert status == 0 and not err, err
        assert len(pd.read_csv(tmp_path / "run" / "attributions.csv")) == 2
        return
    lines = err.splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert not error_problems(case, [lines[0].removeprefix("error: ")])


@pytest.fixture(scope="module")
def credit_model():
    return demos.resolve_model("demo:credit-xgboost")


@pytest.mark.parametrize("case", **by_name([c for c in CASES if c.error is None]))
def test_tables_load_in_the_models_order(case: Case, credit_model) -> None:
    data = load_data(CORPUS / case.name, credit_model)
    assert data.feature_names == credit_model.feature_names
    np.testing.assert_array_equal(data.values, np.array(case.expected))  # NaN equals NaN here
    if case.note:
        assert any(re.search(case.note, note) for note in data.notes), data.notes
    assert all(len(note) < 300 for note in data.notes)


@pytest.mark.parametrize("case", **by_name([c for c in CASES if c.marker]))
def test_the_code_in_the_files_runs_when_trusted(case: Case) -> None:
    """The payloads are live: loaded the unsafe way, each creates its marker."""
    marker = CORPUS / case.marker
    try:
        if case.target == MODEL:
            with pytest.raises(WhyboxError):  # the code runs; what it returns is no model
                load_model(CORPUS / case.name, trusted=True)
        else:
            np.load(CORPUS / case.name, allow_pickle=True)
        assert marker.exists()
    finally:
        marker.unlink(missing_ok=True)


@pytest.mark.parametrize("target", [MODEL, DATA, IMAGES])
def test_dashboard_upload(target: str) -> None:
    """One session per input: an explanation of the demo first, then every file of the
    corpus uploaded in turn, then back to the demo, whose explanation must still be there."""
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    settle(at.button(key="explain").click().run())
    assert not at.exception and not at.error
    at.radio(key="source").set_value("Upload files").run()
    if target != MODEL:
        model = MODELS[target]
        at.file_uploader(key="model_file").upload(model.name, model.read_bytes()).run()
    uploader = "model_file" if target == MODEL else "data_file"
    problems = []
    for case in (c for c in CASES if c.target == target and c.upload):
        before = peak_mb()
        with pytest.MonkeyPatch.context() as settings:
            for setting in case.settings:
                settings.setenv(*setting)
            raw = (CORPUS / case.name).read_bytes()
            at.file_uploader(key=uploader).upload(case.name, raw).run()
        shown = [e.value for e in at.error]
        if at.exception:
            problems.append(f"{case.name}: exception {at.exception[0].value}")
        elif case.error is None:
            if shown or at.button(key="explain").disabled:  # loaded: nothing explained yet
                problems.append(f"{case.name}: did not load ({shown})")
        else:
            problems += error_problems(case, shown)
        if code_ran(case):
            problems.append(f"{case.name}: its code ran")
        if peak_mb() - before > MAX_GROWTH_MB:
            problems.append(f"{case.name}: peak memory grew by {peak_mb() - before} MB")
    at.radio(key="source").set_value("Built-in demo").run()
    assert not at.exception and not at.error
    assert at.button(key="explain").disabled  # the earlier explanation is still there
    assert not problems, "\n".join(problems)
