"""The audit trail: every explanation run and every comparison of two model versions, from
the CLI or the dashboard, in one SQLite file.

Each operation opens its own connection and the database runs in WAL mode, so several
processes and threads may record at once. The SHA-256 of every file a run wrote (run.json
included) is kept, so `verify` shows a run directory changed after the fact.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whybox.dashboard import settings
from whybox.model_zoo import WhyboxError
from whybox.model_zoo.model import file_sha256

if TYPE_CHECKING:
    from whybox.dashboard.runs.records import Run

SCHEMA_VERSION = 4
SOURCES = ("cli", "dashboard")
BUSY_TIMEOUT_S = 30.0
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    recorded TEXT NOT NULL,
    user TEXT,
    session TEXT,
    source TEXT NOT NULL CHECK (source IN {SOURCES}),
    command TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_format TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    data_name TEXT NOT NULL,
    data_sha256 TEXT NOT NULL,
    explainer TEXT NOT NULL,
    params TEXT NOT NULL,
    seed INTEGER,
    output_space TEXT NOT NULL,
    target TEXT NOT NULL,
    device TEXT NOT NULL,
    versions TEXT NOT NULL,
    seconds REAL NOT NULL,
    rows INTEGER NOT NULL,
    directory TEXT NOT NULL,
    files TEXT NOT NULL,
    id_column TEXT,
    identifiers TEXT,
    model_b_name TEXT,
    model_b_format TEXT,
    model_b_sha256 TEXT
)
"""
JSON_COLUMNS = ("command", "params", "target", "versions", "files", "identifiers")
# Columns each schema version added, for stores an older whybox created.
ADDED = {
    2: {"session": "TEXT"},
    3: {"id_column": "TEXT", "identifiers": "TEXT"},
    4: {"model_b_name": "TEXT", "model_b_format": "TEXT", "model_b_sha256": "TEXT"},
}


@dataclass(frozen=True)
class RunEntry:
    """One recorded run. `user` is the login (CLI) or the name an authenticating proxy gave
    (dashboard), where known; `session` the dashboard's browser session. `seconds` is the
    whole run's wall time (loading, explaining, writing); `files` maps each file in
    `directory` to its SHA-256 when it was written. `identifiers` are the values of the
    data's `id_column` (an application or patient number) of the explained rows, where
    the run named one. A comparison of two model versions (`whybox diff`) records model A
    (the current one) as the model and model B (the candidate) in `model_b_name`,
    `model_b_format` and `model_b_sha256`; `explainer` is the method both were explained
    by ("none" where their reasons were not compared)."""

    run_id: str
    created: str
    recorded: str
    user: str | None
    session: str | None
    source: str
    command: list[str]
    model_name: str
    model_format: str
    model_sha256: str
    data_name: str
    data_sha256: str
    explainer: str
    params: dict[str, Any]
    seed: int | None
    output_space: str
    target: list[str]
    device: str
    versions: dict[str, str]
    seconds: float
    rows: int
    directory: str
    files: dict[str, str]
    id_column: str | None = None
    identifiers: list[str] | None = None
    model_b_name: str | None = None
    model_b_format: str | None = None
    model_b_sha256: str | None = None

    @property
    def comparison(self) -> bool:
        """Whether this entry compares two model versions (a diff.json in `directory`, not
        a run to reopen)."""
        return self.model_b_sha256 is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS = tuple(f.name for f in fields(RunEntry))


def _upgrade(connection: sqlite3.Connection, version: int) -> None:
    """Add the columns later versions added to a store an older whybox created; its runs
    read them as empty."""
    present = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
    for added in range(version + 1, SCHEMA_VERSION + 1):
        for column, kind in ADDED[added].items():
            if column not in present:
                connection.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _loaded(column: str, value: Any) -> Any:
    return json.loads(value) if column in JSON_COLUMNS and value is not None else value


