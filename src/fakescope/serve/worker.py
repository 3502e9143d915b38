"""Background job worker and the pool of loaded predictors it shares with the inline image route.

A predictor (model + face detector) is not safe to call from two threads at once, so the service loads
``settings.workers`` predictors into a :class:`PredictorPool`; every analysis borrows one. The worker threads
take queued jobs from the :class:`~fakescope.serve.store.JobStore` one at a time each.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fakescope.serve.store import Job, JobStore

_logger = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class PredictorPool:
    """A fixed set of predictors; :meth:`acquire` lends one to the calling thread."""

    def __init__(self, predictors: list[Any]) -> None:
        """Wrap already loaded predictors (at least one)."""
        if not predictors:
            raise ValueError("PredictorPool needs at least one predictor")
        self.predictors = list(predictors)
        self._free: queue.Queue[Any] = queue.Queue()
        for p in self.predictors:
            self._free.put(p)

    @property
    def primary(self) -> Any:
        """The first predictor (for model information)."""
        return self.predictors[0]

    @contextlib.contextmanager
    def acquire(self) -> Iterator[Any]:
        """Borrow a predictor; blocks until one is free."""
        p = self._free.get()
        try:
            yield p
        finally:
            self._free.put(p)

    def close(self) -> None:
        """Close predictors that have a ``close()`` method."""
        for p in self.predictors:
            close = getattr(p, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def run_analysis(
    predictor: Any,
    path: Path,
    *,
    filename: str,
    evidence_dir: Path | None,
    progress: Callable[[float], None] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Analyse one file; return ``(FileResult.to_dict(), evidence image names)``.

    Heatmaps are requested (``explain_dir=evidence_dir``) only when ``evidence_dir`` is given and the predictor
    supports it; the PNGs it writes are flattened into ``evidence_dir`` under safe names. The server-side path
    in the result is replaced by the client's file name.
    """
    kwargs: dict[str, Any] = {}
    if evidence_dir is not None and _accepts(predictor.analyze, "explain_dir"):
        evidence_dir.mkdir(parents=True, exist_ok=True)
        kwargs["explain_dir"] = evidence_dir
    if progress is not None and _accepts(predictor.analyze, "progress"):
        kwargs["progress"] = progress
    result = predictor.analyze(path, **kwargs)
    data = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    data["path"] = filename
    mapping = _collect_evidence(evidence_dir) if "explain_dir" in kwargs else {}
    _rewrite_paths(data, mapping)
    return data, sorted(mapping.values())


def _collect_evidence(evidence_dir: Path | None) -> dict[str, str]:
    """Move every image below ``evidence_dir`` to its top level under a unique URL-safe name.

    Returns:
        ``{original absolute path: served name}``.
    """
    if evidence_dir is None or not evidence_dir.is_dir():
        return {}
    mapping: dict[str, str] = {}
    used: set[str] = set()
    files = [p for p in sorted(evidence_dir.rglob("*")) if p.is_file()]
    for p in files:
        if p.suffix.lower() not in {".png", ".jpg", ".jpeg", ".webp"}:
            p.unlink()
            continue
        name = _SAFE_NAME.sub("_", p.name)
        if name in used:
            name = _SAFE_NAME.sub("_", p.relative_to(evidence_dir).as_posix().replace("/", "__"))
        used.add(name)
        target = evidence_dir / name
        if p != target:
            shutil.move(str(p), target)
        mapping[str(p)] = name
    for d in sorted((d for d in evidence_dir.rglob("*") if d.is_dir()), reverse=True):
        with contextlib.suppress(OSError):
            d.rmdir()
    return mapping


def _rewrite_paths(data: Any, mapping: dict[str, str]) -> None:
    """Replace server paths of evidence files inside the result by their served names (in place)."""

    def fix(v: Any) -> Any:
        if isinstance(v, str) and v in mapping:
            return mapping[v]
        if isinstance(v, dict):
            for k in v:
                v[k] = fix(v[k])
        elif isinstance(v, list):
            for i, x in enumerate(v):
                v[i] = fix(x)
        return v

    fix(data)


class JobTimeout(RuntimeError):
    """A job ran past the service's per-job time limit."""


