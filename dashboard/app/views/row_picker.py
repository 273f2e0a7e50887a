"""Row search for the Local, Images and Compare views: a row number with previous and next,
or the data's identifier (a tabular file's identifier column, an image's file name).

Never a list of every row: a rerun costs one comparison over the explained row numbers
(`np.flatnonzero`), so moving to another row stays quick at a million rows. An identifier is
looked up once, when it is typed.

Not a page: the views import it (st.navigation lists the pages it runs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from whybox.dashboard.reports.wording import plain
from whybox.model_zoo import Dataset
from whybox.model_zoo.image_data import ImageSet

NUMBER_WIDTH = 240
"""Pixels for the row number box: room for a million's digits and its step buttons."""
ID_WIDTH = 360
"""Pixels for the identifier search box."""


def identifiers(data: Dataset | ImageSet) -> tuple[pd.Series | None, str]:
    """Each dataset row's identifier, by row number, and what it is called: the identifier
    column of a table (None where it has none), the file name of an image."""
    if isinstance(data, ImageSet):
        return pd.Series(data.sources, dtype=object), "file name"
    return data.ids, str(data.id_name)


def rows_with_id(ids: pd.Series, text: str) -> np.ndarray:
    """The row numbers whose identifier reads exactly `text`.

    Numbers are compared as numbers first, then kept only where they read as `text`
    ("7" finds 7 but "7.0" does not), so no identifier is ever turned into text but the few
    that match."""
    values = ids.to_numpy()
    if values.dtype.kind in "iuf":
        try:
            candidates = np.flatnonzero(values == float(text))
        except ValueError:
            return np.empty(0, dtype=np.int64)
    elif values.dtype == object:
        candidates = np.flatnonzero(values == text)
    else:
        candidates = np.flatnonzero(ids.astype(str).to_numpy() == text)
    return np.array([r for r in candidates if str(values[r]) == text], dtype=np.int64)


def pick_row(
    rows: np.ndarray, data: Dataset | ImageSet, key: str, label: str = "Row"
) -> tuple[int, int] | None:
    """The dataset row number the user picked among the explained `rows` (in explanation
    order) and its position there; None, with a message, where that row was not explained.

    `st.session_state[key]` holds the row number (the first explained row at first); the
    widgets' keys start with `key`: `key:previous`, `key:next` (the explained row before or
    after, in explanation order) and `key:id` (the identifier search).
    """
    rows = np.asarray(rows)
    ids, id_name = identifiers(data)
    if key not in st.session_state:  # first shown, or Streamlit dropped it on leaving the page
        st.session_state[key] = int(rows[0])
        st.session_state[f"{key}:note"] = None
    # One row container, not columns: a column is one more element for the browser to lay
    # out again at every move.
    line = st.container(horizontal=True, vertical_alignment="bottom")
    line.number_input(
        f"{label} (row number)",
        min_value=0,
        step=1,
        key=key,
        on_change=_forget,
        args=(key,),
        width=NUMBER_WIDTH,
    )
    line.button("Previous", key=f"{key}:previous", on_click=_step, args=(rows, key, -1))
    line.button("Next", key=f"{key}:next", on_click=_step, args=(rows, key, 1))
    if ids is not None:
        line.text_input(
            f"or {plain(id_name)} (exact)",
            key=f"{key}:id",
            on_change=_find,
            args=(ids, id_name, rows, key),
            help=f"Type a {plain(id_name)} and press Enter to go to its row.",
            width=ID_WIDTH,
        )
    if note := st.session_state.get(f"{key}:note"):
        st.warning(plain(note), icon=":material/search_off:")
    row = int(st.session_state[key])
    named = "" if ids is None or row >= len(ids) else f" ({id_name} {ids.iloc[row]})"
    found = np.flatnonzero(rows == row)
    if not len(found):
        st.warning(
            plain(
                f"Row {row:,}{named} was not explained: this run explained {len(rows):,} "
                f"rows, numbered {rows.min():,} to {rows.max():,}."
            ),
            icon=":material/warning:",
        )
        return None
    position = int(found[0])
    st.caption(plain(f"Row {row:,}{named}: {position + 1:,} of {len(rows):,} explained rows."))
    return row, position


def _forget(key: str) -> None:
    """A row number typed: the identifier searched before no longer names it."""
    st.session_state[f"{key}:id"] = ""
    st.session_state[f"{key}:note"] = None


def _step(rows: np.ndarray, key: str, by: int) -> None:
    """To the explained row `by` places on (clamped at the ends), or the first explained
    row from a row that was not explained."""
    found = np.flatnonzero(rows == st.session_state[key])
    place = int(np.clip(found[0] + by, 0, len(rows) - 1)) if len(found) else 0
    st.session_state[key] = int(rows[place])
    _forget(key)


def _find(ids: pd.Series, id_name: str, rows: np.ndarray, key: str) -> None:
    """To the row whose identifier was typed: the first explained one where several share
    it. Where none has it, the row stays and a note says so."""
    text = st.session_state[f"{key}:id"].strip()
    st.session_state[f"{key}:note"] = None
    if not text:
        return
    matches = rows_with_id(ids, text)
    if not len(matches):
        st.session_state[f"{key}:note"] = f"No row has {id_name} {text}."
        return
    explained = matches[np.isin(matches, rows)]
    st.session_state[key] = int(explained[0] if len(explained) else matches[0])
    if len(matches) > 1:
        st.session_state[f"{key}:note"] = (
            f"{len(matches):,} rows have {id_name} {text}: "
            f"{', '.join(f'{r:,}' for r in matches[:10])}{', ...' if len(matches) > 10 else ''}."
        )