class RunStore:
    """The run history in the SQLite file `path` (default: the operator's WHYBOX_STORE)."""

    def __init__(self, path: Path | None = None, create: bool = True) -> None:
        """With `create`, make the file and its table now, so an unwritable store is an
        error before any work is done; without, a missing store reads as empty."""
        self.path = Path(path) if path is not None else settings.store_path()
        if create:
            with self._connect(write=True):
                pass

    @contextlib.contextmanager
    def _connect(self, write: bool) -> Iterator[sqlite3.Connection]:
        """A connection for one operation, in a transaction (write: taking the write lock
        at once); the schema is created or checked first."""
        action = "write" if write else "read"
        try:
            if write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise self._error(action, exc) from None
        try:
            if write:
                connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version == 0 and write:
                connection.execute(SCHEMA)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif 0 < version < SCHEMA_VERSION and write:
                _upgrade(connection, version)
            elif version > SCHEMA_VERSION:
                raise WhyboxError(
                    f"the run store {self.path} has schema version {version}, this whybox "
                    f"reads version {SCHEMA_VERSION}; upgrade whybox or set {settings.STORE_ENV} "
                    "to another file"
                )
            yield connection
            connection.execute("COMMIT")
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise self._error(action, exc) from None
        finally:
            connection.close()

    @property
    def run_root(self) -> Path:
        """Where the dashboard writes the directories of its runs: beside the database."""
        return self.path.parent / "runs"

    def _error(self, action: str, exc: Exception) -> WhyboxError:
        reason = f"{exc.strerror} ({exc.filename})" if isinstance(exc, OSError) else str(exc)
        wanted = "a file you can write" if action == "write" else "a whybox run store"
        return WhyboxError(
            f"cannot {action} the run store {self.path}: {reason}; set {settings.STORE_ENV} "
            f"(or --store) to {wanted}"
        )

    def record(
        self,
        run: Run,
        source: str,
        user: str | None,
        duration: float,
        session: str | None = None,
    ) -> None:
        """Add a finished run; `duration` is its wall time in seconds."""
        record = run.record
        directory = Path(run.directory).resolve()
        files = dict(record["files"]) | {"run.json": file_sha256(directory / "run.json")}
        self._insert(
            _entry(
                record,
                record["model"],
                directory,
                files,
                source,
                user,
                duration,
                session,
                explainer=record["explainer"],
                params=record["params"],
                output_space=record["output_space"],
                target=record["target"],
                device=record["device"],
                identifiers=record["data"].get("explained_ids"),
            )
        )

    def record_comparison(
        self,
        record: dict[str, Any],
        directory: Path,
        source: str,
        user: str | None,
        duration: float,
        session: str | None = None,
    ) -> None:
        """Add a finished comparison of two model versions: its diff.json `record`
        (`versions_record`), written in `directory`; `duration` is its wall time in seconds."""
        directory = Path(directory).resolve()
        reasons, decisions = record["reasons"], record["decisions"]
        model_b = record["models"]["B"]
        self._insert(
            _entry(
                record,
                record["models"]["A"],
                directory,
                {"diff.json": file_sha256(directory / "diff.json")},
                source,
                user,
                duration,
                session,
                explainer="none" if reasons is None else reasons["method"],
                params={
                    "favourable": decisions.get("favourable", {}).get("class"),
                    "alpha": record["alpha"],
                    **(reasons["params"] if reasons else {}),
                },
                output_space=decisions["space"] if reasons is None else reasons["output_space"],
                target=[] if reasons is None or reasons["target"] is None else [reasons["target"]],
                device="-",
                model_b_name=model_b["name"],
                model_b_format=model_b["format"],
                model_b_sha256=model_b["sha256"],
            )
        )

    def _insert(self, entry: RunEntry) -> None:
        values = [
            json.dumps(v, sort_keys=True) if c in JSON_COLUMNS and v is not None else v
            for c, v in asdict(entry).items()
        ]
        try:
            with self._connect(write=True) as connection:
                connection.execute(
                    f"INSERT INTO runs ({', '.join(COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(COLUMNS))})",
                    values,
                )
        except sqlite3.IntegrityError:
            raise WhyboxError(
                f"run {entry.run_id} is already recorded in the run store {self.path}"
            ) from None

    def _select(self, where: str = "", args: tuple = (), limit: int = -1) -> list[RunEntry]:
        if not self.path.exists():
            return []
        with self._connect(write=False) as connection:
            if connection.execute("PRAGMA user_version").fetchone()[0] == 0:
                return []
            present = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
            columns = [c for c in COLUMNS if c in present]  # an older store lacks some
            if "identifiers" in where and "identifiers" not in present:
                return []  # no run of a store older than identifiers named one
            connection.row_factory = sqlite3.Row
            rows = connection.execute(
                f"SELECT {', '.join(columns)} FROM runs {where} "
                "ORDER BY created DESC, rowid DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [
            RunEntry(**{c: _loaded(c, row[c]) if c in columns else None for c in COLUMNS})
            for row in rows
        ]

    def runs(
        self,
        limit: int | None = None,
        *,
        user: str | None = None,
        session: str | None = None,
        identifier: str | None = None,
    ) -> list[RunEntry]:
        """The recorded runs, newest first (the `limit` newest), of one user or one dashboard
        session, and that explained the row with this `identifier`, where given."""
        where = {
            "user = ?": user,
            "session = ?": session,
            "EXISTS (SELECT 1 FROM json_each(identifiers) WHERE value = ?)": identifier,
        }
        clauses = [clause for clause, value in where.items() if value is not None]
        return self._select(
            "WHERE " + " AND ".join(clauses) if clauses else "",
            tuple(value for value in where.values() if value is not None),
            limit=-1 if limit is None else limit,
        )

    def get(self, run_id: str) -> RunEntry:
        found = self._select("WHERE run_id = ?", (run_id,))
        if not found:
            raise WhyboxError(
                f"no run {run_id!r} in the run store {self.path}; `whybox runs` lists them"
            )
        return found[0]

    def verify(self, run_id: str) -> list[str]:
        """The files of the run whose SHA-256 no longer matches the record (changed or gone)."""
        entry = self.get(run_id)
        directory = Path(entry.directory)
        return [
            name
            for name, digest in sorted(entry.files.items())
            if not (directory / name).is_file() or file_sha256(directory / name) != digest
        ]


def _entry(
    record: dict[str, Any],
    model: dict[str, Any],
    directory: Path,
    files: dict[str, str],
    source: str,
    user: str | None,
    duration: float,
    session: str | None,
    **specific: Any,
) -> RunEntry:
    """The audit entry of a run's or a comparison's `record`: what both share, and the
    `specific` fields of the kind."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    return RunEntry(
        run_id=record["run_id"],
        created=record["created"],
        recorded=datetime.now(UTC).isoformat(timespec="seconds"),
        user=user,
        session=session,
        source=source,
        command=list(record["command"]),
        model_name=model["name"],
        model_format=model["format"],
        model_sha256=model["sha256"],
        data_name=record["data"]["name"],
        data_sha256=record["data"]["sha256"],
        seed=record["seed"],
        versions=record["versions"],
        seconds=float(duration),
        rows=int(record["rows"]),
        directory=str(directory),
        files=files,
        id_column=record["data"].get("id"),
        **specific,
    )
