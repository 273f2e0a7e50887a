"""Operator settings read from the environment (never from an uploaded file)."""

import os
from pathlib import Path

TRUST_ENV = "WHYBOX_TRUST_MODELS"
CACHE_ENV = "WHYBOX_CACHE_DIR"
STORE_ENV = "WHYBOX_STORE"
USER_HEADER_ENV = "WHYBOX_USER_HEADER"


def trusted_loading_enabled() -> bool:
    """Whether the operator switched on loading of formats that can run code (pickle etc.)."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """Where demo models and data are cached after their first, deterministic training."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "whybox"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


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
