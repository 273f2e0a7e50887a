"""The operator's server data folder (WHYBOX_DATA_DIR): only the files listed there can be
chosen, they are read on the server without the upload size limit, and a job carries
their path and SHA-256, never their bytes."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from tests.dashboard.test_app import app, explain, no_errors
from whybox.dashboard import settings
from whybox.dashboard.jobs import JobSpec, Source, rebuild
from whybox.model_zoo import Dataset, WhyboxError, demos
from whybox.model_zoo.model import file_sha256


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A server folder with the credit demo's model and data, a hidden file, a subfolder,
    a link to a file inside and a link leading out of it; set as WHYBOX_DATA_DIR."""
    served = tmp_path / "served"
    (served / "sub").mkdir(parents=True)
    shutil.copy(demos.model_path("credit-xgboost"), served / "credit.json")
    shutil.copy(demos.data_path("credit"), served / "credit.csv")
    (served / ".hidden.csv").write_text("a\n1\n")
    (served / "sub" / "nested.csv").write_text("a\n1\n")
    (tmp_path / "secret.csv").write_text("a\n1\n")
    (served / "inside.csv").symlink_to(served / "credit.csv")
    (served / "outside.csv").symlink_to(tmp_path / "secret.csv")
    (served / "up").symlink_to(tmp_path)
    monkeypatch.setenv(settings.DATA_DIR_ENV, str(served))
    return served


def test_lists_only_the_folders_own_files(folder: Path) -> None:
    assert settings.server_files(settings.data_dir()) == ["credit.csv", "credit.json", "inside.csv"]


@pytest.mark.parametrize(
    "name", ["outside.csv", "../secret.csv", "sub/nested.csv", ".hidden.csv", "up", "/etc/passwd"]
)
def test_refuses_a_name_it_does_not_list(folder: Path, name: str) -> None:
    with pytest.raises(WhyboxError, match="not a file in the server data folder"):
        settings.server_file(settings.data_dir(), name)


def test_a_setting_that_is_not_a_folder_is_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(settings.DATA_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(WhyboxError, match="WHYBOX_DATA_DIR=.* is not a folder"):
        settings.data_dir()


def test_a_server_file_loads_over_the_upload_limit_and_explains(folder, monkeypatch) -> None:
    monkeypatch.setenv("WHYBOX_MAX_UPLOAD_MB", "1")
    big = folder / "credit.csv"
    lines = big.read_bytes().splitlines(keepends=True)
    big.write_bytes(lines[0] + b"".join(lines[1:]) * 8)  # over 1 MB, rows repeated
    assert big.stat().st_size > 2**20
    at = app().run()
    at.radio(key="source").set_value("Server folder").run()
    at.selectbox(key="server_model").set_value("credit.json").run()
    at.selectbox(key="server_data").set_value("credit.csv").run()
    at.text_input(key="label").set_value("Status").run()
    no_errors(at)
    explain(at)
    loaded = at.session_state["inputs"]
    assert loaded.data_source.path == str(big) and loaded.data_source.raw is None
    assert len(loaded.data) == 8 * (len(lines) - 1)
    tables = [v for _, v in at.session_state["latest"].values() if isinstance(v, Dataset)]
    assert [t.label_name for t in tables] == ["Status"]  # the one read before it is gone
    at.switch_page("views/global_view.py").run()
    no_errors(at)


def test_a_job_names_a_server_file_by_path_and_digest(folder: Path) -> None:
    model, data = folder / "credit.json", folder / "credit.csv"
    spec = JobSpec(
        Source.of_path(model, file_sha256(model)),
        Source.of_path(data, file_sha256(data), label="Status"),
        "tree-shap",
        {},
        [0, 1],
    )
    assert spec.data.raw is None
    assert len(pickle.dumps(spec)) < 2_000 < data.stat().st_size
    assert len(rebuild.run(spec).values) == 2


def test_a_server_file_changed_on_disk_is_a_clear_error(folder: Path) -> None:
    path = folder / "credit.csv"
    source = Source.of_path(path, file_sha256(path), label="Status")
    path.write_bytes(path.read_bytes().replace(b"\n1", b"\n2", 1))
    with pytest.raises(WhyboxError, match="'credit.csv' changed on disk since it was chosen"):
        source.content()
