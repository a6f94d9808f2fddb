"""The job store: one SQLite table that the web process and the worker processes share.

A job is ``queued`` until a worker claims it (``running``, with a lease that the worker's
heartbeat keeps extending), then ``done`` or ``failed``. A worker that dies (SIGKILL, out of
memory, power cut) stops renewing its lease; the next claim by any worker finds the expired
lease and puts the job back in the queue, or fails it with a reason once it has used
``max_attempts`` attempts. No job stays ``running`` without a live worker.

Every write is one short ``BEGIN IMMEDIATE`` transaction, so two workers never claim the same
job. Ids are ``secrets.token_urlsafe(16)`` (128 random bits): a job and its files are reachable
only by someone who was given its id.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automix.service.problems import problem

STATUSES = ("queued", "running", "done", "failed")
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")  # token_urlsafe(16) without padding
DEFAULT_MAX_ATTEMPTS = 2
BUSY_TIMEOUT_MS = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT 'queued',
    lease_owner TEXT,
    lease_expires REAL,
    error TEXT,
    result TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, created_at);
"""


@dataclass(frozen=True)
class Job:
    """One row of the store; ``params``, ``error`` and ``result`` are decoded JSON."""

    id: str
    kind: str
    status: str
    params: dict[str, Any]
    attempts: int
    max_attempts: int
    progress: float
    stage: str
    lease_owner: str | None
    lease_expires: float | None
    error: dict[str, Any] | None
    result: dict[str, Any] | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        data = dict(row)
        for key in ("params", "error", "result"):
            data[key] = json.loads(data[key]) if data[key] is not None else None
        return cls(**data)


def new_id() -> str:
    """An unguessable job id (128 random bits, URL-safe)."""
    return secrets.token_urlsafe(16)


class JobStore:
    """Jobs in the SQLite file ``path`` (created with its folder if missing).

    Each method opens its own connection, so one store may be used from any thread or
    process. ``now`` arguments exist for tests; they default to the wall clock.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    def create(self, kind: str, params: dict[str, Any], *, job_id: str | None = None,
               max_attempts: int = DEFAULT_MAX_ATTEMPTS, now: float | None = None) -> Job:
        """Queue a new job and return it."""
        t = time.time() if now is None else now
        job_id = job_id or new_id()
        with self._transaction() as db:
            db.execute("INSERT INTO jobs (id, kind, status, params, max_attempts, created_at, "
                       "updated_at) VALUES (?, ?, 'queued', ?, ?, ?, ?)",
                       (job_id, kind, json.dumps(params), max_attempts, t, t))
        job = self.get(job_id)
        assert job is not None  # just inserted in a committed transaction
        return job

    def get(self, job_id: str) -> Job | None:
        db = self._connect()
        try:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        finally:
            db.close()
        return Job.from_row(row) if row is not None else None

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status."""
        db = self._connect()
        try:
            rows = db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        finally:
            db.close()
        return {s: 0 for s in STATUSES} | {r[0]: r[1] for r in rows}

    def claim(self, owner: str, lease_s: float, *, now: float | None = None) -> Job | None:
        """Take the oldest queued job for ``owner`` with a lease of ``lease_s`` seconds.

        Expired leases are settled first (in the same transaction): back to the queue, or
        failed once their attempts are used up.
        """
        t = time.time() if now is None else now
        with self._transaction() as db:
            self._expire(db, t)
            row = db.execute("SELECT id FROM jobs WHERE status = 'queued' "
                             "ORDER BY created_at, id LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET status = 'running', attempts = attempts + 1, "
                       "lease_owner = ?, lease_expires = ?, stage = 'starting', progress = 0, "
                       "started_at = ?, updated_at = ? WHERE id = ?",
                       (owner, t + lease_s, t, t, row["id"]))
        return self.get(row["id"])

    @staticmethod
    def _expire(db: sqlite3.Connection, t: float) -> None:
        lost = "the worker stopped answering during attempt {n} of {m} (lease expired)"
        rows = db.execute("SELECT id, attempts, max_attempts FROM jobs WHERE status = 'running' "
                          "AND lease_expires < ?", (t,)).fetchall()
        for row in rows:
            reason = lost.format(n=row["attempts"], m=row["max_attempts"])
            if row["attempts"] >= row["max_attempts"]:
                error = problem(500, "Worker lost", reason, "worker-lost")
                db.execute("UPDATE jobs SET status = 'failed', error = ?, lease_owner = NULL, "
                           "lease_expires = NULL, stage = 'failed', finished_at = ?, "
                           "updated_at = ? WHERE id = ?", (json.dumps(error), t, t, row["id"]))
            else:
                db.execute("UPDATE jobs SET status = 'queued', lease_owner = NULL, "
                           "lease_expires = NULL, stage = 'retrying: ' || ?, progress = 0, "
                           "updated_at = ? WHERE id = ?", (reason, t, row["id"]))

    def heartbeat(self, job_id: str, owner: str, lease_s: float, *, progress: float | None = None,
                  stage: str | None = None, now: float | None = None) -> bool:
        """Extend the lease (and record progress); False when the job is no longer ours."""
        t = time.time() if now is None else now
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE jobs SET lease_expires = ?, progress = COALESCE(?, progress), "
                "stage = COALESCE(?, stage), updated_at = ? "
                "WHERE id = ? AND lease_owner = ? AND status = 'running'",
                (t + lease_s, progress, stage, t, job_id, owner))
        return cur.rowcount == 1

    def finish(self, job_id: str, owner: str, result: dict[str, Any], *,
               now: float | None = None) -> bool:
        """Mark our running job done with its ``result``."""
        t = time.time() if now is None else now
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE jobs SET status = 'done', result = ?, progress = 1, stage = 'done', "
                "lease_owner = NULL, lease_expires = NULL, finished_at = ?, updated_at = ? "
                "WHERE id = ? AND lease_owner = ? AND status = 'running'",
                (json.dumps(result), t, t, job_id, owner))
        return cur.rowcount == 1

    def fail(self, job_id: str, owner: str, error: dict[str, Any], *,
             now: float | None = None) -> bool:
        """Mark our running job failed; ``error`` is a problem+json object."""
        t = time.time() if now is None else now
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE jobs SET status = 'failed', error = ?, stage = 'failed', "
                "lease_owner = NULL, lease_expires = NULL, finished_at = ?, updated_at = ? "
                "WHERE id = ? AND lease_owner = ? AND status = 'running'",
                (json.dumps(error), t, t, job_id, owner))
        return cur.rowcount == 1

    def release(self, job_id: str, owner: str, *, now: float | None = None) -> bool:
        """Give a running job back to the queue without spending an attempt (shutdown)."""
        t = time.time() if now is None else now
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE jobs SET status = 'queued', attempts = attempts - 1, lease_owner = NULL, "
                "lease_expires = NULL, stage = 'queued', progress = 0, updated_at = ? "
                "WHERE id = ? AND lease_owner = ? AND status = 'running'", (t, job_id, owner))
        return cur.rowcount == 1
