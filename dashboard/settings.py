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


DATA_DIR_ENV = "WHYBOX_DATA_DIR"
SERVER_FILES = 1000
"""Files listed from the server data folder at most (the first by name)."""


def data_dir() -> Path | None:
    """The operator's server data folder, whose model and data files the dashboard offers
    by name (read on the server, without the upload size limit), or None where unset."""
    text = os.environ.get(DATA_DIR_ENV, "").strip()
    if not text:
        return None
    folder = Path(text).expanduser().resolve()
    if not folder.is_dir():
        from whybox.model_zoo import WhyboxError

        raise WhyboxError(f"{DATA_DIR_ENV}={text!r} is not a folder; set it to one or unset it")
    return folder


def server_files(folder: Path) -> list[str]:
    """The names of the files directly in `folder` (not in its subfolders, not hidden, no
    link that leads out of it), sorted, at most SERVER_FILES."""
    names = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.startswith(".") and _inside(entry, folder):
            names.append(entry.name)
            if len(names) == SERVER_FILES:
                break
    return names


def server_file(folder: Path, name: str) -> Path:
    """The file `name` of the server folder, resolved; only a name `server_files` lists is
    accepted (never a path a user typed), so nothing outside the folder can be read."""
    from whybox.model_zoo import WhyboxError

    if name not in server_files(folder):
        raise WhyboxError(f"{name!r} is not a file in the server data folder ({DATA_DIR_ENV})")
    return (folder / name).resolve()


def _inside(entry: Path, folder: Path) -> bool:
    """`entry` is a regular file whose real path (links followed) is in `folder`."""
    real = entry.resolve()
    return folder in real.parents and real.is_file()
