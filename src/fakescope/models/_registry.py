"""One registry for every detector: ``register_detector`` / ``create_detector`` / ``list_detectors``.

Names follow timm's ``arch.tag`` form: the part before the dot is the architecture (a registered builder),
the part after names pretrained weights declared with :func:`register_pretrained`. Names starting with ``hf:``
are Hugging Face image classifiers (optional ``transformers`` extra), e.g. ``hf:Wvolf/ViT_Deepfake_Detection``.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fakescope import DEFAULT_DETECTOR
from fakescope.models._cfg import DetectorCfg
from fakescope.models.base import Detector

_logger = logging.getLogger(__name__)

Builder = Callable[..., Detector]

_BUILDERS: dict[str, Builder] = {}
_DEFAULT_CFGS: dict[str, DetectorCfg] = {}
_PRETRAINED: dict[str, DetectorCfg] = {}
_LOADERS: dict[str, Callable[[Detector, Path], None]] = {}

HF_PREFIX = "hf:"

#: The named pretrained detector used when a user names none (``fakescope predict`` without ``--model``).
DEFAULT_PRETRAINED = DEFAULT_DETECTOR


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
    """``'meso4.mesonet_df'`` -> ``('meso4', 'mesonet_df')``; ``hf:`` names are never split."""
    if name.startswith(HF_PREFIX):
        return name, ""
    arch, _, tag = name.partition(".")
    return arch, tag


def list_detectors(pattern: str = "", pretrained: bool = False) -> list[str]:
    """Registered architectures (or, with ``pretrained``, named pretrained detectors) matching a glob."""
    names = sorted(_PRETRAINED if pretrained else _BUILDERS)
    return [n for n in names if not pattern or fnmatch.fnmatch(n, pattern)]


def list_pretrained_tags(arch: str) -> list[str]:
    """Tags of the named pretrained detectors of one architecture (``['mesonet_df', 'mesonet_f2f']``)."""
    return sorted(cfg.tag for cfg in _PRETRAINED.values() if cfg.arch == arch)


def _unknown(name: str) -> str:
    from fakescope.models.ensemble import get_ensemble

    if get_ensemble(name) is not None:
        return f"{name!r} is a named ensemble or panel, not a single detector: load it with load_model or --model"
    choices = list_detectors() + list_detectors(pretrained=True)
    close = difflib.get_close_matches(name, choices, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return (
        f"unknown detector {name!r}{hint}; choose one of: {', '.join(list_detectors())}; "
        f"pretrained: {', '.join(list_detectors(pretrained=True)) or 'none'}; or hf:<Hugging Face model id>"
    )


def get_detector_cfg(name: str) -> DetectorCfg:
    """The config of ``arch`` or ``arch.tag`` (no model is built, nothing is downloaded).

    Raises:
        KeyError: unknown name (the message lists the registered names).
    """
    if name in _PRETRAINED:
        return _PRETRAINED[name]
    arch, tag = split_name(name)
    if arch not in _DEFAULT_CFGS or tag:
        raise KeyError(_unknown(name))
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
        name: ``arch`` (random init, or ImageNet backbone with ``pretrained=True``), ``arch.tag`` (named
            pretrained detector, fetched with a SHA-256 check or read from ``weights_dir`` offline), or
            ``hf:<model id or folder>`` (Hugging Face image classifier; needs ``transformers``).
        pretrained: for a bare ``arch``, ask for the backbone's ImageNet weights: families that declare their file
            (``mobilenet_v2``, ``efficientnet_lite0``) resolve it offline first (see :mod:`fakescope.models._hub`),
            the timm families go through timm's hub (needs the internet or its cache).
        checkpoint_path: a ``.safetensors`` state dict (``--weights FILE``; a fakescope checkpoint works too)
            loaded afterwards. Pickle files are refused.
        weights_dir: offline folder holding the pretrained file, named or ImageNet (``--from DIR``).
        cache_dir: download cache (default ``~/.cache/fakescope``).
        **kwargs: builder arguments (``drop_rate``, ``hidden``, timm's ``drop_path_rate``...); ``None`` values are
            dropped so CLI defaults never override a model's own. ``freeze_backbone=True`` freezes the backbone
            of any model (only the head trains).

    Raises:
        ValueError: unknown name (the registered names are listed), or ImageNet weights asked for a family without.
        DownloadError: pretrained weights unavailable offline and not downloadable, or a SHA-256 mismatch.
        CheckpointError: the weights file does not fit, or is a pickle file.
    """
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if "pretrained_file" in kwargs:  # resolved here with its SHA-256 check, never taken from a caller or checkpoint
        raise ValueError("pretrained_file is not a detector option; ask for pretrained=True (and weights_dir)")
    freeze = bool(kwargs.pop("freeze_backbone", False))
    arch, tag = split_name(name)
    if name.startswith(HF_PREFIX):
        from fakescope.models.families.hf import create_hf_detector

        model = create_hf_detector(name[len(HF_PREFIX) :], cache_dir=cache_dir, **kwargs)
    else:
        if arch not in _BUILDERS:
            raise ValueError(_unknown(name))
        if tag and name not in _PRETRAINED:
            raise ValueError(_unknown(name))
        cfg = _PRETRAINED[name] if tag else _DEFAULT_CFGS[arch]
        if pretrained and not tag and not cfg.extra.get("imagenet"):
            tags = ", ".join(f"{arch}.{t}" for t in list_pretrained_tags(arch)) or "none"
            raise ValueError(f"{arch} has no ImageNet weights; named pretrained detectors for it: {tags}")
        imagenet_file = cfg.extra.get("imagenet_file") if pretrained and not tag else None
        if imagenet_file is not None:
            from fakescope.models._hub import resolve_pretrained_file

            kwargs["pretrained_file"] = resolve_pretrained_file(imagenet_file, weights_dir)
        model = _BUILDERS[arch](cfg=cfg, pretrained=pretrained and not tag, **kwargs)
        if tag:
            _load_named_weights(model, name, cfg, weights_dir, cache_dir)
    if checkpoint_path is not None:
        from fakescope.models.checkpoint import load_weights_into

        load_weights_into(model, checkpoint_path)
    if freeze:
        model.freeze_backbone(True)
    return model


