"""Job storage: a small :class:`JobStore` protocol and its embedded SQLite implementation.

Every accepted upload becomes a job row before the client gets an answer, so a restart loses nothing: queued
jobs are picked up again and jobs that were ``running`` when the process died are re-queued
(:meth:`JobStore.requeue_running`). A server database (PostgreSQL, ...) only needs another class with the same
methods; :meth:`JobStore.claim_next` must hand each queued job to exactly one worker.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict, Unpack

JobStatus = Literal["queued", "running", "done", "failed"]
STATUSES: tuple[str, ...] = ("queued", "running", "done", "failed")


@dataclass
class Job:
    """One analysis request.

    Attributes:
        id: random hex id.
        kind: ``"image"`` or ``"video"``.
        filename: the client's file name (display only; never used as a path).
        status: ``queued`` | ``running`` | ``done`` | ``failed``.
        progress: 0..1.
        created_at: Unix time the upload was accepted.
        started_at: Unix time of the latest start, if any.
        finished_at: Unix time it ended, if it did.
        upload_path: where the upload waits while the job is unfinished (deleted when it finishes).
        result: ``FileResult.to_dict()`` of the analysis.
        error: why it failed.
        heatmaps: names of evidence images stored for this job.
        attempts: how many times a worker started it.
    """

    id: str
    kind: str
    filename: str
    status: JobStatus = "queued"
    progress: float = 0.0
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    upload_path: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    heatmaps: list[str] = field(default_factory=list)
    attempts: int = 0


class JobOutcome(TypedDict, total=False):
    """What :meth:`JobStore.finish` records besides the status (each optional).

    Attributes:
        result: ``FileResult.to_dict()`` of the analysis.
        error: why it failed.
        heatmaps: names of evidence images stored for the job.
    """

    result: dict[str, Any] | None
    error: str | None
    heatmaps: list[str] | None


def new_job_id() -> str:
    """A fresh random job id (32 hex characters)."""
    return uuid.uuid4().hex


class JobStore(Protocol):
    """Persistent job storage shared by the API and the workers (all methods are thread-safe)."""

    def add(self, job: Job) -> None:
        """Insert a new job."""

    def get(self, job_id: str) -> Job | None:
        """The job, or ``None`` if there is no such id."""

    def claim_next(self) -> Job | None:
        """Atomically move the oldest queued job to ``running`` (attempts + 1) and return it."""

    def set_progress(self, job_id: str, progress: float) -> None:
        """Record progress of a running job."""

    def finish(self, job_id: str, status: JobStatus, **outcome: Unpack[JobOutcome]) -> None:
        """Mark a job done or failed with its result; clears ``upload_path``."""

    def requeue_running(self, max_attempts: int) -> tuple[list[str], list[str]]:
        """Put ``running`` jobs back in the queue (start-up recovery); return ``(requeued_ids, failed_ids)``.

        Jobs already started ``max_attempts`` times are failed instead (they may be what kills the process).
        """

    def counts(self) -> dict[str, int]:
        """Number of jobs per status."""

    def purge_finished(self, before: float) -> list[str]:
        """Delete the jobs that finished (done or failed) before Unix time ``before``; return their ids."""

    def close(self) -> None:
        """Release resources."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    filename TEXT NOT NULL,
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    upload_path TEXT,
    result TEXT,
    error TEXT,
    heatmaps TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status_created ON jobs (status, created_at);
"""

_FIELDS = tuple(f.name for f in fields(Job))  # the table's columns: the Job's fields, in order
_COLUMNS = ", ".join(_FIELDS)
_PLACEHOLDERS = ", ".join("?" * len(_FIELDS))


class SqliteJobStore:
    """:class:`JobStore` in one SQLite file (WAL mode; safe across threads and processes)."""

    def __init__(self, path: str | Path) -> None:
        """Open (and create if needed) the database at ``path``."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    def _row_to_job(self, row: tuple[Any, ...]) -> Job:
        values = dict(zip(_FIELDS, row, strict=True))
        values["result"] = json.loads(values["result"]) if values["result"] else None
        values["heatmaps"] = json.loads(values["heatmaps"] or "[]")
        return Job(**values)

    def add(self, job: Job) -> None:
        """Insert a new job."""
        values = {name: getattr(job, name) for name in _FIELDS}
        values["result"] = json.dumps(job.result) if job.result is not None else None
        values["heatmaps"] = json.dumps(job.heatmaps)
        with self._lock:
            self._conn.execute(f"INSERT INTO jobs ({_COLUMNS}) VALUES ({_PLACEHOLDERS})", tuple(values.values()))

    def get(self, job_id: str) -> Job | None:
        """The job, or ``None``."""
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._row_to_job(row) if row else None

    def claim_next(self) -> Job | None:
        """Atomically move the oldest queued job to ``running`` and return it."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute(
                    "SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1"
                ).fetchone()
                if row is None:
                    self._conn.execute("COMMIT")
                    return None
                self._conn.execute(
                    "UPDATE jobs SET status = 'running', started_at = ?, progress = 0, attempts = attempts + 1 "
                    "WHERE id = ?",
                    (time.time(), row[0]),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return self.get(row[0])

    def set_progress(self, job_id: str, progress: float) -> None:
        """Record progress of a running job."""
        with self._lock:
            self._conn.execute(
                "UPDATE jobs SET progress = ? WHERE id = ? AND status = 'running'",
                (min(max(float(progress), 0.0), 1.0), job_id),
            )

    def finish(self, job_id: str, status: JobStatus, **outcome: Unpack[JobOutcome]) -> None:
        """Mark a job done or failed with its result."""
        if status not in ("done", "failed"):
            raise ValueError(f"finish() needs status 'done' or 'failed', not {status!r}")
        result, error, heatmaps = outcome.get("result"), outcome.get("error"), outcome.get("heatmaps")
        with self._lock:
            self._conn.execute(
                "UPDATE jobs SET status = ?, progress = 1, finished_at = ?, result = ?, error = ?, heatmaps = ?, "
                "upload_path = NULL WHERE id = ?",
                (
                    status,
                    time.time(),
                    json.dumps(result) if result is not None else None,
                    error,
                    json.dumps(heatmaps or []),
                    job_id,
                ),
            )

    def requeue_running(self, max_attempts: int) -> tuple[list[str], list[str]]:
        """Re-queue jobs left ``running`` by a dead process (or fail them after ``max_attempts`` starts)."""
        with self._lock:
            rows = self._conn.execute("SELECT id, attempts FROM jobs WHERE status = 'running'").fetchall()
            requeued = [jid for jid, att in rows if att < max_attempts]
            failed = [jid for jid, att in rows if att >= max_attempts]
            for jid in requeued:
                self._conn.execute("UPDATE jobs SET status = 'queued', progress = 0 WHERE id = ?", (jid,))
            for jid in failed:
                self._conn.execute(
                    "UPDATE jobs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?",
                    (time.time(), f"interrupted {max_attempts} times while running; giving up", jid),
                )
        return requeued, failed

    def counts(self) -> dict[str, int]:
        """Number of jobs per status."""
        with self._lock:
            rows = self._conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        out = dict.fromkeys(STATUSES, 0)
        out.update(dict(rows))
        return out

    def purge_finished(self, before: float) -> list[str]:
        """Delete the jobs that finished (done or failed) before Unix time ``before``; return their ids."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id FROM jobs WHERE status IN ('done', 'failed') AND finished_at < ?", (before,)
            ).fetchall()
            ids = [r[0] for r in rows]
            self._conn.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in ids])
        return ids

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()
