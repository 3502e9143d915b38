"""Scoring manifest rows: P(fake) of every crop of a manifest (what ``evaluate``, ``compare`` and training use).

The crops are read by :class:`fakescope.data.datasets.FaceDataset` and resized to the model input with the
model's interpolation (the crop contract); no augmentation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from fakescope.data.datasets import create_loader
from fakescope.models.inference import autocast, eval_mode, model_device


@torch.no_grad()
def score_loader(
    model: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device, amp: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(fake), labels and row indices of every sample of ``loader`` (this process's shard), in eval mode."""
    probs, labels, rows = [], [], []
    with eval_mode(model):
        for x, y, idx in loader:
            with autocast(device, amp):
                logits = model(x.to(device, non_blocking=True))
            probs.append(torch.sigmoid(logits.float()).reshape(-1).cpu().numpy())
            labels.append(y.numpy())
            rows.append(np.asarray(idx))
    if not probs:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(rows).astype(np.int64)


def predict_scores(
    model: nn.Module,
    df: pd.DataFrame,
    root: str | Path,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    num_workers: int = 0,
) -> np.ndarray:
    """P(fake) for every row of a manifest ``df`` (crops relative to ``root``, the manifest's folder or file).

    The crops are resized to ``model.cfg.input_size``; no augmentation. Returns an array aligned with ``df``.
    """
    device = torch.device(device) if device is not None else model_device(model)
    model = model.to(device)
    loader = create_loader(
        df,
        root,
        model.cfg.input_size,
        batch_size,
        train=False,
        num_workers=num_workers,
        augment=False,
        interpolation=model.cfg.interpolation,
    )
    probs, _, rows = score_loader(model, loader, device)
    out = np.empty(len(df), dtype=np.float64)
    out[rows] = probs
    return out
