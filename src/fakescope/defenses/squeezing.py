"""Feature squeezing (Xu, Evans and Qi, "Feature Squeezing: Detecting Adversarial Examples in Deep Neural
Networks", NDSS 2018).

The detector's prediction on the input is compared with its predictions on squeezed copies (colour bit-depth
reduction, a median filter, JPEG re-encoding). The adversarial-suspicion score is the largest L1 distance between
the two-class probability vectors, ``max_s 2 |P(fake | x) - P(fake | s(x))|`` in [0, 2]; the threshold is set so
that a chosen share (default 5 %) of clean held-out images is flagged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fakescope.models.inference import eval_mode, model_device
from fakescope.utils.io import atomic_write_text


def reduce_bit_depth(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantise [0, 1] images to ``bits`` bits per channel; straight-through gradient (BPDA)."""
    levels = 2**bits - 1
    q = torch.round(x * levels) / levels
    return x + (q - x).detach()


def _pad_symmetric(x: torch.Tensor, before: int, after: int, dim: int) -> torch.Tensor:
    """Pad ``dim`` by repeating the edge and mirroring beyond it (``d c b a | a b c d | d c b a``)."""
    parts = [x.narrow(dim, 0, before).flip(dim)] if before else []
    parts.append(x)
    if after:
        parts.append(x.narrow(dim, x.shape[dim] - after, after).flip(dim))
    return torch.cat(parts, dim=dim)


def median_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Median over ``size x size`` windows of ``B,C,H,W`` images, as the feature-squeezing paper computes it.

    The reference implementation (Xu et al., NDSS 2018, EvadeML-Zoo) is ``scipy.ndimage.median_filter`` with
    ``mode="reflect"``: symmetric padding that repeats the edge pixel, the window placed as scipy places it
    (``size // 2`` pixels before, the rest after) and, for an even window, the upper of the two middle values.
    The gradient flows to the chosen value. Sides must be at least ``size // 2``.
    """
    if size <= 1:
        return x
    lo, hi = size // 2, (size - 1) // 2
    xp = _pad_symmetric(_pad_symmetric(x, lo, hi, 2), lo, hi, 3)
    patches = xp.unfold(2, size, 1).unfold(3, size, 1)
    flat = patches.reshape(*patches.shape[:4], size * size)
    return flat.sort(dim=-1).values[..., (size * size) // 2]


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG re-encoding with a straight-through gradient (``fakescope.attacks.robust.jpeg_straight_through``)."""
    from fakescope.attacks.robust import jpeg_straight_through

    return jpeg_straight_through(x, quality)


class FeatureSqueezing:
    """Feature-squeezing adversarial-input detector around a fakescope Detector.

    Args:
        model: the detector ([0, 1] input, one logit).
        bit_depth: bits per channel of the bit-depth squeezer (0 disables it).
        median_size: window of the median squeezer (0 or 1 disables it).
        jpeg_quality: quality of the JPEG squeezer (0 disables it).
        threshold: score above which an input is flagged (set by :meth:`fit`).
        batch_size: images per forward pass.
    """

    def __init__(
        self,
        model: nn.Module,
        bit_depth: int = 5,
        median_size: int = 2,
        jpeg_quality: int = 75,
        threshold: float | None = None,
        batch_size: int = 64,
    ) -> None:
        self.model = model
        self.bit_depth = int(bit_depth)
        self.median_size = int(median_size)
        self.jpeg_quality = int(jpeg_quality)
        self.threshold = threshold
        self.target_fpr: float | None = None
        self.batch_size = int(batch_size)

    def squeezers(self) -> dict[str, Any]:
        """Name -> function on ``B,3,H,W`` tensors for every enabled squeezer."""
        out: dict[str, Any] = {}
        if self.bit_depth > 0:
            out[f"bit_depth_{self.bit_depth}"] = lambda x: reduce_bit_depth(x, self.bit_depth)
        if self.median_size > 1:
            out[f"median_{self.median_size}x{self.median_size}"] = lambda x: median_filter(x, self.median_size)
        if self.jpeg_quality > 0:
            out[f"jpeg_{self.jpeg_quality}"] = lambda x: jpeg(x, self.jpeg_quality)
        return out

    @torch.no_grad()
    def distances(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        """L1 distance between the probability vectors of ``x`` and of each squeezed copy, per image."""
        device = model_device(self.model)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.squeezers()}
        with eval_mode(self.model):
            for i in range(0, len(x), self.batch_size):
                xb = x[i : i + self.batch_size].to(device)
                p = torch.sigmoid(self.model(xb).float())
                for name, fn in self.squeezers().items():
                    ps = torch.sigmoid(self.model(fn(xb)).float())
                    parts[name].append((2 * (p - ps).abs()).cpu().numpy())
        return {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}

    def score(self, x: torch.Tensor) -> np.ndarray:
        """Adversarial suspicion per image (``N``, higher = more suspicious): the largest squeezer distance."""
        d = self.distances(x)
        return np.max(np.stack(list(d.values())), axis=0) if d else np.zeros(len(x))

    def fit(self, x_clean: torch.Tensor, fpr: float = 0.05) -> FeatureSqueezing:
        """Set the threshold so that a share ``fpr`` of the clean images ``x_clean`` would be flagged."""
        scores = self.score(x_clean)
        self.threshold = float(np.quantile(scores, 1 - fpr)) if len(scores) else 0.0
        self.target_fpr = float(fpr)
        return self

    def predict(self, x: torch.Tensor) -> np.ndarray:
        """Boolean flags (score above the fitted threshold)."""
        if self.threshold is None:
            raise ValueError("FeatureSqueezing has no threshold yet; call fit(x_clean) or load a fitted detector")
        return self.score(x) > self.threshold

    def to_dict(self) -> dict[str, Any]:
        """Parameters and threshold, JSON-serialisable."""
        return {
            "kind": "feature_squeezing",
            "bit_depth": self.bit_depth,
            "median_size": self.median_size,
            "jpeg_quality": self.jpeg_quality,
            "threshold": self.threshold,
            "target_fpr": self.target_fpr,
        }

    @classmethod
    def from_dict(cls, model: nn.Module, d: dict[str, Any]) -> FeatureSqueezing:
        """Inverse of :meth:`to_dict`."""
        obj = cls(model, d.get("bit_depth", 5), d.get("median_size", 2), d.get("jpeg_quality", 75), d.get("threshold"))
        obj.target_fpr = d.get("target_fpr")
        return obj

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))
        return Path(path)

    @classmethod
    def load(cls, model: nn.Module, path: str | Path) -> FeatureSqueezing:
        """Read a detector written by :meth:`save` (or the ``squeezing`` entry of an ``adv-detect`` file)."""
        d = json.loads(Path(path).read_text())
        return cls.from_dict(model, d.get("squeezing", d))


class SqueezeEnsemble(nn.Module):
    """The detector averaged over the input and its squeezed copies (BPDA through the squeezers).

    An adaptive attacker that drives this ensemble to "real" makes every squeezed prediction agree with the
    unsqueezed one, which is what feature squeezing looks for (He et al., "Adversarial example defenses:
    ensembles of weak defenses are not strong", WOOT 2017). Output: ``B`` logits.
    """

    def __init__(self, squeezing: FeatureSqueezing) -> None:
        super().__init__()
        self.model = squeezing.model
        self._squeezers = list(squeezing.squeezers().values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean logit over ``x`` and every squeezed ``x``."""
        logits = [self.model(x)] + [self.model(fn(x)) for fn in self._squeezers]
        return torch.stack(logits).mean(dim=0)
