"""Per-session state: the chosen model and data, and every explanation computed so far.

Nothing here is shared between users: uploads, loaded models and results live in
`st.session_state`, which Streamlit keeps per browser session. Results are keyed by
everything that decides them, so moving between views never recomputes.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import streamlit as st

from whybox.dashboard import settings
from whybox.explainers import Explanation
from whybox.model_zoo import Dataset, Model, WhyboxError
from whybox.model_zoo.image_data import ImageSet

if TYPE_CHECKING:
    from whybox.dashboard.runs.records import Run

log = logging.getLogger("whybox.dashboard")
T = TypeVar("T")


@dataclass(frozen=True)
class Inputs:
    """The model and data the session is looking at; `source` is how `whybox explain` names
    them (MODEL DATA and data options), for the command that reproduces a run."""

    model: Model
    data: Dataset | ImageSet
    source: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.model.sha256, self.data.sha256)

    @property
    def images(self) -> bool:
        return self.model.modality == "image"


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


def cached(key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()` once per session and key; later calls return the stored result."""
    results: dict[Hashable, Any] = st.session_state.setdefault("results", {})
    if key not in results:
        results[key] = compute()
    return results[key]


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
    return st.session_state.get("results", {}).get(key)


def current_run() -> Run | None:
    """The saved run of the current explanation (None where recording it failed)."""
    return st.session_state.get("runs", {}).get(st.session_state.get("current"))


def record_run(key: Hashable, loaded: Inputs, explanation: Explanation, command: list[str]) -> Run:
    """Save a finished explanation as a run directory beside the audit trail and record it
    there, with the user (where an authenticating proxy names one) and this session."""
    from whybox.dashboard.runs.audit import RunStore
    from whybox.dashboard.runs.records import save_run

    started = time.perf_counter()
    store = RunStore()
    run_id = uuid.uuid4().hex
    out = store.run_root / run_id
    run = save_run(loaded.model, loaded.data, explanation, out, command, run_id=run_id)
    duration = explanation.seconds + time.perf_counter() - started
    store.record(run, "dashboard", user=user(), duration=duration, session=session_id())
    st.session_state.setdefault("runs", {})[key] = run
    return run


def user() -> str | None:
    """The user an authenticating proxy names in the operator's WHYBOX_USER_HEADER."""
    header = settings.user_header()
    return st.context.headers.get(header) if header else None


def session_id() -> str:
    """A random id for this browser session, made on its first use."""
    return st.session_state.setdefault("session_id", uuid.uuid4().hex)


def require_explanation() -> Explanation:
    explanation = current_explanation()
    if explanation is None:
        st.info("Pick an explainer and rows in the sidebar, then press **Explain**.")
        st.stop()
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
