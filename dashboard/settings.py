"""Operator settings of the dashboard, its command line and its run records, read from the
environment (never from a request or an uploaded file). Imports no streamlit, so the command
line and the run store read them too.

The settings of loading models (trusted loading, the demo cache) are in
whybox.model_zoo.settings.
"""

import os
from pathlib import Path

STORE_ENV = "WHYBOX_STORE"
USER_HEADER_ENV = "WHYBOX_USER_HEADER"
TYPICALITY_ENV = "WHYBOX_TYPICALITY_THRESHOLD"
TYPICALITY_DEFAULT = 0.01


def store_path() -> Path:
    """The SQLite audit trail of explanation runs (`whybox runs`). Not in the cache: clearing
    a cache must not erase the record. Default: $XDG_DATA_HOME/whybox/runs.sqlite."""
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "whybox" / "runs.sqlite"


def user_header() -> str | None:
    """The request header in which an authenticating proxy in front of the dashboard names
    the user (e.g. X-Forwarded-User). Set it only where every request passes that proxy:
    anyone who reaches the server directly could send the header themselves."""
    return os.environ.get(USER_HEADER_ENV, "").strip() or None


def typicality_threshold() -> float:
    """Rows whose typicality is below this share (of reference rows as unusual) are marked
    outside the training data: their explanations describe an extrapolation."""
    text = os.environ.get(TYPICALITY_ENV, "").strip()
    if not text:
        return TYPICALITY_DEFAULT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        from whybox.model_zoo import WhyboxError

        raise WhyboxError(
            f"{TYPICALITY_ENV}={text!r} is not a share between 0 and 1; set it to e.g. 0.01"
        )
    return value
