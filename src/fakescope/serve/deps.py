"""FastAPI dependencies: settings, the running service and its predictor.

Routes get everything through these, so tests can swap any of them with ``app.dependency_overrides``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import Depends, HTTPException, Request

from fakescope.serve.service import Service
from fakescope.serve.settings import Settings


@lru_cache
def load_settings() -> Settings:
    """Settings from the environment (``FAKESCOPE_*``), read once per process."""
    return Settings()


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


def get_service(request: Request) -> Service:
    """The app's running :class:`~fakescope.serve.service.Service`."""
    return request.app.state.service


def get_predictor(service: Service = Depends(get_service)) -> Any:
    """The primary loaded predictor (for model information; analyses borrow one from the pool)."""
    if service.pool is None:
        raise HTTPException(503, "the model is still loading")
    return service.pool.primary
