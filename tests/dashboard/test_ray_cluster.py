"""`whybox explain --cluster` on a real Ray cluster: a head on the loopback address with two
worker processes, started for this module and stopped after it (never a mock)."""

import importlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.dashboard.test_batch import ROWS, credit, digits, read_parts, whole_run  # noqa: F401
from tests.dashboard.test_cli import run
from whybox.explainers import registry
from whybox.model_zoo import WhyboxError

ray = pytest.importorskip("ray", reason="whybox[ray] is installed by `make test`")
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`ray start --head` with two CPUs (two worker processes) and token authentication, its
    token given to this process as RAY_AUTH_TOKEN only (whybox turns token mode on, as Ray's
    client does not); yields its client address."""
    gcs, client = free_port(), free_port()
    temp = tmp_path_factory.mktemp("ray")
    mode = os.environ.pop("RAY_AUTH_MODE", None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        yield from _head(gcs, client, temp)
    os.environ.pop("RAY_AUTH_MODE", None)
    if mode is not None:
        os.environ["RAY_AUTH_MODE"] = mode


def _head(gcs, client, temp):
    subprocess.run(
        [
            RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}",
            f"--ray-client-server-port={client}", "--num-cpus=2", "--include-dashboard=false",
            "--disable-usage-stats", f"--temp-dir={temp}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
        env=os.environ | {"RAY_AUTH_MODE": "token"},
    )  # fmt: skip
    listening(client)  # `ray start` returns before its client server listens
    yield f"ray://127.0.0.1:{client}"
    subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)
    shutil.rmtree(temp, ignore_errors=True)


def listening(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def explain_on(capsys, cluster_address, data, out, *args):
    return run(
        capsys, "explain", "demo:credit-xgboost", data, "--out", out, "--cluster", cluster_address,
        "--id", "applicant", *args,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("partition_rows", ["40", "150"])
def test_cluster_equals_one_run(cluster, credit, tmp_path, capsys, partition_rows):  # noqa: F811
    params = ["--explainer", "kernel-shap", "--param", "samples=64", "--background", "20"]
    status, out, err = explain_on(
        capsys,
        cluster,
        credit / "credit.parquet",
        tmp_path,
        *params,
        "--partition-rows",
        partition_rows,
    )
    assert status == 0, err
    assert f"on Ray at {cluster}, 2 CPUs" in out
    whole = whole_run(
        "demo:credit-xgboost",
        credit / "credit.csv",
        registry.get("kernel-shap")(samples=64, background=20),
    )
    parts = read_parts(tmp_path)
    np.testing.assert_array_equal(parts["row"], np.arange(ROWS))
    np.testing.assert_allclose(
        parts[whole.feature_names].to_numpy(), whole.values, rtol=0, atol=1e-12
    )
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["complete"] and record["cluster"] == f"Ray at {cluster}, 2 CPUs"
    assert len(record["partitions"]) == -(-ROWS // int(partition_rows))


def ray_workers_running_partitions():
    return [
        process
        for process in psutil.process_iter(["cmdline"])
        if any("explain_partition" in part for part in process.info["cmdline"] or [])
    ]


@pytest.mark.slow
def test_a_killed_worker_is_retried(cluster, credit, tmp_path, capsys):  # noqa: F811
    killed = []

    def kill_one_worker():
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for process in ray_workers_running_partitions():
                process.kill()
                killed.append(process.pid)
                break
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    status, _, err = explain_on(
        capsys, cluster, credit / "credit.csv", tmp_path, "--explainer", "kernel-shap",
        "--param", "samples=256", "--background", "20", "--partition-rows", "30",
    )  # fmt: skip
    killer.join()
    assert killed, "no worker was seen running a partition"
    assert status == 0, err
    assert read_parts(tmp_path)["row"].tolist() == list(range(ROWS))
    assert json.loads((tmp_path / "run.json").read_text())["complete"]


@pytest.mark.slow
def test_a_failed_partition_is_named_and_the_run_resumes(cluster, credit, tmp_path, capsys):  # noqa: F811
    import pandas as pd

    frame = pd.read_csv(credit / "credit.csv")
    frame["Debt"] = frame["Debt"].astype(str)
    frame.loc[75, "Debt"] = "n/a"
    frame.to_parquet(tmp_path / "bad.parquet")
    out = tmp_path / "run"
    status, _, err = explain_on(
        capsys, cluster, tmp_path / "bad.parquet", out, "--partition-rows", "50"
    )
    assert status == 1, err
    assert (
        "error: partition part-00001 (rows 50 to 99): non-numeric values in column(s) 'Debt'" in err
    )
    record = json.loads((out / "run.json").read_text())
    assert [p["name"] for p in record["partitions"]] == ["part-00000", "part-00002"]
    written = {p: p.stat().st_mtime_ns for p in (out / "attributions").iterdir()}
    status, out_text, err = explain_on(
        capsys, cluster, tmp_path / "bad.parquet", out, "--partition-rows", "50"
    )
    assert status == 1 and "explained 100 of 150 rows" in out_text  # only part-00001 was tried
    assert {p: p.stat().st_mtime_ns for p in (out / "attributions").iterdir()} == written


def test_cluster_errors_say_what_to_do():
    from whybox.dashboard.jobs.ray_cluster import failure_text

    errors = ray.exceptions
    oom = failure_text(
        ray, errors.OutOfMemoryError("Task was killed due to the node running low on memory")
    )
    assert "a worker ran out of memory; use smaller partitions (--partition-rows)" in oom
    missing = errors.RayTaskError(
        "explain_partition", "Traceback ...", ModuleNotFoundError("No module named 'xgboost'")
    )
    assert (
        "the cluster lacks a dependency of the model or of whybox (No module named 'xgboost')"
        in failure_text(ray, missing)
    )
    bad = errors.RayTaskError(
        "explain_partition", "Traceback ...", WhyboxError("the data lacks column 'Age'")
    )
    assert failure_text(ray, bad) == "the data lacks column 'Age'"


@pytest.mark.slow
def test_dashboard_jobs_run_on_the_operators_cluster(cluster, monkeypatch):
    from whybox.dashboard.jobs import rebuild
    from whybox.dashboard.jobs.executor import JobCancelled
    from whybox.dashboard.jobs.ray_cluster import RayExecutor
    from whybox.dashboard.jobs.spec import JobSpec, Source
    from whybox.model_zoo import demos

    executors = importlib.import_module("whybox.dashboard.jobs.executor")
    monkeypatch.setenv("WHYBOX_CLUSTER", cluster)
    monkeypatch.setattr(executors, "_default", None)
    model = demos.resolve_model("demo:credit-xgboost")
    data = demos.resolve_data("demo:credit", model)
    sources = (
        Source.of_demo("demo:credit-xgboost", model.sha256),
        Source.of_demo("demo:credit", data.sha256),
    )

    def spec(rows, samples=64):
        return JobSpec(*sources, "kernel-shap", {"samples": samples, "background": 20}, rows=rows)

    pool = executors.executor()
    assert isinstance(pool, RayExecutor)
    try:
        job = pool.submit(spec(np.arange(5)))
        explained = job.result(timeout=300)
        assert job.done() and not job.running() and not job.cancel()
        np.testing.assert_allclose(
            explained.values, rebuild.run(spec(np.arange(5))).values, rtol=0, atol=1e-12
        )
        with pytest.raises(WhyboxError, match="row"):
            pool.submit(spec(np.array([10**7]))).result(timeout=300)
        slow = pool.submit(spec(np.arange(len(data)), samples=8192))
        assert slow.cancel() and slow.done()
        with pytest.raises(JobCancelled):
            slow.result(timeout=120)
    finally:
        pool.shutdown()


@pytest.mark.slow
def test_images_on_the_cluster_equal_one_run(cluster, digits, tmp_path, capsys):  # noqa: F811
    from whybox.model_zoo import demos
    from whybox.model_zoo.image_data import load_images

    status, out, err = run(
        capsys, "explain", "demo:digits-cnn", digits / "digits.zip", "--out", tmp_path,
        "--cluster", cluster, "--explainer", "integrated-gradients", "--param", "steps=8",
        "--partition-rows", "12",
    )  # fmt: skip
    assert status == 0, err
    assert "explained 30 of 30 images with integrated-gradients in 3 partitions" in out
    model = demos.resolve_model("demo:digits-cnn")
    whole = registry.get("integrated-gradients")(steps=8).explain(
        model, load_images(digits / "digits.zip", model.input_shape)
    )
    parts = read_parts(tmp_path)
    maps = np.stack(parts["attribution"].to_numpy()).reshape(whole.values.shape)
    np.testing.assert_allclose(maps, whole.values, rtol=1e-5, atol=1e-6)
