"""The options of ``prepare`` as plain dataclasses, declared once: the library, the CLI and the run record use them.

Importing this module is cheap (standard library only), so the CLI can take its defaults from here.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass

EXECUTORS = ("process", "ray")


@dataclass(frozen=True)
class PrepareOptions:
    """Options that shape the crops (their fingerprint decides whether a finished video can be reused).

    Attributes:
        size: side of the square crops in pixels.
        num_frames: evenly spaced frames per video (ignored when ``every`` or ``per_second`` is set).
        every: keep every k-th frame instead.
        per_second: keep k frames per second instead.
        detector: face-detector backend (``fakescope.data.faces.list_face_detectors()``).
        weights_dir: folder holding the detector's model files (offline route); None = the download cache.
        margin: the face box grows by this fraction before cropping.
        max_faces: keep at most this many faces per frame (None = all).
        align: level the eyes (rotation about the face centre) where the detector gives eye keypoints.
        pictures: a picture that is a face crop becomes the crop ``whole`` (resized) or ``cut`` (its face cut
            with ``margin`` like any face; black beyond the picture).
        cropped: True = inputs are face crops, False = always detect, None = auto (see the module docstring).
    """

    size: int = 256
    num_frames: int | None = 32
    every: int | None = None
    per_second: float | None = None
    detector: str = "blazeface"
    weights_dir: str | None = None
    margin: float = 0.3
    max_faces: int | None = None
    align: bool = True
    pictures: str = "whole"
    cropped: bool | None = None

    def fingerprint(self) -> str:
        """Short hash of every option except ``weights_dir`` (where the model file lives does not change crops)."""
        d = asdict(self)
        d.pop("weights_dir")
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RunOptions:
    """How a prepare run executes (none of these change the crops).

    Attributes:
        workers: parallel workers (processes or Ray actors).
        executor: ``"process"`` (local process pool) or ``"ray"``.
        ray_address: Ray cluster address (None = start a local instance with ``workers`` CPUs).
        threads_per_worker: CPU threads each worker may use for decoding and OpenCV; None = all cores with one
            worker, else an even share (:func:`default_threads_per_worker`), so workers do not oversubscribe.
        seed: split seed.
        split_ratios: train, val, test fractions of videos.
    """

    workers: int = 1
    executor: str = "process"
    ray_address: str | None = None
    threads_per_worker: int | None = None
    seed: int = 0
    split_ratios: tuple[float, ...] = (0.7, 0.15, 0.15)

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {self.executor!r}; choose one of {list(EXECUTORS)}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise ValueError(f"threads_per_worker must be >= 1, got {self.threads_per_worker}")
        object.__setattr__(self, "split_ratios", tuple(float(x) for x in self.split_ratios))

    @property
    def threads(self) -> int:
        """Threads per worker, resolved."""
        if self.threads_per_worker is not None:
            return self.threads_per_worker
        return default_threads_per_worker(self.workers, self.executor)


def default_workers() -> int:
    """A sensible default worker count: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads_per_worker(workers: int, executor: str = "process") -> int | None:
    """Threads per worker when the user gives none.

    One worker: None (the libraries' defaults, one thread per core). Several: an even share of this machine's CPUs
    for the process pool, and 1 for Ray (each actor reserves one CPU of whichever node runs it), so that the
    workers do not each start one decoding thread per core.
    """
    if workers <= 1:
        return None
    if executor == "ray":
        return 1
    return max(1, default_workers() // workers)
