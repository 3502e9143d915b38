"""The FastAPI application: ``create_app(settings)`` assembles routers, the web page and the lifespan.

The lifespan starts the :class:`~fakescope.serve.service.Service` (loads the predictor(s) once, recovers jobs
interrupted by a restart, starts the background worker) and stops it on shutdown. Nothing is loaded at import.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fakescope import __version__
from fakescope.serve.deps import load_settings
from fakescope.serve.routers import analyze, health, jobs, models
from fakescope.serve.service import PredictorFactory, Service
from fakescope.serve.settings import Settings
from fakescope.serve.store import JobStore

STATIC_DIR = Path(__file__).parent / "static"

_DESCRIPTION = """
Tell real faces from deepfakes. Upload an image to `POST /v1/analyze` and get the verdict inline; upload a
video and get a job id to poll at `GET /v1/jobs/{id}`. Scores are P(fake); labels are 0 = real, 1 = fake.
A web page is served at `/`.
"""

# Multipart framing (boundaries, part headers) on top of the file itself; the exact file size is checked later.
_MULTIPART_SLACK = 64 * 1024


class UploadLimitMiddleware:
    """Answer 413 for oversized bodies on upload paths before (or while) they are read.

    A ``Content-Length`` above the limit is refused without reading the body; a chunked body is counted as it
    streams and cut off once it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, paths: tuple[str, ...] = ("/v1/analyze",)) -> None:
        self.app = app
        self.max_bytes = max_bytes + _MULTIPART_SLACK
        self.paths = paths
        self.limit_mb = max_bytes / (1024 * 1024)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    from fastapi import HTTPException

                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, limited_receive, send)

    def _detail(self) -> str:
        return (
            f"the upload is larger than the limit of {self.limit_mb:g} MB (FAKESCOPE_MAX_UPLOAD_MB / --max-upload-mb)"
        )

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": self._detail()}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(
    settings: Settings | None = None,
    *,
    predictor_factory: PredictorFactory | None = None,
    store: JobStore | None = None,
) -> FastAPI:
    """Build the service app.

    Args:
        settings: service settings (default: read from ``FAKESCOPE_*`` environment variables).
        predictor_factory: builds a predictor from the settings (default: :func:`fakescope.serve.service.
            load_predictor`); tests pass a stand-in.
        store: job store (default: SQLite under ``settings.data_dir``).

    Returns:
        The FastAPI app; run it with uvicorn (``fakescope serve``) or ``fastapi.testclient.TestClient``.
    """
    settings = settings or load_settings()
    service = Service(settings, predictor_factory=predictor_factory, store=store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await run_in_threadpool(service.start)
        try:
            yield {}
        finally:
            await run_in_threadpool(service.stop)

    app = FastAPI(
        title="fakescope",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    app.add_middleware(UploadLimitMiddleware, max_bytes=settings.max_upload_bytes)
    if settings.allowed_hosts != ["*"]:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    for module in (analyze, jobs, models, health):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    return app
