"""``POST /v1/analyze``: upload an image (answered inline) or a video (queued as a job).

The upload is copied into ``data_dir/tmp`` with a size check, identified by its first bytes (the file name and
the client's content type are ignored), and a video's duration is probed before it is accepted. Whatever the
outcome, nothing is left in ``tmp``: an accepted video moves to ``uploads/`` until its job finishes.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import IO

from fastapi import APIRouter, Depends, File, HTTPException, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from fakescope.serve.deps import get_service, get_settings
from fakescope.serve.schemas import ErrorOut, JobOut
from fakescope.serve.service import Service
from fakescope.serve.settings import Settings
from fakescope.serve.sniff import SNIFF_BYTES, SUPPORTED, sniff
from fakescope.serve.store import Job, new_job_id

router = APIRouter(prefix="/v1", tags=["analyze"])

_CHUNK = 1 << 20


class UploadTooLarge(Exception):
    """The upload exceeded the size limit while being copied."""


def _copy_limited(src: IO[bytes], dst: Path, limit: int) -> tuple[int, bytes]:
    """Copy ``src`` to ``dst``; return ``(size, first bytes)``; raise :class:`UploadTooLarge` past ``limit``."""
    size, head = 0, b""
    with open(dst, "wb") as out:
        while chunk := src.read(_CHUNK):
            if len(head) < SNIFF_BYTES:
                head += chunk[: SNIFF_BYTES - len(head)]
            size += len(chunk)
            if size > limit:
                raise UploadTooLarge
            out.write(chunk)
    return size, head


def _check_video(path: Path, name: str, settings: Settings) -> None:
    """Raise 422 when the video cannot be read, has no known duration, or is longer than allowed."""
    from fakescope.data.media import probe_video
    from fakescope.errors import MediaError

    try:
        info = probe_video(path)
    except MediaError as exc:
        raise HTTPException(422, f"{name}: cannot read this video: {exc.reason}") from exc
    if not info.duration or info.duration <= 0:
        raise HTTPException(422, f"{name}: the video's duration could not be determined")
    if info.duration > settings.max_video_seconds:
        raise HTTPException(
            422,
            f"{name}: the video is {info.duration:.1f} s long; the limit is {settings.max_video_seconds:g} s "
            "(FAKESCOPE_MAX_VIDEO_SECONDS / --max-video-seconds). Trim it and upload again.",
        )


def _display_name(filename: str | None, suffix: str) -> str:
    name = Path(filename or "").name.strip()
    return name[:200] if name else f"upload{suffix}"


@router.post(
    "/analyze",
    response_model=JobOut,
    status_code=200,
    responses={
        200: {"description": "Image analysed; the finished job with its result."},
        202: {"model": JobOut, "description": "Video accepted and queued; poll the Location (GET /v1/jobs/{id})."},
        413: {"model": ErrorOut, "description": "Upload larger than the limit."},
        415: {"model": ErrorOut, "description": "Not a supported image or video (judged by content)."},
        422: {"model": ErrorOut, "description": "Empty, unreadable, too long, or the analysis failed."},
    },
    summary="Analyse an image (inline) or a video (as a job)",
)
async def analyze(
    response: Response,
    file: UploadFile = File(..., description="An image (JPEG/PNG/WebP/BMP/GIF) or video (MP4/MOV/MKV/WebM/AVI)."),
    settings: Settings = Depends(get_settings),
    service: Service = Depends(get_service),
) -> JobOut:
    """Upload one file as multipart form field ``file``.

    An image is analysed right away: 200 with the finished job (``result.verdict``, ``result.fake_prob``, ...).
    A video is queued: 202 with the job and a ``Location`` header; poll ``GET /v1/jobs/{id}`` until ``status``
    is ``done`` or ``failed``.
    """
    tmp = service.tmp_dir / f"{uuid.uuid4().hex}.part"
    shown = _display_name(file.filename, "")
    try:
        try:
            size, head = await run_in_threadpool(_copy_limited, file.file, tmp, settings.max_upload_bytes)
        except UploadTooLarge:
            raise HTTPException(
                413,
                f"{shown}: the upload is larger than the limit of {settings.max_upload_mb:g} MB "
                "(FAKESCOPE_MAX_UPLOAD_MB / --max-upload-mb)",
            ) from None
        if size == 0:
            raise HTTPException(422, f"{shown}: the uploaded file is empty")
        sniffed = sniff(head)
        if sniffed is None:
            raise HTTPException(
                415,
                f"{shown}: not a supported image or video (judged by its content, not its name); accepted: {SUPPORTED}",
            )
        path = tmp.with_suffix(sniffed.suffix)
        shutil.move(str(tmp), path)
        tmp = path
        job = Job(id=new_job_id(), kind=sniffed.kind, filename=_display_name(file.filename, sniffed.suffix))
        if sniffed.kind == "video":
            queued = (await run_in_threadpool(service.store.counts)).get("queued", 0)
            if queued >= settings.max_queued_jobs:
                raise HTTPException(
                    503,
                    f"{job.filename}: {queued} videos are already waiting (limit {settings.max_queued_jobs}, "
                    "FAKESCOPE_MAX_QUEUED_JOBS); try again later",
                    headers={"Retry-After": "30"},
                )
            await run_in_threadpool(_check_video, tmp, job.filename, settings)
            job = await run_in_threadpool(service.enqueue, job, tmp)
            response.status_code = 202
            response.headers["Location"] = f"/v1/jobs/{job.id}"
            return JobOut.from_job(job)
        job = await run_in_threadpool(service.analyze_now, job, tmp)
        if job.status == "failed":
            raise HTTPException(422, f"{job.filename}: cannot analyse this image: {job.error} (job {job.id})")
        return JobOut.from_job(job)
    finally:
        tmp.unlink(missing_ok=True)
        await file.close()
