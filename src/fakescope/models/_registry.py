"""One registry for every detector: ``register_detector`` / ``create_detector`` / ``list_detectors``.

Names follow timm's ``arch.tag`` form: the part before the dot is the architecture (a registered builder),
the part after names pretrained weights declared with :func:`register_pretrained`.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fakescope.models._cfg import DetectorCfg
from fakescope.models.base import Detector

_logger = logging.getLogger(__name__)

Builder = Callable[..., Detector]

_BUILDERS: dict[str, Builder] = {}
_DEFAULT_CFGS: dict[str, DetectorCfg] = {}
_PRETRAINED: dict[str, DetectorCfg] = {}
_LOADERS: dict[str, Callable[[Detector, Path], None]] = {}


def register_detector(fn: Builder) -> Builder:
    """Register a builder under its function name. The builder takes ``cfg: DetectorCfg`` plus keyword args.

    The module defining the builder must also call :func:`register_default_cfg` for it.
    """
    name = fn.__name__
    if name in _BUILDERS:
        _logger.warning("detector %r registered twice; the later definition wins", name)
    _BUILDERS[name] = fn
    return fn


def register_default_cfg(cfg: DetectorCfg) -> None:
    """Declare the default (random-init) config of an architecture."""
    _DEFAULT_CFGS[cfg.arch] = cfg


def register_pretrained(cfg: DetectorCfg, loader: Callable[[Detector, Path], None]) -> None:
    """Declare named pretrained weights ``cfg.arch.cfg.tag`` and how to load the fetched file into a model."""
    _PRETRAINED[cfg.name] = cfg
    _LOADERS[cfg.name] = loader


def split_name(name: str) -> tuple[str, str]:
    """``'meso4.mesonet_df'`` -> ``('meso4', 'mesonet_df')``."""
    arch, _, tag = name.partition(".")
    return arch, tag


def list_detectors(pattern: str = "", pretrained: bool = False) -> list[str]:
    """Registered architectures (or, with ``pretrained``, named pretrained detectors) matching a glob."""
    names = sorted(_PRETRAINED if pretrained else _BUILDERS)
    return [n for n in names if not pattern or fnmatch.fnmatch(n, pattern)]


def get_detector_cfg(name: str) -> DetectorCfg:
    """The config of ``arch`` or ``arch.tag``."""
    if name in _PRETRAINED:
        return _PRETRAINED[name]
    arch, _ = split_name(name)
    if arch not in _DEFAULT_CFGS:
        raise KeyError(f"unknown detector {name!r}; registered: {', '.join(list_detectors())}")
    return _DEFAULT_CFGS[arch]


def create_detector(
    name: str,
    pretrained: bool = False,
    checkpoint_path: str | Path | None = None,
    weights_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    **kwargs: Any,
) -> Detector:
    """Build a detector by name.

    Args:
        name: ``arch`` (random init, or ImageNet backbone with ``pretrained=True``) or ``arch.tag`` (named
            pretrained detector, fetched with a SHA-256 check or read from ``weights_dir`` offline).
        pretrained: for a bare ``arch``, ask for the backbone's ImageNet weights (needs the internet).
        checkpoint_path: a fakescope ``.safetensors`` checkpoint whose weights are loaded afterwards.
        weights_dir: offline folder holding the pretrained file (``--from DIR``).
        cache_dir: download cache (default ``~/.cache/fakescope``).
        **kwargs: builder arguments; ``None`` values are dropped so CLI defaults never override a model's own.

    Raises:
        ValueError: unknown name, with the registered names listed.
    """
    from fakescope.utils.download import fetch_file

    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    arch, tag = split_name(name)
    if arch not in _BUILDERS:
        raise ValueError(f"unknown detector {name!r}; choose one of: {', '.join(list_detectors())}")
    if tag and name not in _PRETRAINED:
        raise ValueError(
            f"unknown weights {name!r}; pretrained detectors: {', '.join(list_detectors(pretrained=True)) or 'none'}"
        )
    cfg = _PRETRAINED[name] if tag else _DEFAULT_CFGS[arch]
    model = _BUILDERS[arch](cfg=cfg, pretrained=pretrained and not tag, **kwargs)
    if tag:
        path = fetch_file(cfg.url, cfg.sha256, filename=cfg.filename or None, cache_dir=cache_dir, local_dir=weights_dir)
        _LOADERS[name](model, path)
    if checkpoint_path is not None:
        from fakescope.models.checkpoint import load_weights_into

        load_weights_into(model, checkpoint_path)
    return model
