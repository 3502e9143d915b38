"""One loader for every kind of detector source: :func:`load_model`.

Used by every command that takes a detector (``predict``, ``serve``, ``evaluate``, ``attack``, ``attack-video``,
``adv-detect``, ``export``); ONNX files are added on top of it by :func:`fakescope.predict.load_model`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn


def is_ensemble_path(path: Path) -> bool:
    """An ``ensemble.json`` file, or a run folder holding one."""
    return (path.suffix == ".json" and path.is_file()) or (path.is_dir() and (path / "ensemble.json").is_file())


def load_model(
    source: Any,
    *,
    weights_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a detector in eval mode and its metadata (``threshold`` included when known).

    Args:
        source: a built module; a fakescope ``.safetensors`` checkpoint; an ``ensemble.json`` (or its run
            folder); a registered ensemble name (``mesonet_ensemble``); a named pretrained detector
            (``mobilenet_v2.dfdc``); or a bare architecture (random weights: benchmarks only).
        weights_dir: offline folder of pretrained files (``--from DIR``).
        cache_dir: download cache.
        map_location: device.

    Raises:
        ValueError: unknown name (the registered ones are listed).
        CheckpointError: unreadable or unsafe checkpoint / descriptor.
        DownloadError: pretrained weights unavailable.
    """
    from fakescope.models._registry import create_detector
    from fakescope.models.checkpoint import load_checkpoint
    from fakescope.models.ensemble import create_ensemble, get_ensemble, load_ensemble

    if isinstance(source, nn.Module):
        return source.to(map_location).eval(), {}
    text = str(source)
    path = Path(text)
    if is_ensemble_path(path):
        desc_path = path / "ensemble.json" if path.is_dir() else path
        model = load_ensemble(desc_path, map_location)
        return model, {"source": str(desc_path), **json.loads(desc_path.read_text(encoding="utf-8"))}
    if path.suffix.lower() in {".safetensors", ".pt", ".pth", ".ckpt", ".bin", ".pkl"} or path.is_file():
        model, meta = load_checkpoint(path, map_location=map_location)
        return model, {"source": str(path), **meta}
    spec = get_ensemble(text)
    if spec is not None:
        model = create_ensemble(text, weights_dir=weights_dir, cache_dir=cache_dir)
        meta = {"model": text, "members": list(spec.members), "threshold": float(getattr(model, "threshold", 0.5))}
        return model.to(map_location), meta
    model = create_detector(text, weights_dir=weights_dir, cache_dir=cache_dir)
    meta = {"model": text, "threshold": float(model.cfg.extra.get("threshold", 0.5))}
    return model.to(map_location).eval(), meta
