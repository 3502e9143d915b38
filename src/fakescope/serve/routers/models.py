"""``GET /v1/models``: the detector this server runs and the registered alternatives."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from fakescope.serve.deps import get_predictor
from fakescope.serve.schemas import ModelsOut

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", response_model=ModelsOut, summary="Loaded and available detectors")
def models(predictor: Any = Depends(get_predictor)) -> ModelsOut:
    """The loaded predictor's settings and provenance, plus every registered detector name."""
    from fakescope.models import list_detectors

    info = predictor.info() if callable(getattr(predictor, "info", None)) else {"model": str(predictor)}
    return ModelsOut(loaded=info, pretrained=list_detectors(pretrained=True), architectures=list_detectors())
