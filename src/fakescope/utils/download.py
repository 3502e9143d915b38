"""Verified downloads into a cache, with an offline route.

Model files are never fetched at import time. ``fetch_file`` looks, in order, in an explicit local folder
(``--from DIR``), then in the cache, and only then downloads; every file is checked against its SHA-256.
The cache folder is ``$FAKESCOPE_HOME`` (read by the CLI, passed in here) or ``~/.cache/fakescope``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.request
from pathlib import Path

from fakescope.errors import DownloadError
from fakescope.utils.io import atomic_path

_logger = logging.getLogger(__name__)

DEFAULT_CACHE = Path("~/.cache/fakescope").expanduser()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fetch_file(
    url: str,
    sha256: str,
    *,
    filename: str | None = None,
    cache_dir: str | Path | None = None,
    local_dir: str | Path | None = None,
    timeout: float = 60.0,
) -> Path:
    """Return a local path to the file behind ``url`` whose SHA-256 is ``sha256``.

    Args:
        url: public download address.
        sha256: expected hex digest; a file that does not match is never used.
        filename: name of the file in the cache and in ``local_dir`` (default: last part of the URL).
        cache_dir: cache folder (default ``~/.cache/fakescope``).
        local_dir: a folder that may already hold the file (offline route); it is verified, then used in place.
        timeout: network timeout in seconds.

    Raises:
        DownloadError: the file is not available offline and cannot be downloaded, or its digest is wrong.
    """
    name = filename or url.rstrip("/").rsplit("/", 1)[-1]
    sha256 = sha256.lower()
    if local_dir is not None:
        candidate = Path(local_dir) / name
        if not candidate.is_file():
            raise DownloadError(f"{candidate}: not found (offline folder given with --from)")
        digest = sha256_file(candidate)
        if digest != sha256:
            raise DownloadError(f"{candidate}: SHA-256 mismatch (expected {sha256}, got {digest})")
        return candidate
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    target = cache / name
    if target.is_file():
        if sha256_file(target) == sha256:
            return target
        _logger.warning("%s: SHA-256 mismatch in cache, downloading again", target)
    _logger.info("downloading %s -> %s", url, target)
    try:
        with atomic_path(target) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out)
            digest = sha256_file(tmp)
            if digest != sha256:
                raise DownloadError(f"{url}: SHA-256 mismatch (expected {sha256}, got {digest}); file discarded")
    except DownloadError:
        raise
    except OSError as exc:
        raise DownloadError(
            f"{url}: download failed ({exc}). Offline? Put {name} in a folder and pass it with --from DIR "
            f"(or FAKESCOPE_WEIGHTS_DIR)."
        ) from exc
    return target
