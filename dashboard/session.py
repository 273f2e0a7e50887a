"""Per-session state: the chosen model and data, and every explanation computed so far.

Nothing here is shared between users: uploads, loaded models and results live in
`st.session_state`, which Streamlit keeps per browser session. Results are keyed by
everything that decides them, so moving between views never recomputes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import streamlit as st

from explainers import Explanation
from model_zoo import Dataset, Model, WhyboxError
from model_zoo.images import ImageSet

log = logging.getLogger("whybox.dashboard")
T = TypeVar("T")


@dataclass(frozen=True)
class Inputs:
    """The model and data the session is looking at."""

    model: Model
    data: Dataset | ImageSet

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
