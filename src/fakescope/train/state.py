"""Resumable training state without pickle: one safetensors file holding tensors, with JSON metadata.

``last_state.safetensors`` holds the model weights (``model.*``), the optimiser's per-parameter tensors
(``optim.<param>.<name>``) and the RNG state (``rng.torch``); its header metadata (JSON) holds the optimiser's
non-tensor state and param groups, the scheduler and AMP-scaler state dicts, the epoch counter, the history and
the early-stopping bookkeeping. It is written atomically once per epoch, so an interrupted run resumes from the
last finished epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from fakescope.errors import CheckpointError
from fakescope.utils.io import atomic_path

STATE_NAME = "last_state.safetensors"
_META_KEY = "fakescope_train_state"


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "plain_state": plain}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, st in meta.get("plain_state", {}).items():
        state.setdefault(int(pid), {}).update(st)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_train_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    scaler: Any | None,
    info: dict[str, Any],
) -> Path:
    """Write the resumable state of a run to ``path`` atomically (see the module docstring)."""
    path = Path(path)
    module = getattr(model, "module", model)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {
        **info,
        "optimizer": opt_meta,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(meta, default=str)})
    return path


def load_train_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    scaler: Any | None,
) -> dict[str, Any]:
    """Restore model, optimiser, scheduler and scaler from ``path``; return the run info saved with them.

    Raises:
        CheckpointError: the file is missing or not a fakescope training state.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no training state to resume from (was the run started in this folder?)")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(_META_KEY)
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable training state ({exc})") from exc
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without fakescope training state")
    meta = json.loads(raw)
    module = getattr(model, "module", model)
    model_sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        module.load_state_dict(model_sd)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: saved weights do not fit this model ({str(exc).splitlines()[0]})") from exc
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    if scheduler is not None and meta.get("scheduler") is not None:
        scheduler.load_state_dict(meta["scheduler"])
    if scaler is not None and meta.get("scaler") is not None and scaler.is_enabled():
        scaler.load_state_dict(meta["scaler"])
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    return meta
