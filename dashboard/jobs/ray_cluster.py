"""Work on a Ray cluster: a partitioned run's partitions (one task each, one model copy per
worker process, a bounded number in flight, results back as they finish), and the
dashboard's jobs where the operator names a cluster (`RayExecutor`).

Ray is optional (`pip install whybox[ray]`); it is imported only when a cluster is asked
for. A task whose worker dies (a crash, a node lost) is retried by Ray; what still fails
is reported by partition, and the run resumes from what was written.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from whybox.dashboard.jobs import rebuild
from whybox.dashboard.jobs.batch import (
    BatchJob,
    Outcome,
    PartFailure,
    explain_partition,
)
from whybox.dashboard.jobs.executor import JobCancelled, JobError
from whybox.dashboard.jobs.partitions import Partition
from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.formats import first_line

if TYPE_CHECKING:
    from whybox.dashboard.jobs.spec import JobSpec
    from whybox.explainers.base import Explanation
    from whybox.model_zoo import Model

RETRIES = 2
"""Times a partition is tried again after its worker died, before it is reported."""
CONNECT_SECONDS = 10
CONNECT_ATTEMPTS = 2
LOCAL = "local"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise WhyboxError(
            "--cluster needs Ray, an optional dependency: pip install 'whybox[ray]'"
        ) from None
    return ray


def connect(address: str) -> int:
    """Join the cluster at `address` (`ray://HOST:PORT`, a head's `HOST:PORT`, or `local`
    for a Ray runtime started on this machine); return its CPU count."""
    ray = _ray()
    if address != LOCAL:
        _answers(address)
        _token_if_any()
    for attempt in range(CONNECT_ATTEMPTS):
        try:
            ray.init(
                address=address,  # "local" starts a runtime here, never joins another
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            break
        except (ConnectionError, RuntimeError, ValueError) as exc:
            # A busy head may start a client's server too slowly: Ray gives up on it.
            if attempt + 1 == CONNECT_ATTEMPTS:
                raise WhyboxError(
                    f"cannot join the Ray cluster at {address}: {first_line(exc)}; check the "
                    "address (ray://HOST:PORT of the head's client server), that it runs, and "
                    "for a cluster with token authentication set RAY_AUTH_TOKEN"
                ) from None
            time.sleep(CONNECT_SECONDS)
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


@contextlib.contextmanager
def connected(address: str) -> Iterator[int]:
    """`connect` for the length of a `with` block (a local runtime stops at its end)."""
    workers = connect(address)
    try:
        yield workers
    finally:
        _ray().shutdown()


def _token_if_any() -> None:
    """Send this machine's Ray token where there is one (RAY_AUTH_TOKEN, or the file `ray
    get-auth-token` writes), as `ray start` uses it on its side: Ray's client sends it only
    in token mode. Ray's own rule, from a module of Ray's that older Ray lacks."""
    try:
        from ray._private.authentication import authentication_token_setup as tokens
    except ImportError:  # a Ray without token authentication
        return
    quiet = logging.getLogger(tokens.__name__)
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # Ray says so on every start; whybox's user did not ask
    try:
        tokens.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    finally:
        quiet.setLevel(level)


def _answers(address: str) -> None:
    """A one-line error, at once, where nothing listens at the address (Ray itself retries
    for a long while)."""
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise WhyboxError(f"--cluster {address!r} is not an address; give ray://HOST:PORT or local")
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise WhyboxError(
            f"the Ray cluster at {address} does not answer ({exc.strerror or exc}); start it "
            "(ray start --head) or check the address and port"
        ) from None


def gpu_workers(model: Model, device: str) -> int:
    """The cluster's GPUs where the model is a network the method may run on a GPU (each
    task then takes one); 0 for CPU workers."""
    if device == "cpu" or model.torch_module() is None:
        return 0
    return int(_ray().cluster_resources().get("GPU", 0))


def run_on_ray(
    job: BatchJob, partitions: Iterable[Partition], workers: int, gpus: int = 0
) -> Iterator[Outcome]:
    """Explain the partitions as Ray tasks, one per CPU, or one per GPU where `gpus` (each
    worker then holds the model on its GPU), at most two per worker in flight (the data of
    the others stays unread), yielding each outcome as it finishes."""
    ray = _ray()
    resources = {"num_cpus": 1, "num_gpus": 1} if gpus else {"num_cpus": 1}
    workers = gpus or workers
    task = ray.remote(max_retries=RETRIES, **resources)(explain_partition)
    job_ref = ray.put(job)  # shipped once, whatever the number of partitions
    in_flight: dict[Any, Partition] = {}
    for partition in partitions:
        if len(in_flight) >= 2 * workers:
            yield from _finished(ray, in_flight)
        in_flight[task.remote(job_ref, partition)] = partition
    while in_flight:
        yield from _finished(ray, in_flight)


def _finished(ray: Any, in_flight: dict[Any, Partition]) -> Iterator[Outcome]:
    ready, _ = ray.wait(list(in_flight), num_returns=1)
    for ref in ready:
        partition = in_flight.pop(ref)
        try:
            yield ray.get(ref)
        except ray.exceptions.RayError as exc:
            yield PartFailure(partition.name, partition.rows, failure_text(ray, exc))


def failure_text(ray: Any, exc: Exception) -> str:
    """One line on why a partition failed on the cluster, and what to do."""
    errors = ray.exceptions
    if isinstance(exc, errors.OutOfMemoryError):
        return (
            "a worker ran out of memory; use smaller partitions (--partition-rows) or "
            "workers with more memory"
        )
    if isinstance(exc, (errors.WorkerCrashedError, errors.NodeDiedError)):
        return f"its worker died {RETRIES + 1} times ({first_line(exc)}); run again to resume"
    if isinstance(exc, errors.RayTaskError):
        cause = exc.cause
        if isinstance(cause, (ModuleNotFoundError, ImportError)):
            return (
                f"the cluster lacks a dependency of the model or of whybox ({first_line(cause)}); "
                "install whybox[ray] and the model's libraries on every node"
            )
        if isinstance(cause, WhyboxError):
            return str(cause)
        if cause is not None:
            return f"{type(cause).__name__}: {first_line(cause)}"
    return f"{type(exc).__name__}: {first_line(exc)}"


CLUSTER_ENV = "WHYBOX_CLUSTER"
"""The operator's cluster for the dashboard's jobs (ray://HOST:PORT or local); unset: the
local pool of worker processes."""


class RayJob:
    """A dashboard job running as a Ray task (see `executor.Job`)."""

    def __init__(self, ray: Any, spec: JobSpec, ref: Any) -> None:
        self.id, self.spec = uuid.uuid4().hex, spec
        self._ray, self._ref, self._cancelled = ray, ref, False

    def position(self) -> int:
        return 0  # Ray's scheduler holds the queue; it does not say where a task stands

    def progress(self) -> tuple[int, int] | None:
        return None

    def running(self) -> bool:
        return not self.done()

    def done(self) -> bool:
        return self._cancelled or bool(self._ray.wait([self._ref], timeout=0)[0])

    def result(self, timeout: float | None = None) -> Explanation:
        errors = self._ray.exceptions
        try:
            return self._ray.get(self._ref, timeout=timeout)
        except errors.GetTimeoutError:
            raise TimeoutError(f"{self.spec.describe()} is still running") from None
        except errors.TaskCancelledError:
            raise JobCancelled(f"{self.spec.describe()} was stopped") from None
        except errors.RayTaskError as exc:
            if isinstance(exc.cause, WhyboxError):
                raise exc.cause from None
            raise JobError(failure_text(self._ray, exc)) from None
        except errors.RayError as exc:
            raise JobError(failure_text(self._ray, exc)) from None

    def cancel(self) -> bool:
        if self.done():
            return False
        self._ray.cancel(self._ref, force=True)
        self._cancelled = True
        return True


class RayExecutor:
    """The dashboard's jobs on the operator's Ray cluster: each job a task that rebuilds the
    model and data from the job's sources (`rebuild.run`), retried where its worker dies."""

    def __init__(self, address: str) -> None:
        self.address, self.closed = address, False
        self._ray: Any = None
        self._task: Any = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._ray is None:
                connect(self.address)
                self._ray = _ray()
                self._task = self._ray.remote(num_cpus=1, max_retries=RETRIES)(rebuild.run)

    def submit(self, spec: JobSpec) -> RayJob:
        self.start()
        return RayJob(self._ray, spec, self._task.remote(spec))

    def shutdown(self) -> None:
        with self._lock:
            if self._ray is not None and not self.closed:
                self._ray.shutdown()
            self.closed = True
