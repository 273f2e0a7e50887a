"""Per-session state: the chosen model and data, every explanation computed so far, and
the jobs computing more.

Nothing here is shared between users: uploads, loaded models, job handles and results live
in `st.session_state`, which Streamlit keeps per browser session. Results are keyed by
everything that decides them, so moving between views never recomputes.

Explanations are computed by jobs in the worker pool (`whybox.dashboard.jobs`), never in
the page's own run: `submit` queues one under its result key, `outcome` shows where it
stands (queue position, progress, a Stop button) and returns it once done. A job outlives
reruns of the page; only Stop ends it early. Whenever the page runs, `collect` moves the
jobs that ended into the results (recording the run where asked), whichever view is open.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import streamlit as st

from whybox.dashboard import settings
from whybox.dashboard.jobs import Job, JobCancelled, JobSpec, Source, executor, shared
from whybox.dashboard.reports.dictionary import with_dictionary
from whybox.dashboard.reports.wording import plain
from whybox.explainers import Explanation
from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.data import take_rows
from whybox.model_zoo.image_data import ImageSet

if TYPE_CHECKING:
    from whybox.dashboard.runs.records import Run
    from whybox.trust.cohorts import Cohort
    from whybox.trust.typicality import Typicality

log = logging.getLogger("whybox.dashboard")
T = TypeVar("T")


@dataclass(frozen=True)
class Inputs:
    """The model and data the session is looking at; `source` is how `whybox explain` names
    them (MODEL DATA and data options), for the command that reproduces a run;
    `model_source` and `data_source` name them by content for a job to rebuild."""

    model: Model
    data: Dataset | ImageSet
    source: tuple[str, ...] = ()
    model_source: Source | None = None
    data_source: Source | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.model.sha256, self.data.sha256)

    @property
    def images(self) -> bool:
        return self.model.modality == "image"


DICTIONARY = "dictionary"
"""Session state: the parsed data dictionary the sidebar holds, or None."""
REFERENCE = "reference"
"""Session state: the typicality scorer of the reference data the sidebar holds, or None."""


SECOND = "second"
"""Session state: the second model (B, a candidate version of the model) with the session's
data read for it, as `Inputs`, or None. Never the first model's slot: `inputs()` stays A."""


def reference() -> Typicality | None:
    return st.session_state.get(REFERENCE)


def second() -> Inputs | None:
    """The second model (B) the sidebar holds, with the data read for it, if any."""
    return st.session_state.get(SECOND)


def set_inputs(inputs: Inputs | None) -> None:
    st.session_state["inputs"] = inputs


def inputs() -> Inputs | None:
    return st.session_state.get("inputs")


def require_inputs() -> Inputs:
    """The session's inputs, or a prompt to choose them (and the page stops there)."""
    current = inputs()
    if current is None:
        st.info("Choose a demo, or upload a model and a data file, in the sidebar.")
        st.stop()
    return current


COHORT = "cohort"
"""Session state: the name of the cohort the views show (the sidebar's choice), or
`EVERY_ROW`."""
EVERY_ROW = "every row"


@dataclass(frozen=True)
class SavedCohort:
    """A cohort saved in this session: its `rule` in words, its rows' positions, and its
    filter where it has one (which selects the same cohort in another table)."""

    name: str
    rule: str
    members: np.ndarray = field(repr=False, compare=False)
    filter: Cohort | None = field(default=None, compare=False)


def cohorts() -> dict[str, SavedCohort]:
    """The cohorts saved for the current inputs, by name."""
    current = inputs()
    saved = st.session_state.setdefault("cohorts", {})
    return saved.setdefault(current.key, {}) if current is not None else {}


def save_cohort(name: str, rule: str, members: np.ndarray, filter: Cohort | None = None) -> None:
    """Save a cohort for the current inputs (replacing one of the same name)."""
    cohorts()[name] = SavedCohort(name, rule, np.asarray(members, dtype=np.int64), filter)


def cohort() -> SavedCohort | None:
    """The cohort the views show, None for every row."""
    return cohorts().get(st.session_state.get(COHORT, EVERY_ROW))


