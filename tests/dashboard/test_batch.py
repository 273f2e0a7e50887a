"""Partitioned runs on this machine (`whybox explain --stream`): the same values as one
run over the whole table, whatever the partitioning; resumed runs; failures by partition."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.dashboard.test_cli import run
from whybox.dashboard.jobs import batch
from whybox.dashboard.jobs.partitions import PartitionedTable
from whybox.explainers import registry
from whybox.model_zoo import demos, load_data

ROWS = 150


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    """The first rows of the credit demo as CSV, one Parquet file, and a folder of three
    Parquet files of uneven sizes."""
    folder = tmp_path_factory.mktemp("credit")
    frame = pd.read_csv(demos.data_file("demo:credit")).head(ROWS)
    frame.insert(0, "applicant", [f"A{i:04d}" for i in range(ROWS)])
    frame.to_csv(folder / "credit.csv", index=False)
    frame.to_parquet(folder / "credit.parquet", row_group_size=40)
    (folder / "parts").mkdir()
    for name, rows in (("a", slice(0, 61)), ("b", slice(61, 70)), ("c", slice(70, ROWS))):
        frame.iloc[rows].to_parquet(folder / "parts" / f"{name}.parquet")
    return folder


def whole_run(model_ref, path, explainer):
    model = demos.resolve_model(model_ref)
    data = load_data(path, model, id="applicant")
    return explainer.explain(model, data)


def partitioned(model_ref, path, explainer, out, partition_rows, runner=batch.run_here):
    model = demos.resolve_model(model_ref)
    table = PartitionedTable(path, partition_rows)
    job, notes = batch.plan(model_ref, model, table, explainer, None, None, "applicant", False)
    done = batch.BatchRun(job, out, table.rows)
    done.run(table, runner)
    return done.save(model, ["test"], notes, "here", 0.0)


def read_parts(out):
    return pd.read_parquet(out / "attributions").sort_values("row").reset_index(drop=True)


CASES = [
    ("demo:credit-xgboost", "tree-shap", {}),
    ("demo:credit-xgboost", "kernel-shap", {"samples": 64, "background": 20, "seed": 3}),
    ("demo:credit-mlp", "integrated-gradients", {"background": 30, "steps": 16}),
    ("demo:credit-mlp", "lime", {"samples": 50, "seed": 1}),
]


@pytest.mark.parametrize(("model_ref", "method", "params"), CASES)
@pytest.mark.parametrize(("source", "partition_rows"), [("credit.csv", 37), ("parts", 25)])
def test_partitions_equal_one_run(
    credit, tmp_path, model_ref, method, params, source, partition_rows
):
    explainer = registry.get(method)(**params)
    whole = whole_run(model_ref, credit / "credit.csv", explainer)
    record = partitioned(model_ref, credit / source, explainer, tmp_path, partition_rows)
    parts = read_parts(tmp_path)
    np.testing.assert_array_equal(parts["row"], np.arange(ROWS))
    # A network computes in float32, whose sums depend on the batch's size (the BLAS kernel
    # chosen): equal to float32 precision there, to float64's on the trees.
    rtol, atol = (1e-5, 1e-6) if model_ref.endswith("mlp") else (0, 1e-12)
    for column, expected in (
        (whole.feature_names, whole.values),
        ("base_value", whole.base_values),
        ("prediction", whole.predictions),
    ):
        np.testing.assert_allclose(parts[column].to_numpy(), expected, rtol=rtol, atol=atol)
    assert parts["applicant"].tolist() == [f"A{i:04d}" for i in range(ROWS)]
    assert record["complete"] and record["rows"] == ROWS and not record["failed"]
    assert record["method"] == method and record["params"] == whole.params
    mean = np.abs(whole.values).mean(axis=0)
    np.testing.assert_allclose([record["global"][f] for f in whole.feature_names], mean)
    if "background" in params:
        assert record["background"] == {
            "rows": params["background"],
            "of": ROWS,
            "seed": whole.seed,
        }
    files = sorted(p.name for p in (tmp_path / "attributions").iterdir())
    assert files == [p["name"] + ".parquet" for p in record["partitions"]]
    assert set(record["files"]) == {f"attributions/{name}" for name in files}


def test_partitions_follow_the_files_and_number_rows(credit):
    folder = PartitionedTable(credit / "parts", 25)
    sizes = [(p.name, p.first_row, len(p.content)) for p in folder.partitions()]
    assert sizes == [
        ("part-00000", 0, 25), ("part-00001", 25, 25), ("part-00002", 50, 11),
        ("part-00003", 61, 9), ("part-00004", 70, 25), ("part-00005", 95, 25),
        ("part-00006", 120, 25), ("part-00007", 145, 5),
    ]  # fmt: skip
    assert folder.rows == ROWS == PartitionedTable(credit / "credit.csv", 1000).rows
    # row groups of 40 are joined back into partitions of 64
    single = PartitionedTable(credit / "credit.parquet", 64)
    assert [len(p.content) for p in single.partitions()] == [64, 64, 22]
    picked = single.take(np.array([0, 63, 64, 149]))
    assert picked["applicant"].tolist() == ["A0000", "A0063", "A0064", "A0149"]
    assert folder.sha256() != single.sha256() and len(single.sha256()) == 64


def test_a_stopped_run_resumes_without_redoing_partitions(credit, tmp_path):
    explainer = registry.get("kernel-shap")(samples=64, background=10)
    explained, stop_after = [], [2]

    def stopping(job, partitions):
        for outcome in batch.run_here(job, partitions):
            explained.append(outcome.name)
            yield outcome
            if len(explained) == stop_after[0]:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        partitioned("demo:credit-xgboost", credit / "credit.csv", explainer, tmp_path, 40, stopping)
    first = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "attributions").iterdir()}
    assert sorted(first) == ["part-00000.parquet", "part-00001.parquet"]
    explained.clear()
    stop_after[0] = None
    record = partitioned(
        "demo:credit-xgboost", credit / "credit.csv", explainer, tmp_path, 40, stopping
    )
    assert explained == ["part-00002", "part-00003"] and record["complete"]
    assert all((tmp_path / "attributions" / n).stat().st_mtime_ns == t for n, t in first.items())
    whole = whole_run("demo:credit-xgboost", credit / "credit.csv", explainer)
    np.testing.assert_allclose(
        read_parts(tmp_path)[whole.feature_names].to_numpy(), whole.values, atol=1e-12
    )


def test_parts_of_another_run_are_refused(credit, tmp_path, capsys):
    args = ["explain", "demo:credit-xgboost", credit / "credit.csv", "--out", tmp_path, "--stream"]
    status, out, err = run(capsys, *args, "--partition-rows", "100")
    assert status == 0, err
    assert "explained 150 of 150 rows with tree-shap in 2 partitions" in out
    status, _, err = run(capsys, *args, "--partition-rows", "50")
    assert status == 2 and "holds attributions of another run (part-00000.parquet)" in err
    assert len(err.strip().splitlines()) == 1


def test_a_failing_partition_is_named_and_the_others_are_written(credit, tmp_path, capsys):
    frame = pd.read_csv(credit / "credit.csv")
    frame["Income"] = frame["Income"].astype(object)
    frame.loc[120, "Income"] = "unknown"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    out = tmp_path / "run"
    status, _, err = run(
        capsys, "explain", "demo:credit-xgboost", tmp_path / "bad.csv", "--out", out,
        "--stream", "--partition-rows", "50", "--id", "applicant",
    )  # fmt: skip
    assert status == 1
    assert (
        "error: partition part-00002 (rows 100 to 149): non-numeric values in column(s) 'Income'"
        in err
    )
    assert "1 partition(s) failed; run the same command again to finish" in err
    record = json.loads((out / "run.json").read_text())
    assert not record["complete"] and record["rows"] == 100
    assert [f["partition"] for f in record["failed"]] == ["part-00002"]
    assert sorted(p.stem for p in (out / "attributions").iterdir()) == ["part-00000", "part-00001"]


def test_part_files_say_which_run_they_belong_to(credit, tmp_path):
    explainer = registry.get("tree-shap")()
    partitioned("demo:credit-xgboost", credit / "credit.parquet", explainer, tmp_path, 100)
    metadata = pq.read_schema(tmp_path / "attributions" / "part-00000.parquet").metadata
    record = json.loads(metadata[b"whybox.explanation"])
    assert record["rows"] == 100 and record["method"] == "tree-shap"
    assert len(metadata[b"whybox.run"]) == 64


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--stream", "--rows", "0:10"], "--rows cannot be used with --stream or --cluster"),
        (["--stream", "--partition-rows", "0"], "Invalid value for '--partition-rows'"),
        (
            ["--cluster", "ray://127.0.0.1:1"],
            "the Ray cluster at ray://127.0.0.1:1 does not answer",
        ),
        (["--cluster", "nowhere"], "--cluster 'nowhere' is not an address"),
    ],
)
def test_bad_partitioned_runs_are_one_line(credit, tmp_path, capsys, args, words):
    status, _, err = run(
        capsys, "explain", "demo:credit-xgboost", credit / "credit.csv", "--out", tmp_path, *args
    )
    assert status == 2 and words in err, err
    assert not (tmp_path / "attributions").exists() or not any(
        (tmp_path / "attributions").iterdir()
    )


def test_other_formats_are_refused(tmp_path, capsys):
    (tmp_path / "data.json").write_text("{}")
    status, _, err = run(
        capsys,
        "explain",
        "demo:credit-xgboost",
        tmp_path / "data.json",
        "--out",
        tmp_path / "o",
        "--stream",
    )
    assert status == 2 and "cannot be read in partitions; give a Parquet file" in err
    status, _, err = run(
        capsys,
        "explain",
        "demo:digits-cnn",
        tmp_path / "data.json",
        "--out",
        tmp_path / "o",
        "--stream",
    )
    assert (
        status == 2
        and "'data.json' cannot be read in partitions; give a folder or zip of images" in err
    )
    status, _, err = run(
        capsys,
        "explain",
        "demo:credit-xgboost",
        "demo:credit",
        "--out",
        tmp_path / "o",
        "--stream",
        "--mean",
        "0.5",
    )
    assert status == 2 and "--image-size, --mean and --std apply to image models only" in err


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """30 of the digits demo's images as a zip and as a folder."""
    import zipfile

    folder = tmp_path_factory.mktemp("digits")
    (folder / "images").mkdir()
    with zipfile.ZipFile(demos.data_file("demo:digits")) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".png"))[:30]
        with zipfile.ZipFile(folder / "digits.zip", "w") as small:
            for name in names:
                small.writestr(name, archive.read(name))
                (folder / "images" / Path(name).name).write_bytes(archive.read(name))
    return folder


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("integrated-gradients", {"steps": 8}),
        ("gradient-shap", {"samples": 8, "background": 5, "seed": 2}),
    ],
)
@pytest.mark.parametrize("source", ["digits.zip", "images"])
def test_image_partitions_equal_one_run(digits, tmp_path, method, params, source):
    from whybox.dashboard.jobs.partitions import PartitionedImages
    from whybox.model_zoo.image_data import load_images

    explainer = registry.get(method)(**params)
    model = demos.resolve_model("demo:digits-cnn")
    images = load_images(digits / source, model.input_shape)
    whole = explainer.explain(model, images)
    table = PartitionedImages(digits / source, 7)
    job, _ = batch.plan("demo:digits-cnn", model, table, explainer, None, None, None, False)
    assert job.data_sha256 == images.sha256  # the same data, named the same way
    run_ = batch.BatchRun(job, tmp_path, table.rows)
    run_.run(table, batch.run_here)
    record = run_.save(model, ["test"], [], "here", 0.0)
    parts = pq.read_table(tmp_path / "attributions").to_pandas().sort_values("row")
    maps = np.stack(parts["attribution"].to_numpy()).reshape(whole.values.shape)
    np.testing.assert_allclose(maps, whole.values, rtol=1e-5, atol=1e-6)
    assert parts["source"].tolist() == images.sources
    assert (
        record["complete"]
        and record["rows"] == 30
        and record["shape"] == list(whole.values.shape[1:])
    )
    assert len(record["partitions"]) == 5 and record["global"] == {}


def test_reading_partitions_holds_one_row_group_at_most(tmp_path):
    """Arrow's pre-buffering kept every row group read until the file closed: a
    10,000,000-row file grew the reader past 3 GB."""
    import pyarrow as pa

    values = np.random.default_rng(0).standard_normal((600_000, 10)).astype(np.float32)
    frame = pd.DataFrame(values, columns=[f"f{i}" for i in range(10)])
    frame.to_parquet(tmp_path / "wide.parquet", row_group_size=100_000)  # 4 MB a group, 24 in all
    before = pa.total_allocated_bytes()
    peak = max(
        pa.total_allocated_bytes() - before
        for _ in PartitionedTable(tmp_path / "wide.parquet", 20_000).partitions()
    )
    assert peak < 20 * 2**20  # 13 MB here; 43 MB with pre-buffering
