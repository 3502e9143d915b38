"""Analyse many files on every core: one :class:`~fakescope.predict.Predictor` per worker process.

``predict --workers N`` runs here. Each worker is a spawned process that loads its own predictor once and gets
an even share of the cores (``cores // N`` threads for decoding, OpenCV, ONNX Runtime and torch), the budget
``prepare`` gives its workers, so that N workers do not each start one thread per core. Results come back in
input order. A file that cannot be analysed is an error row as always; a file that kills its worker process
(a crash inside a native library) becomes an error row too, and the files after it still run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from fakescope.errors import FakescopeError
from fakescope.predict import FileResult

__all__ = ["ModelLoadError", "analyze_files", "default_workers", "threads_per_worker"]

_logger = logging.getLogger(__name__)

_PREDICTOR: Any = None  # the worker process's predictor
_LOAD_ERROR: str | None = None


class ModelLoadError(FakescopeError):
    """A worker could not load the model or the face detector (the message says why)."""


def default_workers() -> int:
    """All the CPUs this process may use."""
    from fakescope.data.options import default_workers as cpus

    return cpus()


def threads_per_worker(workers: int) -> int | None:
    """Each worker's share of the cores: None (the libraries' defaults) for one worker, else ``cores // N``."""
    from fakescope.data.options import default_threads_per_worker

    return default_threads_per_worker(workers)


def _set_thread_budget(threads: int | None) -> None:
    """Process-wide thread limits of a worker, set before torch or OpenCV start their pools."""
    if not threads:
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import cv2

    cv2.setNumThreads(int(threads))


def _init_worker(kwargs: dict[str, Any], threads: int | None) -> None:
    global _PREDICTOR, _LOAD_ERROR
    _set_thread_budget(threads)
    from fakescope.predict import Predictor

    try:
        _PREDICTOR = Predictor(**kwargs, threads=threads)
    except (FakescopeError, ValueError, KeyError, OSError) as exc:
        _LOAD_ERROR = str(exc)
        return
    import sys

    if threads and "torch" in sys.modules:
        import torch

        torch.set_num_threads(int(threads))


def _run_one(path: str, reason: str | None, explain_dir: str | None) -> FileResult:
    if _LOAD_ERROR is not None:
        raise ModelLoadError(_LOAD_ERROR)
    if reason is not None:
        return _error_row(_PREDICTOR, path, reason)
    return _PREDICTOR.analyze(path, explain_dir=explain_dir)


def _error_row(predictor: Any, path: str | Path, reason: str) -> FileResult:
    """An ``error`` row for an input that could not be analysed (missing, or its worker crashed)."""
    return FileResult(
        path=str(path),
        error=reason,
        threshold=predictor.threshold if predictor is not None else 0.5,
        aggregation=predictor.aggregation if predictor is not None else "mean",
        model=predictor.model_name if predictor is not None else "",
        runtime=predictor.runtime if predictor is not None else "",
    )


def _pool(workers: int, kwargs: dict[str, Any], threads: int | None) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(kwargs, threads)
    )


def _isolated(item: tuple[Path, str | None], kwargs: dict, threads: int | None, explain: str | None) -> FileResult:
    """Analyse one file in a fresh process of its own (after a crash): a second crash makes it an error row."""
    pool = _pool(1, kwargs, threads)
    try:
        return pool.submit(_run_one, str(item[0]), item[1], explain).result()
    except BrokenProcessPool:
        _logger.warning("%s: the worker process crashed while analysing it", item[0])
        return _error_row(None, item[0], "the worker process crashed while analysing this file")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def analyze_files(
    inputs: Sequence[tuple[Path, str | None]],
    predictor_kwargs: dict[str, Any],
    *,
    workers: int | None = None,
    threads: int | None = None,
    explain_dir: str | Path | None = None,
) -> Iterator[FileResult]:
    """Analyse files in parallel worker processes; yield one result per input, in input order.

    Args:
        inputs: ``(path, error)`` pairs as :func:`fakescope.data.media.scan_media` gives them; an input with an
            error becomes an error row with that reason.
        predictor_kwargs: arguments of :class:`~fakescope.predict.Predictor` (``threads`` excepted), used by
            every worker to load its own predictor.
        workers: worker processes (default: every core); never more than there are inputs. One worker runs in
            this process.
        threads: each worker's thread budget (default: :func:`threads_per_worker`).
        explain_dir: passed to :meth:`~fakescope.predict.Predictor.analyze`.

    Raises:
        ModelLoadError: the workers could not load the model or face detector.
        ValueError: ``workers`` or ``threads`` below 1.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    n = 1 if len(inputs) <= 1 or workers == 1 else min(workers or default_workers(), len(inputs))
    if threads is None and n > 1:
        threads = threads_per_worker(n)
    explain = str(explain_dir) if explain_dir is not None else None
    if n == 1:
        yield from _in_process(inputs, predictor_kwargs, threads, explain)
        return
    pool = _pool(n, predictor_kwargs, threads)
    broken_at: int | None = None
    try:
        futures: list[Future] = [pool.submit(_run_one, str(p), reason, explain) for p, reason in inputs]
        for i, fut in enumerate(futures):
            try:
                yield fut.result()
            except BrokenProcessPool:
                broken_at = i
                break
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if broken_at is not None:  # which file crashed is unknown: the unfinished ones run one at a time, alone
        for item in inputs[broken_at:]:
            yield _isolated(item, predictor_kwargs, threads, explain)


def _in_process(
    inputs: Sequence[tuple[Path, str | None]], kwargs: dict[str, Any], threads: int | None, explain: str | None
) -> Iterator[FileResult]:
    from fakescope.predict import Predictor

    try:
        predictor = Predictor(**kwargs, threads=threads)
    except (FakescopeError, ValueError, KeyError, OSError) as exc:
        raise ModelLoadError(str(exc)) from exc
    with predictor:
        for path, reason in inputs:
            yield _error_row(predictor, path, reason) if reason is not None else predictor.analyze(path, explain)
