"""The session's table in shared memory: a local worker maps it with the job instead of
reading the data file again, with the same numbers; where it cannot (the table was let go,
a Ray task, no memfd_create) the job reads its source as before."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from whybox.dashboard.app.session import with_rows
from whybox.dashboard.jobs import JobSpec, Source, rebuild, shared
from whybox.dashboard.jobs.pool import LocalPool
from whybox.explainers import registry
from whybox.model_zoo import WhyboxError, demos

pytestmark = pytest.mark.skipif(not shared.available(), reason="memfd_create is Linux's")
KEY = ("test", "credit")


@pytest.fixture(scope="module")
def credit():
    model = demos.resolve_model("demo:credit-xgboost")
    return model, demos.resolve_data("demo:credit", model)


@pytest.fixture(scope="module")
def pool():
    pool = LocalPool(workers=1, threads=1, standby=False)
    pool.wait_ready(timeout=300)
    yield pool
    pool.shutdown()


def job(model, data_source: Source, table) -> JobSpec:
    model_source = Source.of_demo("demo:credit-xgboost", model.sha256)
    return JobSpec(model_source, data_source, "tree-shap", {}, np.arange(40), table=table)


def test_a_shared_table_holds_the_same_values_read_only_while_its_dataset_lives(credit):
    _, data = credit
    kept = shared.share(data, KEY)
    np.testing.assert_array_equal(kept.values, data.values)
    assert not kept.values.flags.writeable
    assert kept.categories == data.categories and kept.sha256 == data.sha256
    table = shared.find(KEY)
    assert table.shape == data.frame.shape and table.sha256 == data.sha256
    del kept
    gc.collect()
    assert shared.find(KEY) is None


def test_a_worker_maps_the_sessions_table_instead_of_reading_the_file(credit, pool):
    model, data = credit
    kept = shared.share(data, KEY)
    unreadable = Source(sha256=data.sha256, name="gone.csv", path="/nonexistent/gone.csv")
    result = pool.submit(job(model, unreadable, shared.find(KEY))).result(120)
    reference = registry.get("tree-shap")().explain(model, data, rows=np.arange(40))
    np.testing.assert_array_equal(with_rows(result, kept).values, reference.values)
    np.testing.assert_array_equal(with_rows(result, kept).data, reference.data)
    # Without a table a job reads its file, which is not there (another name: the worker
    # keeps what it mapped under the first one's).
    elsewhere = Source(sha256=data.sha256, name="gone-too.csv", path="/nonexistent/gone.csv")
    with pytest.raises(WhyboxError, match="cannot be read"):
        pool.submit(job(model, elsewhere, None)).result(120)


def test_a_table_let_go_before_the_job_ran_is_read_from_its_source(credit, pool):
    model, data = credit
    kept = shared.share(data, KEY)
    table = shared.find(KEY)
    del kept
    gc.collect()
    source = Source.of_demo("demo:credit", data.sha256)
    result = pool.submit(job(model, source, table)).result(120)
    reference = registry.get("tree-shap")().explain(model, data, rows=np.arange(40))
    np.testing.assert_array_equal(result.values, reference.values)
    # The same where no descriptor can travel (a Ray task rebuilds in its own process).
    np.testing.assert_array_equal(rebuild.run(job(model, source, table)).values, reference.values)


def test_without_memfd_the_dataset_is_kept_as_it_is(credit, monkeypatch):
    _, data = credit
    monkeypatch.delattr(shared.os, "memfd_create")
    assert shared.share(data, KEY) is data
    assert shared.find(KEY) is None
