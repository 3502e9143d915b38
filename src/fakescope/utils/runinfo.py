"""Provenance of a run: the resolved config, the package version and the git commit, written beside outputs."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import platform
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from fakescope.utils.io import atomic_write_text


def git_commit(cwd: str | Path | None = None) -> str | None:
    """Return the current git commit of ``cwd`` (or of the package source), or None outside a checkout."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_metadata() -> dict[str, Any]:
    """Version, git commit, Python and torch versions, and a UTC timestamp."""
    from fakescope import __version__

    meta: dict[str, Any] = {
        "fakescope_version": __version__,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        meta["torch"] = importlib.metadata.version("torch")
    return meta


def write_run_info(run_dir: str | Path, config: Any) -> None:
    """Write ``config.yaml`` (the resolved config) and ``run.json`` (provenance) into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = asdict(config) if is_dataclass(config) and not isinstance(config, type) else config
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(_plain(cfg), sort_keys=False))
    atomic_write_text(run_dir / "run.json", json.dumps(run_metadata(), indent=2))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
