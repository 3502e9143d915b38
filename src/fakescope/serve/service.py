"""The running service: data folders, job store, predictor pool and worker, started and stopped by the lifespan.

Layout of ``settings.data_dir``::

    serve.lock          held (flock) by the one service using the folder; a second one is refused
    jobs.sqlite3        job database (SQLite, WAL)
    tmp/                uploads while they are received and checked (always emptied)
    uploads/            accepted videos waiting for (or in) their job; deleted when the job finishes
    evidence/<job id>/  Grad-CAM overlays and timeline plots of finished jobs
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fakescope.errors import FakescopeError
from fakescope.serve.settings import Settings
from fakescope.serve.store import Job, JobStore, SqliteJobStore
from fakescope.serve.worker import JobWorker, PredictorPool, run_analysis

_logger = logging.getLogger(__name__)

LOCK_NAME = "serve.lock"


class DataDirBusy(FakescopeError):
    """Another service holds the data folder (its jobs and temporary files are left alone)."""


class DataDirLock:
    """An exclusive ``flock`` on ``data_dir/serve.lock`` for the lifetime of a service.

    The kernel drops the lock when the process exits, even after ``kill -9``, so a crashed server never blocks the
    next one, while a live one is never displaced: the second server is refused before it touches anything.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fh: Any = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`DataDirBusy` naming the folder and the holder's pid."""
        import fcntl
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held open for the service's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if not isinstance(exc, BlockingIOError):
                fh.close()
                raise DataDirBusy(f"{self.path}: cannot lock the data folder ({exc})") from exc
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise DataDirBusy(
                f"{self.path.parent}: another fakescope serve (pid {holder}) is using this data folder; stop it "
                "or give this one its own --data-dir"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        """Drop the lock."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


PredictorFactory = Callable[[Settings], Any]


def load_predictor(settings: Settings) -> Any:
    """Build one :class:`fakescope.predict.Predictor` from the settings."""
    from fakescope.predict import DEFAULT_MODEL, Predictor

    return Predictor(
        settings.model or DEFAULT_MODEL,
        runtime=settings.runtime,
        detector=settings.face_detector,
        num_frames=settings.num_frames,
        aggregation=settings.aggregation,
        weights_dir=settings.weights_dir,
        cache_dir=settings.home,
        detector_weights_dir=settings.face_weights_dir,
        threads=settings.resolved_threads,
    )


def _warm_up_explain() -> None:
    """Import the Grad-CAM stack now: its first import takes seconds and would otherwise land on a request."""
    try:
        import pytorch_grad_cam  # noqa: F401

        import fakescope.explain  # noqa: F401
    except ImportError:  # pragma: no cover - grad-cam is a declared dependency
        _logger.warning("grad-cam is not importable; heatmaps will be missing")


class Service:
    """Everything the HTTP routes need, owned by one app instance.

    Args:
        settings: service settings.
        predictor_factory: builds one predictor from the settings (default :func:`load_predictor`); called
            ``settings.workers`` times at start.
        store: job store (default: SQLite in ``data_dir/jobs.sqlite3``).
    """

    def __init__(
        self,
        settings: Settings,
        predictor_factory: PredictorFactory | None = None,
        store: JobStore | None = None,
    ) -> None:
        self.settings = settings
        self.data_dir = Path(settings.data_dir)
        self.tmp_dir = self.data_dir / "tmp"
        self.uploads_dir = self.data_dir / "uploads"
        self.evidence_dir = self.data_dir / "evidence"
        self._factory = predictor_factory or load_predictor
        self._store = store
        self.pool: PredictorPool | None = None
        self.worker: JobWorker | None = None
        self.started_at: float | None = None
        self._lock = DataDirLock(self.data_dir)

    @property
    def store(self) -> JobStore:
        """The job store (available after :meth:`start`)."""
        if self._store is None:
            raise RuntimeError("the service is not started")
        return self._store

    def start(self) -> None:
        """Lock the data folder, create folders, recover interrupted jobs, load the predictors, start the worker.

        Raises:
            DataDirBusy: another service holds ``data_dir`` (nothing in it was touched).
        """
        self._lock.acquire()
        try:
            self._start_locked()
        except BaseException:
            self.stop()  # release what was built and the lock, so a retry in this process can start
            raise

    def _start_locked(self) -> None:
        for d in (self.tmp_dir, self.uploads_dir, self.evidence_dir):
            d.mkdir(parents=True, exist_ok=True)
        if self._store is None:
            self._store = SqliteJobStore(self.data_dir / "jobs.sqlite3")
        self._clean_tmp()
        requeued, failed = self.store.requeue_running(self.settings.max_attempts)
        if requeued:
            _logger.warning("re-queued %d job(s) interrupted by a restart", len(requeued))
        for jid in failed:
            self._drop_job_files(jid)
        workers, threads = self.settings.resolved_workers, self.settings.resolved_threads
        self.pool = PredictorPool([self._factory(self.settings) for _ in range(workers)])
        _logger.info("%d worker(s), %s thread(s) each", workers, threads or "all")
        if self.settings.explain:
            _warm_up_explain()  # imports torch even when the predictors run ONNX Runtime
        if threads is not None and "torch" in sys.modules:  # one intra-op pool per process: each worker's share
            import torch

            torch.set_num_threads(threads)
        self.worker = JobWorker(
            self.store,
            self.pool,
            self.evidence_dir,
            threads=workers,
            explain=self.settings.explain,
            poll_interval_s=self.settings.poll_interval_s,
            job_timeout_s=self.settings.job_timeout_s,
            retention_s=self.settings.retention_hours * 3600 if self.settings.retention_hours > 0 else None,
        )
        if self.settings.worker_enabled:
            self.worker.start()
        self.started_at = time.time()

    def stop(self) -> None:
        """Stop the worker (after its current job), release predictors, close the store."""
        if self.worker is not None:
            self.worker.stop()
        if self.pool is not None:
            self.pool.close()
        if self._store is not None:
            self._store.close()
            self._store = None
        self._lock.release()

    # -- job helpers ----------------------------------------------------------------------------------------------
    def enqueue(self, job: Job, upload: Path) -> Job:
        """Move a checked upload to ``uploads/`` and queue its job (the upload is deleted when it finishes)."""
        target = self.uploads_dir / f"{job.id}{upload.suffix}"
        shutil.move(str(upload), target)
        job.upload_path = str(target)
        job.status = "queued"
        try:
            self.store.add(job)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        if self.worker is not None:
            self.worker.notify()
        return job

    def analyze_now(self, job: Job, upload: Path) -> Job:
        """Analyse an upload synchronously (images) and record it as a finished job; blocking.

        The caller deletes ``upload`` afterwards.
        """
        job.status = "running"
        job.started_at = time.time()
        job.attempts = 1
        self.store.add(job)
        evidence = self.evidence_dir / job.id if self.settings.explain else None
        assert self.pool is not None
        try:
            with self.pool.acquire() as predictor:
                result, names = run_analysis(predictor, upload, filename=job.filename, evidence_dir=evidence)
        except Exception as exc:
            _logger.exception("analysis of job %s failed", job.id)
            self._drop_job_files(job.id)
            self.store.finish(job.id, "failed", error=f"{type(exc).__name__}: {exc}")
        else:
            if result.get("verdict") == "error":
                self._drop_job_files(job.id)
                self.store.finish(job.id, "failed", result=result, error=result.get("error") or "analysis failed")
            else:
                self.store.finish(job.id, "done", result=result, heatmaps=names)
        out = self.store.get(job.id)
        assert out is not None
        return out

    def evidence_path(self, job_id: str, name: str) -> Path | None:
        """The stored evidence image ``name`` of a job, or None."""
        job = self.store.get(job_id)
        if job is None or name not in job.heatmaps:
            return None
        path = self.evidence_dir / job_id / name
        return path if path.is_file() else None

    def _drop_job_files(self, job_id: str) -> None:
        shutil.rmtree(self.evidence_dir / job_id, ignore_errors=True)
        for p in self.uploads_dir.glob(f"{job_id}.*"):
            p.unlink(missing_ok=True)

    def _clean_tmp(self) -> None:
        """Delete leftovers of uploads interrupted by a crash."""
        for p in self.tmp_dir.iterdir():
            with contextlib.suppress(OSError):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
