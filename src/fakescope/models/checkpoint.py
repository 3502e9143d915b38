"""Checkpoints: safetensors weights with the metadata needed to rebuild the detector. Never pickle.

A checkpoint is one ``.safetensors`` file whose header metadata holds (as JSON under the key ``fakescope``):
``model`` (registered name), ``model_kwargs``, ``cfg`` (the DetectorCfg: input contract), ``threshold``
(chosen on validation), ``config`` (resolved training config), ``fakescope_version`` and anything else passed.
A ``.json`` sidecar with the same metadata is written beside it for people to read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from fakescope.errors import CheckpointError
from fakescope.models.base import Detector
from fakescope.utils.io import atomic_path, atomic_write_text

_PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".tar"}
_META_KEY = "fakescope"


def _is_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON header starting with ``{``."""
    return len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8


def _refuse_pickle(path: Path) -> None:
    if not path.is_file():
        return
    with path.open("rb") as fh:
        head = fh.read(9)
    if _is_safetensors(head, path.stat().st_size):
        return
    looks_pickle = head[:1] == b"\x80" or head[:2] == b"PK" or path.suffix.lower() in _PICKLE_SUFFIXES
    if looks_pickle:
        raise CheckpointError(
            f"{path}: looks like a pickle/torch.save file; fakescope never unpickles checkpoints (they can run "
            "code). Convert it yourself with torch.load(path, weights_only=True) and safetensors.torch.save_file, "
            "or pass a fakescope .safetensors checkpoint."
        )


def save_checkpoint(model: Detector, path: str | Path, dtype: torch.dtype | None = None, **metadata: Any) -> Path:
    """Save ``model``'s weights and metadata atomically to ``path`` (``.safetensors``) plus a ``.json`` sidecar.

    Args:
        model: the detector.
        path: target file (the suffix becomes ``.safetensors``).
        dtype: store floating-point tensors in this dtype (``torch.float16`` halves the file; loading casts
            them back to the model's dtype).
        **metadata: anything JSON-serialisable to keep with the weights.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    meta = {"model": model.cfg.arch, "cfg": model.cfg.to_dict(), **metadata}
    from fakescope import __version__

    meta.setdefault("fakescope_version", __version__)
    meta.setdefault("model_kwargs", {})
    meta.setdefault("threshold", 0.5)
    state = {k: v.detach().cpu().contiguous() for k, v in _unwrap(model).state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={_META_KEY: json.dumps(meta, default=str)})
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, default=str))
    return path


def read_checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """Read only the metadata of a checkpoint (cheap: no tensors are loaded)."""
    from safetensors import safe_open

    path = _checked(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(_META_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without fakescope metadata; load it with --weights instead")
    return json.loads(raw)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Detector, dict[str, Any]]:
    """Rebuild the detector described by a checkpoint and load its weights; return ``(model, metadata)``."""
    from fakescope.models import create_detector
    from fakescope.models._cfg import DetectorCfg
    from fakescope.models._registry import split_name

    meta = read_checkpoint_metadata(path)
    if "model" not in meta:
        raise CheckpointError(f"{path}: fakescope metadata without a 'model' name")
    try:
        # Only the architecture: the weights come from the checkpoint, so named pretrained weights are not fetched.
        model = create_detector(split_name(meta["model"])[0], **meta.get("model_kwargs", {}))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild model {meta['model']!r} ({exc})") from exc
    if "cfg" in meta:
        model.set_cfg(DetectorCfg.from_dict(meta["cfg"]))
    load_weights_into(model, path)
    model.to(map_location).eval()
    return model, meta


def load_weights_into(model: nn.Module, path: str | Path, strict: bool = True) -> None:
    """Load the tensors of a safetensors file into ``model`` (pickle files are refused)."""
    path = _checked(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        _unwrap(model).load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit this model ({str(exc).splitlines()[0]})") from exc


def _checked(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    _refuse_pickle(path)
    return path


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)
