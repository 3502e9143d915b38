"""Service settings: the only place in fakescope that reads environment variables (prefix ``FAKESCOPE_``).

Every field can be set as ``FAKESCOPE_<FIELD>`` (for example ``FAKESCOPE_MAX_UPLOAD_MB=50``) or passed to
``Settings(...)`` directly; explicit arguments win over the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of ``fakescope serve``.

    Attributes:
        model: registered detector name (``arch.tag``) or path of a ``.safetensors`` checkpoint; empty means the
            default pretrained detector of :mod:`fakescope.predict`.
        weights_dir: local folder with pretrained weight files (offline use, ``--from DIR``).
        home: download cache for weights (default ``~/.cache/fakescope``).
        data_dir: where the job database, queued uploads, evidence images and upload temp files live.
        runtime: ``auto`` (ONNX Runtime when the model's export can be cached, as ``fakescope predict``), ``torch``
            or ``onnx``.
        face_detector: face detector backend (``blazeface`` or ``haar``).
        face_weights_dir: local folder with the face detector's model file (offline use).
        num_frames: frames sampled per video.
        aggregation: video aggregation (``mean``, ``max``, ``confident_mean``).
        threads: CPU threads of each worker (video decoding, ONNX Runtime; torch intra-op for the process); None:
            an even share of the cores (``cores // workers``, the budget of ``predict --workers``).
        explain: render Grad-CAM heatmaps for each analysed file when the predictor supports it.
        max_upload_mb: largest accepted upload (larger: 413).
        max_video_seconds: longest accepted video (longer: 422).
        workers: workers, each with its own loaded predictor, shared by queued jobs and inline image analyses
            (None: one per core).
        worker_enabled: run the background worker at all (tests disable it to keep jobs queued).
        poll_interval_s: how often an idle worker looks for queued jobs (it is also woken on each new job).
        max_attempts: a job interrupted this many times (process died while running it) is marked failed.
        job_timeout_s: a job still running after this many seconds fails (checked between its stages).
        retention_hours: finished jobs and their evidence are deleted after this many hours (0: kept forever).
        max_queued_jobs: videos waiting in the queue at most; a further upload gets 503 with ``Retry-After``.
        allowed_hosts: values of the ``Host`` header the service answers (others get 400); ``["*"]`` answers any.
            Behind a name, list it: ``FAKESCOPE_ALLOWED_HOSTS='["fakescope.example.org"]'``.
    """

    model_config = SettingsConfigDict(env_prefix="FAKESCOPE_", extra="ignore")

    model: str = ""
    weights_dir: Path | None = None
    home: Path | None = None
    data_dir: Path = Path("fakescope-data")
    runtime: Literal["auto", "torch", "onnx"] = "auto"
    face_detector: str = "blazeface"
    face_weights_dir: Path | None = None
    num_frames: int = Field(32, ge=1, le=1024)
    aggregation: Literal["mean", "max", "confident_mean"] = "mean"
    threads: int | None = Field(None, ge=1, le=256)
    explain: bool = True
    max_upload_mb: float = Field(100.0, gt=0)
    max_video_seconds: float = Field(120.0, gt=0)
    workers: int | None = Field(None, ge=1, le=16)
    worker_enabled: bool = True
    poll_interval_s: float = Field(1.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    job_timeout_s: float = Field(600.0, gt=0)
    retention_hours: float = Field(168.0, ge=0)
    max_queued_jobs: int = Field(100, ge=1)
    allowed_hosts: list[str] = Field(default_factory=lambda: ["*"])

    @property
    def resolved_workers(self) -> int:
        """``workers``, or one per core when unset."""
        from fakescope.batch import default_workers

        return self.workers or default_workers()

    @property
    def resolved_threads(self) -> int | None:
        """``threads``, or each worker's share of the cores (None with a single worker: the libraries' default)."""
        from fakescope.batch import threads_per_worker

        return self.threads if self.threads is not None else threads_per_worker(self.resolved_workers)

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)
