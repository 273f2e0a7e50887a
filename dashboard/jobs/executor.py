"""The job interface the app depends on: `executor().submit(spec) -> Job`.

A `Job` is a handle held by whoever submitted it, and only by them: the result comes back
through it and nowhere else. Today the executor is the local pool of worker processes
(`whybox.dashboard.jobs.pool`), or the operator's Ray cluster where WHYBOX_CLUSTER names
one (`whybox.dashboard.jobs.ray_cluster.RayExecutor`).
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import TYPE_CHECKING, Protocol

from whybox.model_zoo.errors import WhyboxError

if TYPE_CHECKING:
    from whybox.dashboard.jobs.pool import LocalPool
    from whybox.dashboard.jobs.ray_cluster import RayExecutor
    from whybox.dashboard.jobs.spec import JobSpec
    from whybox.explainers.base import Explanation


class JobError(WhyboxError):
    """A job ended without a result for a reason of its own (its worker crashed, it ran out
    of time, the pool cannot start): one line for the user."""


class JobCancelled(WhyboxError):
    """The job was cancelled (Stop) before it finished."""


class Job(Protocol):
    """One submitted explanation."""

    id: str
    spec: JobSpec

    def position(self) -> int:
        """Jobs queued ahead of this one for the same workers; 0 once it runs (or ended)."""

    def progress(self) -> tuple[int, int] | None:
        """(units done, units in all) as the explainer last reported, or None before."""

    def running(self) -> bool:
        """True while a worker computes it."""

    def done(self) -> bool:
        """True once it finished, failed or was cancelled."""

    def result(self, timeout: float | None = None) -> Explanation:
        """The explanation; raises the job's error (WhyboxError for bad input, JobError,
        JobCancelled, or the explainer's own exception), TimeoutError after `timeout`."""

    def cancel(self) -> bool:
        """Stop it: dropped from the queue, or its worker killed (and replaced). False if
        it had already ended."""


class Executor(Protocol):
    def submit(self, spec: JobSpec) -> Job:
        """Queue `spec`; the handle is the only way to its result."""

    def start(self) -> None:
        """Get ready ahead of the first job (start workers, import the engine)."""

    def shutdown(self) -> None:
        """Cancel what is queued or running and stop the workers."""


_default: LocalPool | RayExecutor | None = None
_lock = threading.Lock()


def executor() -> Executor:
    """The process-wide executor, made on first use with the operator's settings (a cluster,
    or workers, threads per job, time limit); its workers start on demand or with
    `start()`."""
    global _default
    with _lock:
        if _default is None or _default.closed:
            from whybox.dashboard.jobs.ray_cluster import CLUSTER_ENV, RayExecutor

            address = os.environ.get(CLUSTER_ENV, "").strip()
            if address:
                _default = RayExecutor(address)
            else:
                from whybox.dashboard.jobs.pool import LocalPool

                _default = LocalPool()
            atexit.register(_default.shutdown)
        return _default