def _load_named_weights(
    model: Detector, name: str, cfg: DetectorCfg, weights_dir: str | Path | None, cache_dir: str | Path | None
) -> None:
    """Load a named detector's weights: shipped in the package, a shipped copy of a public file, or fetched
    (offline folder, cache, then its URL), each checked against its SHA-256."""
    from fakescope.models._hub import bundled_file

    if cfg.extra.get("bundled"):
        _LOADERS[name](model, bundled_file(cfg.filename, cfg.sha256))
    elif cfg.extra.get("bundled_copy"):  # a converted copy of the public file ships in the package
        from fakescope.models.checkpoint import load_weights_into

        load_weights_into(model, bundled_file(*cfg.extra["bundled_copy"]))
    else:
        from fakescope.utils.download import fetch_file

        path = fetch_file(
            cfg.url, cfg.sha256, filename=cfg.filename or None, cache_dir=cache_dir, local_dir=weights_dir
        )
        _LOADERS[name](model, path)


def count_parameters(name: str, **kwargs: Any) -> int:
    """Number of parameters of an architecture, counted on the meta device (no memory, no download)."""
    import torch

    arch, _ = split_name(name)
    if arch not in _BUILDERS:
        raise ValueError(_unknown(name))
    with torch.device("meta"):
        model = _BUILDERS[arch](cfg=_DEFAULT_CFGS[arch], pretrained=False, **kwargs)
    return sum(p.numel() for p in model.parameters())


def describe_detector(name: str) -> dict[str, Any]:
    """Everything ``fakescope models info`` shows: the cfg, parameter count, feature width and description.

    Raises:
        KeyError: unknown name.
    """
    import torch

    cfg = get_detector_cfg(name)
    builder = _BUILDERS[cfg.arch]
    with torch.device("meta"):
        model = builder(cfg=_DEFAULT_CFGS[cfg.arch], pretrained=False)
    doc = (builder.__doc__ or "").strip().splitlines()
    return {
        "name": cfg.name,
        "description": doc[0] if doc else "",
        "params": sum(p.numel() for p in model.parameters()),
        "num_features": model.num_features,
        "imagenet_weights": bool(cfg.extra.get("imagenet")),
        "pretrained": [f"{cfg.arch}.{t}" for t in list_pretrained_tags(cfg.arch)],
        **cfg.to_dict(),
    }
