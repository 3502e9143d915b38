"""``fakescope serve``: run the HTTP service (FastAPI app from :mod:`fakescope.serve`) under uvicorn."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("serve")(serve)


# the command's own options; every other option is named after the Settings field it overrides
_SERVER_OPTIONS = frozenset({"host", "port", "log_level", "no_explain"})


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Detector name (arch.tag) or .safetensors/.onnx checkpoint (default: the pretrained one).",
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Job database, queued uploads and evidence images (default: ./fakescope-data)."
    ),
    weights_dir: Path | None = typer.Option(
        None, "--from", help="Offline folder with the detector's pretrained weight files."
    ),
    face_weights_dir: Path | None = typer.Option(
        None, "--face-weights", help="Offline folder with the face detector's model file."
    ),
    face_detector: str | None = typer.Option(None, "--face-detector", help="blazeface or haar."),
    runtime: str | None = typer.Option(
        None, "--runtime", help="auto (default: ONNX Runtime when the export can be cached), torch or onnx."
    ),
    max_upload_mb: float | None = typer.Option(None, "--max-upload-mb", help="Largest upload (default: 100)."),
    max_video_seconds: float | None = typer.Option(
        None, "--max-video-seconds", help="Longest accepted video (default: 120)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Workers, each with its own model copy (default: one per core)."
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads per worker (default: an even share of the cores)."
    ),
    no_explain: bool = typer.Option(False, "--no-explain", help="Skip Grad-CAM heatmaps (faster)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the detector over HTTP: POST /v1/analyze, GET /v1/jobs/{id}, /v1/models, /healthz, a web page at /.

    Options left out fall back to FAKESCOPE_* environment variables, then to the defaults.
    """
    import uvicorn
    from pydantic import ValidationError
    from rich.console import Console

    from fakescope.serve import Settings, create_app

    overrides = {k: v for k, v in ctx.params.items() if k not in _SERVER_OPTIONS}
    overrides["explain"] = False if no_explain else None
    console = Console(stderr=True)
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        for err in exc.errors():
            console.print(f"[bold red]error:[/] {'.'.join(map(str, err['loc']))}: {err['msg']}", highlight=False)
        raise typer.Exit(2) from None
    from fakescope.serve.service import DataDirBusy, DataDirLock

    probe = DataDirLock(settings.data_dir)
    try:
        probe.acquire()
    except DataDirBusy as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    probe.release()
    console.print(
        f"fakescope serve: http://{host}:{port}/ (API docs at /docs), data in {settings.data_dir.resolve()}",
        highlight=False,
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
