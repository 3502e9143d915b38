"""Pydantic models of the HTTP API (request and response bodies, as shown in the OpenAPI docs)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Literal

from pydantic import BaseModel, Field

from fakescope.serve.store import Job


class ErrorOut(BaseModel):
    """A 4xx/5xx answer."""

    detail: str = Field(description="What went wrong and what to do about it.")


class JobOut(BaseModel):
    """An analysis job: an image (answered inline, already done) or a video (queued, poll it)."""

    id: str
    kind: Literal["image", "video"]
    filename: str = Field(description="The uploaded file's name as the client sent it.")
    status: Literal["queued", "running", "done", "failed"]
    progress: float = Field(ge=0, le=1, description="0 when queued, 1 when finished.")
    created_at: float = Field(description="Unix time the upload was accepted.")
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = Field(None, description="Why the job failed.")
    result: dict[str, Any] | None = Field(
        None,
        description="fakescope.predict.FileResult.to_dict(): verdict, fake_prob, threshold, aggregation, model, "
        "n_frames, n_faces, tracks, frames (per-frame P(fake) for a timeline), evidence, timings.",
    )
    heatmap_urls: list[str] = Field(default_factory=list, description="Grad-CAM overlays (crop | overlay PNGs).")
    timeline_url: str | None = Field(None, description="P(fake)-over-time plot of a video, when rendered.")
    url: str = Field(description="Where to poll this job.")

    @classmethod
    def from_job(cls, job: Job) -> JobOut:
        """Build the API view of a stored job."""
        base = f"/v1/jobs/{job.id}"
        evidence = (job.result or {}).get("evidence") or {}
        timeline = evidence.get("timeline") if isinstance(evidence, dict) else None
        heat = [n for n in job.heatmaps if n != timeline]
        stored = {f.name: getattr(job, f.name) for f in fields(job) if f.name in cls.model_fields}
        return cls(
            **stored,
            heatmap_urls=[f"{base}/evidence/{n}" for n in heat],
            timeline_url=f"{base}/evidence/{timeline}" if timeline in job.heatmaps else None,
            url=base,
        )


class ModelsOut(BaseModel):
    """The detector this server runs and the ones it could run."""

    loaded: dict[str, Any] = Field(description="Predictor.info(): model, runtime, threshold, aggregation, ...")
    pretrained: list[str] = Field(description="Named pretrained detectors (for FAKESCOPE_MODEL / --model).")
    architectures: list[str] = Field(description="Registered architectures (need a trained checkpoint).")


class LimitsOut(BaseModel):
    """Upload limits."""

    max_upload_mb: float
    max_video_seconds: float
    accepted: str


class HealthOut(BaseModel):
    """Liveness and queue state."""

    status: Literal["ok"]
    version: str
    model: str
    worker: Literal["running", "disabled"]
    jobs: dict[str, int] = Field(description="Number of jobs per status.")
    limits: LimitsOut
