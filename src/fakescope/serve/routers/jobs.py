"""``GET /v1/jobs/{id}`` (status, progress, result) and ``GET /v1/jobs/{id}/evidence/{name}`` (heatmap PNGs)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from fakescope.serve.deps import get_service
from fakescope.serve.schemas import ErrorOut, JobOut
from fakescope.serve.service import Service

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get(
    "/{job_id}",
    response_model=JobOut,
    responses={404: {"model": ErrorOut, "description": "No such job."}},
    summary="Status and result of a job",
)
def get_job(job_id: str, service: Service = Depends(get_service)) -> JobOut:
    """Poll a job: ``queued`` -> ``running`` -> ``done`` (with ``result``) or ``failed`` (with ``error``)."""
    job = service.store.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job with id {job_id!r} (ids come from POST /v1/analyze)")
    return JobOut.from_job(job)


@router.get(
    "/{job_id}/evidence/{name}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/png": {}}, "description": "A Grad-CAM overlay or timeline PNG."},
        404: {"model": ErrorOut, "description": "No such job or image."},
    },
    summary="An evidence image of a finished job",
)
def get_evidence(job_id: str, name: str, service: Service = Depends(get_service)) -> FileResponse:
    """Serve one Grad-CAM overlay (face crop | heatmap overlay) or the timeline plot listed in the job."""
    path = service.evidence_path(job_id, name)
    if path is None:
        raise HTTPException(404, f"job {job_id!r} has no evidence image {name!r}")
    return FileResponse(path, media_type="image/png" if path.suffix == ".png" else None)
