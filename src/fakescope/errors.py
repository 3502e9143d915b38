"""Typed errors. Every error a user can cause names the file (when there is one) and the reason."""

from __future__ import annotations

from pathlib import Path


class FakescopeError(Exception):
    """Base class of every error fakescope raises on purpose (the CLI prints these without a traceback)."""


class MediaError(FakescopeError):
    """A file could not be read as an image or a video.

    Attributes:
        path: the offending file.
        reason: a short, human-readable reason (``"zero bytes"``, ``"not a video"``, ...).
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ManifestError(FakescopeError):
    """A manifest is malformed or violates an invariant (for example a group crossing splits)."""


class CheckpointError(FakescopeError):
    """A checkpoint is missing, malformed, or unsafe to load (pickle files are refused)."""


class DownloadError(FakescopeError):
    """A file could not be fetched, or its SHA-256 did not match."""
