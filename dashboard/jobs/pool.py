"""The local executor: worker processes on this machine, each held to a thread budget.

`WHYBOX_WORKERS` workers take jobs in the order they came; one more worker stands by for
one-row jobs (what a user waits on with the page in front of them), so that a click is
never queued behind long explanations. Workers start light, import what their jobs need (see
worker.py) and keep the models and data they loaded, by content.

Each worker is a fresh interpreter (as multiprocessing's `spawn` makes, never a fork of the
server's threads), started with its thread budget and allocator settings in its environment
and its end of a socket pair. Not multiprocessing's own `spawn`: that re-imports the
parent's `__main__` in the child, and while Streamlit runs a page, `__main__` is the app's
script, which every worker would then run.

One thread of the server, the dispatcher, owns the workers: it hands queued jobs to idle
workers, reads their progress and results, kills the worker of a job that is cancelled or
out of time (`WHYBOX_JOB_TIMEOUT`), and starts a fresh worker in place of any that ended,
whether killed, crashed in a native library or exited. A worker's end costs its own job
only; a job's result goes back to its `Job` handle alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from multiprocessing import reduction
from multiprocessing.connection import Connection, wait
from typing import Any

from whybox.dashboard.jobs import shared
from whybox.dashboard.jobs import worker as worker_main
from whybox.dashboard.jobs.executor import JobCancelled, JobError
from whybox.dashboard.jobs.spec import JobSpec
from whybox.model_zoo.limits import JOB_SECONDS, JOB_THREADS, WORKERS, workers_for

log = logging.getLogger("whybox.dashboard.jobs")

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FAILED_STARTS = 3
"""Workers in a row that end before they are ready: then the pool stops trying."""
STOP_WAIT_S = 10.0
BOOTSTRAP = """
import json, sys
from multiprocessing.connection import Connection
sys.path[:] = json.loads(sys.argv[3])
from whybox.dashboard.jobs.worker import main
main(Connection(int(sys.argv[1])), int(sys.argv[2]))
"""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as its cause for the log."""

    def __str__(self) -> str:
        return "\n" + self.args[0]


class Job:
    """A handle on one job of a `LocalPool` (see `executor.Job` for the contract)."""

    def __init__(self, pool: LocalPool, spec: JobSpec) -> None:
        self.id, self.spec = uuid.uuid4().hex, spec
        self.state = QUEUED
        self.worker: int | None = None
        """The pid of the worker process computing it, once it runs."""
        self.threads: int | None = None
        """torch's thread count in that worker when the job started."""
        self._pool = pool
        self._progress: tuple[int, int] | None = None
        self._result: Any = None
        self._error: BaseException | None = None
        self._started: float | None = None
        self._ended = threading.Event()
        self._loading = threading.Lock()

    def position(self) -> int:
        return self._pool._position(self)

    def progress(self) -> tuple[int, int] | None:
        return self._progress

    def running(self) -> bool:
        return self.state == RUNNING

    def done(self) -> bool:
        return self._ended.is_set()

    def result(self, timeout: float | None = None) -> Any:
        if not self._ended.wait(timeout):
            raise TimeoutError(f"{self.spec.describe()} is still {self.state}")
        if self._error is not None:
            raise self._error
        with self._loading:  # a large result is read here, in the caller's thread
            if isinstance(self._result, worker_main.Spilled):
                self._result = self._result.load()
        return self._result

    def cancel(self) -> bool:
        return self._pool._cancel(self)

    def _end(self, state: str, result: Any = None, error: BaseException | None = None) -> None:
        self.state, self._result, self._error = state, result, error
        self._ended.set()


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen
    conn: Connection
    standby: bool
    """Kept for one-row jobs."""
    ready: bool = False
    job: Job | None = None
    kill: str | None = None
    """Why the pool is killing it (a job cancelled or out of time), once it is."""
    gone: threading.Event = field(default_factory=threading.Event)

    @property
    def idle(self) -> bool:
        return self.ready and self.job is None and self.kill is None

    def takes(self, job: Job) -> bool:
        return job.spec.one_row or not self.standby


