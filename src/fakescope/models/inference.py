"""Running a detector: the one eval-mode context, the one mixed-precision switch and the one batched P(fake).

Everything that scores images (evaluation, attacks, defences, explanations, export checks, prediction) goes
through these, so a model's train/eval mode is always restored and P(fake) is always ``sigmoid(logit)`` in
float32, computed in batches on the model's device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore its previous mode afterwards (even on error)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA (bfloat16 where supported, else float16); a no-op on the CPU or when disabled."""
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """P(fake) of ``[0, 1]`` images ``N,3,H,W`` in eval mode, in batches on the model's device (float64 array)."""
    device = model_device(model)
    with eval_mode(model):
        out = [
            torch.sigmoid(model(x[i : i + batch_size].to(device)).float()).reshape(-1).cpu()
            for i in range(0, len(x), batch_size)
        ]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)
