"""HTTP service: ``fakescope serve`` (FastAPI + uvicorn), a job queue in SQLite and a web page at ``/``.

Importing this package imports FastAPI (the ``serve`` extra) but loads no model; the app's lifespan does.
"""

from fakescope.serve.app import create_app as create_app
from fakescope.serve.settings import Settings as Settings

__all__ = ["Settings", "create_app"]
