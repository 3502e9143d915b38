"""``GET /healthz``: liveness, the loaded model and the queue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from fakescope import __version__
from fakescope.serve.deps import get_predictor, get_service, get_settings
from fakescope.serve.schemas import HealthOut, LimitsOut
from fakescope.serve.service import Service
from fakescope.serve.settings import Settings
from fakescope.serve.sniff import SUPPORTED

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness, model and queue")
def healthz(
    settings: Settings = Depends(get_settings),
    service: Service = Depends(get_service),
    predictor: Any = Depends(get_predictor),
) -> HealthOut:
    """Answer ``ok`` once the model is loaded, with job counts per status and the upload limits."""
    worker_alive = service.worker is not None and service.worker.running
    return HealthOut(
        status="ok",
        version=__version__,
        model=str(getattr(predictor, "model_name", type(predictor).__name__)),
        worker="running" if worker_alive else "disabled",
        jobs=service.store.counts(),
        limits=LimitsOut(
            max_upload_mb=settings.max_upload_mb, max_video_seconds=settings.max_video_seconds, accepted=SUPPORTED
        ),
    )