class JobWorker:
    """Threads that run queued jobs from a store, one job at a time per thread."""

    def __init__(
        self,
        store: JobStore,
        pool: PredictorPool,
        evidence_root: Path,
        *,
        threads: int = 1,
        explain: bool = True,
        poll_interval_s: float = 1.0,
        job_timeout_s: float | None = None,
        retention_s: float | None = None,
    ) -> None:
        """Prepare (but do not start) the worker.

        Args:
            store: the job store.
            pool: loaded predictors.
            evidence_root: ``evidence/`` (one folder per job with images).
            threads: worker threads.
            explain: ask for Grad-CAM evidence.
            poll_interval_s: idle poll period.
            job_timeout_s: a job still running after this many seconds fails at its next stage boundary (decode,
                detect, infer, explain), with a message naming the limit.
            retention_s: finished jobs older than this are deleted with their evidence (None: kept).
        """
        self.store = store
        self.pool = pool
        self.evidence_root = evidence_root
        self.threads = threads
        self.explain = explain
        self.poll_interval_s = poll_interval_s
        self.job_timeout_s = job_timeout_s
        self.retention_s = retention_s
        self._last_purge = 0.0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the worker threads."""
        self._stop.clear()
        for i in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"fakescope-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    @property
    def running(self) -> bool:
        """Whether any worker thread is alive."""
        return any(t.is_alive() for t in self._threads)

    def notify(self) -> None:
        """Wake idle threads (a job was queued)."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the threads to stop after their current job and wait up to ``timeout`` seconds.

        A job still running when the process exits stays ``running`` in the store and is re-queued on the
        next start.
        """
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]

    def purge(self, now: float | None = None) -> list[str]:
        """Delete finished jobs past the retention period, and their evidence; return their ids."""
        if self.retention_s is None:
            return []
        now = time.time() if now is None else now
        ids = self.store.purge_finished(now - self.retention_s)
        for jid in ids:
            shutil.rmtree(self.evidence_root / jid, ignore_errors=True)
        if ids:
            _logger.info("deleted %d job(s) finished more than %.0f s ago", len(ids), self.retention_s)
        return ids

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.retention_s is not None and time.monotonic() - self._last_purge > 60:
                self._last_purge = time.monotonic()
                try:
                    self.purge()
                except Exception:
                    _logger.exception("could not purge old jobs")
            try:
                job = self.store.claim_next()
            except Exception:
                _logger.exception("could not read the job queue")
                job = None
            if job is None:
                self._wake.wait(self.poll_interval_s)
                self._wake.clear()
                continue
            self.process(job)

    def process(self, job: Job) -> None:
        """Run one claimed job to ``done`` or ``failed`` and delete its upload."""
        _logger.info("job %s (%s) started", job.id, job.filename)
        upload = Path(job.upload_path) if job.upload_path else None
        evidence = self.evidence_root / job.id if self.explain else None
        deadline = time.monotonic() + self.job_timeout_s if self.job_timeout_s else None

        def progress(fraction: float) -> None:
            if deadline is not None and time.monotonic() > deadline:
                raise JobTimeout(f"the job took longer than {self.job_timeout_s:g} s (FAKESCOPE_JOB_TIMEOUT_S)")
            self.store.set_progress(job.id, fraction)

        try:
            if upload is None or not upload.is_file():
                raise FileNotFoundError("the uploaded file is gone (deleted outside the service)")
            with self.pool.acquire() as predictor:
                result, names = run_analysis(
                    predictor,
                    upload,
                    filename=job.filename,
                    evidence_dir=evidence,
                    progress=progress,
                )
        except Exception as exc:
            _logger.exception("job %s failed", job.id)
            if evidence is not None:
                shutil.rmtree(evidence, ignore_errors=True)
            self.store.finish(job.id, "failed", error=f"{type(exc).__name__}: {exc}")
        else:
            if result.get("verdict") == "error":
                if evidence is not None:
                    shutil.rmtree(evidence, ignore_errors=True)
                self.store.finish(job.id, "failed", result=result, error=result.get("error") or "analysis failed")
            else:
                if evidence is not None and evidence.is_dir() and not any(evidence.iterdir()):
                    evidence.rmdir()  # no face, no heatmap: no empty folder left behind
                self.store.finish(job.id, "done", result=result, heatmaps=names)
            _logger.info("job %s finished: %s", job.id, result.get("verdict"))
        finally:
            if upload is not None:
                upload.unlink(missing_ok=True)