class LocalPool:
    """Worker processes on this machine; `submit(spec)` returns the job's handle.

    `workers`, `threads` and `timeout` default to the operator's settings (workers: as many
    as `threads` fit in the cores, unless WHYBOX_WORKERS says); `standby` adds the worker
    kept for one-row jobs.
    """

    def __init__(
        self,
        workers: int | None = None,
        threads: int | None = None,
        timeout: float | None = None,
        standby: bool = True,
    ) -> None:
        self.threads = threads or JOB_THREADS.value()
        chosen = os.environ.get(WORKERS.setting, "").strip()
        self.size = workers or (WORKERS.value() if chosen else workers_for(self.threads))
        self.timeout = timeout or JOB_SECONDS.value()
        self.standby = standby
        self.closed = False
        self._lock = threading.Lock()
        self._queue: list[Job] = []
        self._workers: list[_Worker] = []
        self._failed_starts = 0
        self._broken: str | None = None
        self._dispatcher: threading.Thread | None = None
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)

    # The interface.

    def start(self) -> None:
        """Start the workers now, ahead of the first job."""
        with self._lock:
            if self._dispatcher is not None or self.closed:
                return
            self._top_up()
            self._dispatcher = threading.Thread(
                target=self._dispatch, name="whybox-jobs", daemon=True
            )
            self._dispatcher.start()

    def submit(self, spec: JobSpec) -> Job:
        self.start()
        job = Job(self, spec)
        with self._lock:
            if self.closed:
                raise JobError("the explanation workers are shut down")
            if self._broken:
                raise JobError(self._broken)
            self._queue.append(job)
        self._wake()
        return job

    def shutdown(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            for job in self._queue:
                job._end(CANCELLED, error=_cancelled(job, "the server stopped"))
            self._queue.clear()
            workers = list(self._workers)
        self._wake()
        if self._dispatcher is not None:
            self._dispatcher.join(STOP_WAIT_S)
        for w in workers:
            if w.job is not None:  # a job under way ends with its worker
                if not w.job.done():
                    w.job._end(CANCELLED, error=_cancelled(w.job, "the server stopped"))
                w.process.kill()
            with contextlib.suppress(OSError):
                w.conn.send(None)
        deadline = time.monotonic() + STOP_WAIT_S
        for w in workers:
            try:
                w.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.process.kill()
                w.process.wait(STOP_WAIT_S)
            w.conn.close()
        for fd in (self._wake_read, self._wake_write):
            os.close(fd)

    # Diagnostics.

    def worker_pids(self) -> list[int]:
        """The pids of the live workers (ready or starting)."""
        with self._lock:
            return [w.process.pid for w in self._workers]

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until every worker has started (benchmarks and tests)."""
        self.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._broken:
                    raise JobError(self._broken)
                expected = self.size + self.standby
                if len(self._workers) == expected and all(w.ready for w in self._workers):
                    return
            time.sleep(0.05)
        raise TimeoutError(f"the workers were not ready after {timeout:.0f} s")

    # Called by Job.

    def _position(self, job: Job) -> int:
        with self._lock:
            if job.state != QUEUED or job not in self._queue:
                return 0
            ahead = self._queue[: self._queue.index(job)]
            # A one-row job also has the standby worker: only one-row jobs compete for it.
            if job.spec.one_row and self.standby:
                return sum(other.spec.one_row for other in ahead)
            return len(ahead)

    def _cancel(self, job: Job) -> bool:
        with self._lock:
            if job.done():
                return False
            cancelled = _cancelled(job, "it was stopped")
            if job in self._queue:
                self._queue.remove(job)
                job._end(CANCELLED, error=cancelled)
                return True
            running = next((w for w in self._workers if w.job is job), None)
            job._end(CANCELLED, error=cancelled)
            if running is None:
                return True
            running.kill = CANCELLED
        self._wake()
        running.gone.wait(STOP_WAIT_S)  # its pid is gone when this returns
        return True

    # The dispatcher thread.

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # already woken (the pipe is full), or shut down
            os.write(self._wake_write, b"x")

    def _top_up(self) -> None:
        """Start the next missing worker once none is starting (under the lock): on few
        cores, workers that start one after the other make the first ready sooner than all
        at once. A first general worker, then the standby, then the rest."""
        if self.closed or self._broken or any(not w.ready for w in self._workers):
            return
        general = sum(not w.standby for w in self._workers)
        if general == 0:
            self._spawn(standby=False)
        elif self.standby and general == len(self._workers):
            self._spawn(standby=True)
        elif general < self.size:
            self._spawn(standby=False)

    def _spawn(self, standby: bool) -> None:
        """Start one worker (under the lock)."""
        ours, theirs = multiprocessing.Pipe()
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                BOOTSTRAP,
                str(theirs.fileno()),
                str(self.threads),
                json.dumps(sys.path),
            ],
            pass_fds=(theirs.fileno(),),
            env={**os.environ, **worker_main.environment(self.threads)},
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._workers.append(_Worker(process, ours, standby))

    def _dispatch(self) -> None:
        while not self.closed:
            try:
                self._dispatch_once()
            except Exception:  # a bug here must not stop every job of the server
                log.exception("the job dispatcher failed; going on")
                time.sleep(0.1)

    def _dispatch_once(self) -> None:
        with self._lock:
            waiting: list[Any] = [self._wake_read]
            for w in self._workers:
                waiting.append(w.conn)  # readable at its end too (end of file)
            timeout = self._next_deadline()
        ready = set(wait(waiting, timeout))
        if self._wake_read in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_read, 4096):
                    pass
        for w in list(self._workers):
            if w.conn in ready:
                self._receive(w)
            if w.conn.closed:
                self._ended(w)
        self._kill_when_due()
        self._assign()

    def _next_deadline(self) -> float | None:
        starts = [w.job._started for w in self._workers if w.job and w.job._started]
        if not starts:
            return None
        return max(0.0, min(starts) + self.timeout - time.monotonic()) + 0.01

    def _receive(self, w: _Worker) -> None:
        try:
            while not w.conn.closed and w.conn.poll():
                try:
                    message = w.conn.recv()
                except (EOFError, OSError):
                    raise
                except Exception as exc:  # a message that does not unpickle here
                    message = ("failed", w.job.id if w.job else "", exc, "")
                self._handle(w, message)
        except (EOFError, OSError):
            w.conn.close()  # it ended; its exit status says how

    def _handle(self, w: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            with self._lock:
                w.ready, self._failed_starts = True, 0
                self._top_up()
            return
        job = w.job
        if job is None or message[1] != job.id or job.done():
            if kind == "done" and isinstance(message[2], worker_main.Spilled):
                message[2].discard()
            return  # about a job cancelled meanwhile
        if kind == "started":
            job.threads = message[2]["threads"]
        elif kind == "progress":
            job._progress = (message[2], message[3])
        elif kind == "done":
            with self._lock:
                w.job = None
            job._end(DONE, result=message[2])
        elif kind == "failed":
            error, remote = message[2], message[3]
            error.__cause__ = RemoteTraceback(remote)
            with self._lock:
                w.job = None
            job._end(FAILED, error=error)

    def _ended(self, w: _Worker) -> None:
        """Reap a worker that ended, settle its job, and start another in its place."""
        self._receive(w)  # what it sent before it ended
        w.conn.close()
        try:
            w.process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:  # it closed its end yet lives on
            w.process.kill()
            w.process.wait()
        job, reason = w.job, w.kill
        with self._lock:
            self._workers.remove(w)
            if job is not None and not job.done():
                job._end(FAILED, error=JobError(_lost_message(job, w.process.returncode)))
            if reason is None and not w.ready:
                self._failed_starts += 1
                log.error(
                    "an explanation worker ended before it was ready (exit code %s)",
                    w.process.returncode,
                )
            if self._failed_starts >= FAILED_STARTS:
                self._broken = (
                    "the worker processes that compute explanations cannot start (the last "
                    f"exited with code {w.process.returncode}); the server log has the details"
                )
                for queued in self._queue:
                    queued._end(FAILED, error=JobError(self._broken))
                self._queue.clear()
            self._top_up()
        w.gone.set()

    def _kill_when_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            for w in self._workers:
                job = w.job
                if w.kill is None and job and job._started and now - job._started > self.timeout:
                    w.kill = "timeout"
                    message = (
                        f"{job.spec.describe()} ran longer than the limit of {self.timeout:,.0f} s "
                        f"set by {JOB_SECONDS.setting} and was stopped; explain fewer rows or "
                        "lower the method's budget"
                    )
                    job._end(FAILED, error=JobError(message))
                if w.kill is not None and w.process.returncode is None:
                    w.process.kill()

    def _assign(self) -> None:
        while True:
            with self._lock:
                pair = self._next_pair()
                if pair is None:
                    return
                w, job = pair
                self._queue.remove(job)
                w.job, job.state, job.worker = job, RUNNING, w.process.pid
                job._started = time.monotonic()
            try:
                _send(w, job)
            except OSError:  # the worker ended just now: the job goes back to the front
                with self._lock:
                    w.job, job.state, job.worker, job._started = None, QUEUED, None, None
                    self._queue.insert(0, job)
                return
            except Exception as exc:  # the spec does not pickle: a bug, reported on the job
                with self._lock:
                    w.job = None
                job._end(FAILED, error=exc)

    def _next_pair(self) -> tuple[_Worker, Job] | None:
        idle = [w for w in self._workers if w.idle]
        if not idle:
            return None
        # The standby worker first for a one-row job: the others stay free for longer ones.
        idle.sort(key=lambda w: not w.standby)
        for job in self._queue:
            for w in idle:
                if w.takes(job):
                    return w, job
        return None


def _cancelled(job: Job, why: str) -> JobCancelled:
    return JobCancelled(f"{job.spec.describe()} did not finish: {why}")


def _lost_message(job: Job, exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        how = (
            "was killed (SIGKILL), by the system for want of memory or by an operator"
            if -exitcode == signal.SIGKILL
            else f"crashed ({name}) in the model or a library"
        )
    else:
        how = f"exited unexpectedly (status {exitcode})"
    return (
        f"{job.spec.describe()} failed: the process computing it {how}. Other explanations "
        "go on; try again, with fewer rows or another explainer"
    )


def _send(w: _Worker, job: Job) -> None:
    """Give `job` to worker `w`, with a descriptor of the session's shared table where
    there is one (the worker maps it instead of reading the data again)."""
    spec = job.spec
    fd = None if spec.table is None else shared.descriptor(spec.table)
    if fd is None and spec.table is not None:  # the session let go of it meanwhile
        spec = replace(spec, table=None)
    try:
        w.conn.send((job.id, spec))
        if fd is not None:
            reduction.send_handle(w.conn, fd, w.process.pid)
    finally:
        if fd is not None:
            os.close(fd)
