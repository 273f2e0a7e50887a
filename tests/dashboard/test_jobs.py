"""The worker pool: same numbers as in-process, Stop that kills, crashes and hangs that cost
one job only, queue positions that count down, and the thread budget held in the workers.

One pool (two workers of one thread each, and the standby worker for one-row jobs) serves
the whole module.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import fields

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from whybox.dashboard.app.session import with_rows
from whybox.dashboard.jobs import JobCancelled, JobError, JobSpec, Source
from whybox.dashboard.jobs.pool import LocalPool
from whybox.dashboard.jobs.rebuild import edited
from whybox.explainers import registry
from whybox.model_zoo import WhyboxError, demos, load_data, load_model
from whybox.model_zoo.image_data import load_images
from whybox.model_zoo.model import sha256_of

THREADS = 1
LONG_ROWS = np.arange(4039)  # exact-shapley on the credit MLP: minutes on one thread


@pytest.fixture(scope="module")
def pool():
    pool = LocalPool(workers=2, threads=THREADS, standby=True)
    pool.wait_ready(timeout=300)
    yield pool
    pool.shutdown()


@pytest.fixture(scope="module")
def credit_mlp():
    model = demos.resolve_model("demo:credit-mlp")
    data = demos.resolve_data("demo:credit", model)
    sources = (
        Source.of_demo("demo:credit-mlp", model.sha256),
        Source.of_demo("demo:credit", data.sha256),
    )
    return model, data, sources


def mlp_job(credit_mlp, rows, explainer="exact-shapley", **extra) -> JobSpec:
    _, _, (model, data) = credit_mlp
    return JobSpec(model, data, explainer, {}, rows, **extra)


def wait_until(condition, timeout: float = 120, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout} s"
        time.sleep(0.02)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def in_process(explainer: str, model, data, **kwargs):
    """The explanation computed here, with the workers' thread budget (float sums split
    over other thread counts differ in the last bits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        with threadpool_limits(THREADS):
            return registry.get(explainer)().explain(model, data, **kwargs)
    finally:
        torch.set_num_threads(before)


def assert_same(ours, reference, data=None) -> None:
    """`ours`, from a worker, equals `reference`; without `data` (the session's, which the
    job read), `ours` brought back the rows it explained (edited ones)."""
    if data is not None:
        assert ours.data.shape == (0, *reference.data.shape[1:])  # the rows stayed behind
        ours = with_rows(ours, data)
    for item in fields(reference):
        if item.name == "seconds":
            continue
        a, b = getattr(ours, item.name), getattr(reference, item.name)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), item.name
        else:
            assert a == b, item.name


def test_results_through_the_pool_equal_in_process_explanations_bit_for_bit(
    pool, credit_mlp
) -> None:
    model, data, _ = credit_mlp
    rows = np.arange(6)
    for explainer in ("exact-shapley", "permutation-shap"):
        ours = pool.submit(mlp_job(credit_mlp, rows, explainer)).result(120)
        assert_same(ours, in_process(explainer, model, data, rows=rows), data)

    # Uploads: the bytes travel with the job and load as the app loads them.
    raw_model = demos.model_path("credit-xgboost").read_bytes()
    raw_data = demos.data_path("credit").read_bytes()
    spec = JobSpec(
        Source.of_upload(raw_model, "m.json", sha256_of(raw_model)),
        Source.of_upload(raw_data, "d.csv", sha256_of(raw_data), label="Status"),
        "tree-shap",
        {},
        [5, 9, 2],
        target="good",
    )
    xgb = load_model(raw_model, name="m.json")
    table = load_data(raw_data, xgb, name="d.csv", label="Status")
    reference = registry.get("tree-shap")().explain(xgb, table, rows=[5, 9, 2], target="good")
    assert_same(pool.submit(spec).result(120), reference, table)

    # An image model is normalised by the upload's mean and std, as the sidebar does.
    raw_cnn, raw_zip = (
        demos.model_path("digits-cnn").read_bytes(),
        demos.data_path("digits").read_bytes(),
    )
    options = {"image_size": None, "mean": [0.1], "std": [0.5]}
    spec = JobSpec(
        Source.of_upload(raw_cnn, "cnn.safetensors", sha256_of(raw_cnn)),
        Source.of_upload(raw_zip, "digits.zip", sha256_of(raw_zip), **options),
        "grad-cam",
        {},
        [0, 1],
    )
    cnn = load_model(raw_cnn, name="cnn.safetensors")
    images = load_images(raw_zip, cnn.input_shape, name="digits.zip", **options)
    normalized = cnn.normalized(images.preprocessing["mean"], images.preprocessing["std"])
    reference = in_process("grad-cam", normalized, images, rows=[0, 1])
    assert_same(pool.submit(spec).result(120), reference, images)

    # A what-if: one row edited before explaining.
    values = tuple(float(v) * 1.5 for v in data.values[3])
    spec = mlp_job(credit_mlp, [3], edits=((3, values),))
    reference = in_process("exact-shapley", model, edited(data, ((3, values),)), rows=[3])
    assert_same(pool.submit(spec).result(120), reference)
    assert not np.array_equal(reference.data, data.values[[3]])