def report_analyses() -> dict[str, Any]:
    """What the views computed on every row of the current inputs for a run's report
    (`rules`, `glass_box`: as run.json records them), by name."""
    current = inputs()
    kept = st.session_state.setdefault("analyses", {})
    return kept.setdefault(current.key, {}) if current is not None else {}


def cohort_key() -> tuple[str, ...]:
    """What a result computed on the chosen cohort's rows is keyed by besides the inputs."""
    chosen = cohort()
    return () if chosen is None else ("cohort", chosen.name, chosen.rule)


def cohort_data(data: Dataset) -> Dataset:
    """`data`'s rows in the chosen cohort (all of them without one), which a caption names."""
    chosen = cohort()
    if chosen is None:
        return data
    _cohort_caption(chosen, len(data))
    return data.subset(chosen.members)


def _cohort_caption(chosen: SavedCohort, rows: int) -> None:
    """Says which cohort a view shows: only the views that apply it call this."""
    st.caption(
        f"Cohort **{plain(chosen.name)}**: {plain(chosen.rule)} ({len(chosen.members):,} of "
        f"{rows:,} rows). Choose *every row* in the sidebar to leave it."
    )


def cached(key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()` once per session and key; later calls return the stored result."""
    results: dict[Hashable, Any] = st.session_state.setdefault("results", {})
    if key not in results:
        results[key] = compute()
    return results[key]


def latest(slot: str, key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()` once per key, keeping only the latest key's result in `slot`: a table of
    a million rows read again with another option replaces the one read before."""
    kept = st.session_state.setdefault("latest", {})
    if slot not in kept or kept[slot][0] != key:
        kept.pop(slot, None)  # freed before the next is read
        kept[slot] = (key, compute())
    return kept[slot][1]


def forget(slot: str) -> None:
    """Drop what `latest` keeps in `slot`."""
    st.session_state.setdefault("latest", {}).pop(slot, None)


def known(key: Hashable) -> bool:
    return key in st.session_state.get("results", {})


def set_current(key: Hashable) -> None:
    st.session_state["current"] = key


def current_explanation() -> Explanation | None:
    """The explanation the sidebar last produced for the current inputs, if any."""
    key = st.session_state.get("current")
    current = inputs()
    if key is None or current is None or key[0] != current.key:
        return None
    explanation = st.session_state.get("results", {}).get(key)
    return None if explanation is None else shown(explanation)


def shown(explanation: Explanation) -> Explanation:
    """`explanation` with the session's data dictionary (the sidebar's upload, else the demo
    data's own), so every view names columns and coded values alike."""
    return with_dictionary(explanation, st.session_state.get(DICTIONARY))


def current_run() -> Run | None:
    """The saved run of the current explanation (None where recording it failed)."""
    return st.session_state.get("runs", {}).get(st.session_state.get("current"))


def record_run(
    key: Hashable,
    loaded: Inputs,
    explanation: Explanation,
    command: list[str],
    scorer: Typicality | None = None,
) -> Run:
    """Save a finished explanation as a run directory beside the audit trail and record it
    there, with the user (where an authenticating proxy names one) and this session; with
    the `scorer` of a reference, each explained row's typicality."""
    from whybox.dashboard.runs.audit import RunStore
    from whybox.dashboard.runs.records import save_run, typicality_record

    started = time.perf_counter()
    store = RunStore()
    run_id = uuid.uuid4().hex
    out = store.run_root / run_id
    explanation = shown(explanation)
    typical = None
    if scorer is not None:
        rows = loaded.data.subset(explanation.rows)
        threshold = settings.typicality_threshold()
        typical = typicality_record(scorer, scorer.score(rows), threshold)
        command = [*command, "--reference", scorer.reference.name]
    run = save_run(
        loaded.model, loaded.data, explanation, out, command, run_id=run_id, typicality=typical
    )
    duration = explanation.seconds + time.perf_counter() - started
    store.record(run, "dashboard", user=user(), duration=duration, session=session_id())
    st.session_state.setdefault("runs", {})[key] = run
    return run


def record_comparison(record: dict[str, Any], duration: float) -> None:
    """Save a comparison of two model versions (its diff.json `record`) beside the audit
    trail and record it there, with the user and this session."""
    from whybox.dashboard.reports.versions_page import save_record
    from whybox.dashboard.runs.audit import RunStore

    store = RunStore()
    out = store.run_root / record["run_id"]
    save_record(record, out)
    store.record_comparison(
        record, out, "dashboard", user=user(), duration=duration, session=session_id()
    )


def user() -> str | None:
    """The user an authenticating proxy names in the operator's WHYBOX_USER_HEADER."""
    header = settings.user_header()
    return st.context.headers.get(header) if header else None


def session_id() -> str:
    """A random id for this browser session, made on its first use."""
    return st.session_state.setdefault("session_id", uuid.uuid4().hex)


JOBS = "jobs"
POLL_S = 0.5
"""How often a waiting or running job's panel redraws."""
WAIT_S = 3.0
"""Right after a click, the page waits this long for the job in its own run, so a short
explanation shows at once, without another run of the page."""
SESSION_JOBS = 8
"""Jobs one session may have queued or running at once."""


@dataclass
class Pending:
    """A job of this session: what to record when it ends, and how long to wait for it."""

    job: Job
    inputs: Inputs
    command: list[str] | None
    """The `whybox explain` command to record the run under, or None not to record it."""
    scorer: Typicality | None = None
    """The reference's typicality scorer when the job was submitted, for the run's record."""
    submitted: float = field(default_factory=time.monotonic)

    @property
    def wait_until(self) -> float:
        return self.submitted + WAIT_S


def job_spec(
    inputs: Inputs,
    explainer: str,
    params: dict[str, Any],
    rows: Sequence[int],
    target: str | int | None = None,
    edits: tuple[tuple[int, tuple[float, ...]], ...] = (),
) -> JobSpec:
    """The job that explains `rows` of the session's inputs (`target` "auto" or None: the
    predicted class), submitted in this session's name."""
    if inputs.model_source is None or inputs.data_source is None:
        raise WhyboxError("these inputs cannot be sent to the explanation workers")
    return JobSpec(
        model=inputs.model_source,
        data=inputs.data_source,
        explainer=explainer,
        params=params,
        rows=rows,
        target=None if target == "auto" else target,
        edits=edits,
        submitter=session_id(),
        table=shared.find(table_key(inputs.model, inputs.data_source)),
    )


def table_key(model: Model, source: Source) -> tuple[Any, ...]:
    """What names the session's table in shared memory: the data's content and options,
    read for this model."""
    return (model.sha256, *source.key)


def submit(key: Hashable, spec: JobSpec, inputs: Inputs, command: list[str] | None = None) -> None:
    """Queue `spec` for result `key`, unless it is known or already queued; `command`: record
    the run when it ends."""
    jobs: dict[Hashable, Pending] = st.session_state.setdefault(JOBS, {})
    if known(key) or key in jobs:
        return
    if len(jobs) >= SESSION_JOBS:
        raise WhyboxError(
            f"this session already has {len(jobs)} explanations waiting or running; wait for "
            "one to end, or stop one"
        )
    jobs[key] = Pending(executor().submit(spec), inputs, command, reference())


def pending(key: Hashable) -> bool:
    return key in st.session_state.get(JOBS, {})


def collect() -> None:
    """Move the session's jobs that ended (or that the user stopped) into its results."""
    for key, entry in list(st.session_state.get(JOBS, {}).items()):
        if st.session_state.get(_stop_key(entry)):
            entry.job.cancel()
        if entry.job.done():
            _settle(key, entry)


def outcome(key: Hashable) -> Explanation | None:
    """The explanation of `key` once computed. While its job waits or runs, shows where it
    stands here (with a Stop button) and returns None; a failed job's error is raised once."""
    collect()
    failures = st.session_state.setdefault("failures", {})
    if key in failures:
        raise failures.pop(key)
    stopped = st.session_state.setdefault("stopped", set())
    if key in stopped:
        stopped.discard(key)
        st.caption("Stopped. Earlier results are kept.")
    if pending(key):
        _panel(key)
        collect()
        if key in failures:
            raise failures.pop(key)
    return st.session_state.get("results", {}).get(key)


def _stop_key(entry: Pending) -> str:
    return f"stop:{entry.job.id}"


def _settle(key: Hashable, entry: Pending) -> None:
    st.session_state[JOBS].pop(key, None)
    try:
        explanation = entry.job.result(0)
    except JobCancelled:
        st.session_state.setdefault("stopped", set()).add(key)
        return
    except Exception as exc:
        st.session_state.setdefault("failures", {})[key] = exc
        return
    explanation = with_rows(explanation, entry.inputs.data)
    st.session_state.setdefault("results", {})[key] = explanation
    if entry.command is not None:
        with guard("recording the run"):
            record_run(key, entry.inputs, explanation, entry.command, entry.scorer)


def with_rows(explanation: Explanation, data: Dataset | ImageSet) -> Explanation:
    """A job's `explanation` with the explained rows' values (its `data`) put back from the
    session's own table or images, which the job read them from (see `rebuild.run`): for
    consecutive rows a view, not a second copy (a million rows of 50 features: 400 MB).
    Rows edited for a what-if came back with the job and stay its own."""
    if len(explanation.data) == len(explanation.rows):
        return explanation
    return replace(explanation, data=take_rows(data.values, explanation.rows))


@st.fragment(run_every=POLL_S)
def _panel(key: Hashable) -> None:
    """The job's queue position or progress bar and its Stop button. Redrawn on its own
    every POLL_S while the rest of the page stays; the whole page runs again once the job
    ends. Right after the click it waits up to WAIT_S within the page's run."""
    entry = st.session_state.get(JOBS, {}).get(key)
    if entry is None:
        return
    if st.session_state.get(_stop_key(entry)):
        entry.job.cancel()
        _settle(key, entry)
        st.rerun()
    status = st.empty()
    st.button("Stop", key=_stop_key(entry), help="Stop this explanation; results so far stay.")
    waiting = time.monotonic() < entry.wait_until
    while True:
        _show(status, entry)
        if entry.job.done() or time.monotonic() >= entry.wait_until:
            break
        time.sleep(0.1)
    if entry.job.done() and not waiting:
        st.rerun()


def _show(status: Any, entry: Pending) -> None:
    job = entry.job
    label = job.spec.describe()
    progress = job.progress()
    if job.done():
        status.progress(1.0, text=f"{label}: finished")
    elif job.running() and progress is not None:
        done, total = progress
        elapsed = time.monotonic() - entry.submitted
        status.progress(
            min(1.0, done / max(total, 1)),
            text=f"{label}: {done:,} of {total:,} ({elapsed:.0f} s)",
        )
    elif job.running():
        status.progress(0.0, text=f"{label}: starting")
    else:
        ahead = job.position()
        text = (
            f"{ahead} job{'s' if ahead != 1 else ''} ahead of yours"
            if ahead
            else "next in line, waiting for a free worker"
        )
        status.progress(0.0, text=f"{label}: {text}")


def require_explanation() -> Explanation:
    """The current explanation's rows in the chosen cohort, or a prompt (the page stops)."""
    explanation = current_explanation()
    if explanation is None:
        st.info("Pick an explainer and rows in the sidebar, then press **Explain**.")
        st.stop()
    chosen = cohort()
    if chosen is not None:
        _cohort_caption(chosen, len(inputs().data))
        explanation = explanation.subset(np.flatnonzero(np.isin(explanation.rows, chosen.members)))
        if not len(explanation.values):
            st.info(
                f"None of the explained rows is in cohort {plain(chosen.name)}: explain its "
                "rows (or every row) in the sidebar."
            )
            st.stop()
    for failure in explanation.failures:  # a check of the method's own claims failed
        st.warning(plain(failure), icon=":material/warning:")
    return explanation


@contextmanager
def guard(what: str) -> Iterator[None]:
    """Show any error as one line in the page; what the session computed stays."""
    try:
        yield
    except WhyboxError as exc:
        st.error(str(exc), icon=":material/error:")
    except Exception as exc:  # a bug, not bad input: one line here, the traceback in the log
        log.exception("unexpected error while %s", what)
        text = " ".join(str(exc).split())[:300]
        st.error(
            f"Unexpected {type(exc).__name__} while {what}: {text}. Your earlier results are "
            "kept; the server log has the details.",
            icon=":material/error:",
        )