def test_bad_input_is_the_same_one_line_error_as_in_process(pool, credit_mlp) -> None:
    job = pool.submit(mlp_job(credit_mlp, [0], target="nope"))
    with pytest.raises(WhyboxError, match="unknown target class 'nope'; the model's classes"):
        job.result(120)
    assert job.state == "failed"


def test_thread_budget_is_held_in_the_workers(pool, credit_mlp) -> None:
    if os.cpu_count() == 1:
        pytest.skip("torch's default is one thread here: the budget changes nothing")
    assert torch.get_num_threads() != THREADS  # what a worker would have without its budget
    jobs = [pool.submit(mlp_job(credit_mlp, [row])) for row in range(3)]
    for job in jobs:
        job.result(120)
        assert job.threads == THREADS


def test_cancel_kills_the_worker_and_the_next_job_runs(pool, credit_mlp) -> None:
    job = pool.submit(mlp_job(credit_mlp, LONG_ROWS))
    wait_until(lambda: job.progress() is not None, what="progress from the long job")
    pid = job.worker
    assert job.cancel()
    assert gone(pid) and pid not in pool.worker_pids()
    with pytest.raises(JobCancelled):
        job.result(0)
    assert not job.cancel()  # already ended
    after = pool.submit(mlp_job(credit_mlp, [7])).result(120)
    assert after.rows.tolist() == [7] and np.isfinite(after.values).all()


@pytest.mark.parametrize(
    ("signum", "words"),
    [(signal.SIGKILL, "was killed (SIGKILL)"), (signal.SIGSEGV, "crashed (SIGSEGV)")],
)
def test_a_worker_that_dies_mid_job_fails_that_job_only(pool, credit_mlp, signum, words) -> None:
    doomed = pool.submit(mlp_job(credit_mlp, LONG_ROWS))
    other = pool.submit(mlp_job(credit_mlp, np.arange(30)))
    wait_until(lambda: doomed.progress() is not None and other.running(), what="both running")
    os.kill(doomed.worker, signum)
    with pytest.raises(JobError) as failure:
        doomed.result(60)
    message = str(failure.value)
    assert words in message and "\n" not in message
    assert message.startswith("exact-shapley on rows 0:4039 failed: the process computing it")
    assert other.result(300).values.shape == (30, 13)  # the other worker went on
    assert pool.submit(mlp_job(credit_mlp, [1])).result(120).values.shape == (1, 13)


def test_a_job_over_the_time_limit_is_stopped_with_a_one_line_error(pool, credit_mlp) -> None:
    limit, pool.timeout = pool.timeout, 1.0
    try:
        job = pool.submit(mlp_job(credit_mlp, LONG_ROWS))
        with pytest.raises(
            JobError, match="ran longer than the limit of 1 s set by WHYBOX_JOB_TIMEOUT and"
        ):
            job.result(60)
        wait_until(lambda: gone(job.worker), 30, "the worker's end")
    finally:
        pool.timeout = limit
    assert pool.submit(mlp_job(credit_mlp, [2])).result(120).values.shape == (1, 13)


def test_queue_positions_count_down_and_a_one_row_job_is_not_held_up(pool, credit_mlp) -> None:
    pool.wait_ready()
    running = [pool.submit(mlp_job(credit_mlp, np.arange(40))) for _ in range(2)]
    wait_until(lambda: all(job.running() for job in running), what="both workers busy")
    queued = [pool.submit(mlp_job(credit_mlp, np.arange(10))) for _ in range(4)]
    assert [job.position() for job in queued] == [0, 1, 2, 3]
    click = pool.submit(mlp_job(credit_mlp, [11]))  # one row: the standby worker takes it
    click.result(60)
    assert not any(job.done() for job in queued)
    seen = {job.id: [job.position()] for job in queued}
    while not all(job.done() for job in queued):
        for job in queued:
            seen[job.id].append(job.position())
        time.sleep(0.02)
    for job in queued:
        job.result(0)
        assert seen[job.id] == sorted(seen[job.id], reverse=True) and seen[job.id][-1] == 0
    assert len(set(seen[queued[-1].id])) >= 3  # counted down, not straight to 0
