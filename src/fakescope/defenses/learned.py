"""A learned adversarial-input detector on the detector's penultimate features.

Logistic regression (scikit-learn) on standardised ``Detector.forward_features`` of clean images versus
adversarial examples (by default PGD), in the spirit of feature-space detectors such as Metzen et al.,
"On Detecting Adversarial Perturbations", ICLR 2017 (there a small network on intermediate activations).
The fitted weights are plain numbers, saved as JSON; the same detector exists as a torch module so that an
adaptive attacker can differentiate through it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from fakescope.models.inference import eval_mode, model_device


class FeatureDetector:
    """Logistic regression on penultimate features: ``score(x)`` = P(adversarial).

    Args:
        model: the fakescope Detector (needs ``forward_features``).
        C: inverse L2 regularisation strength of the logistic regression.
        batch_size: images per forward pass.
    """

    def __init__(self, model: nn.Module, C: float = 0.1, batch_size: int = 64) -> None:
        self.model = model
        self.C = float(C)
        self.batch_size = int(batch_size)
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.coef: np.ndarray | None = None
        self.intercept = 0.0
        self.threshold: float | None = None
        self.target_fpr: float | None = None

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> np.ndarray:
        """Penultimate features ``N,F`` in eval mode."""
        device = model_device(self.model)
        with eval_mode(self.model):
            out = [
                self.model.forward_features(x[i : i + self.batch_size].to(device)).float().flatten(1).cpu()
                for i in range(0, len(x), self.batch_size)
            ]
        return torch.cat(out).numpy()

    def fit(self, x_clean: torch.Tensor, x_adv: torch.Tensor, fpr: float = 0.05) -> FeatureDetector:
        """Fit on clean versus adversarial images; the threshold flags a share ``fpr`` of ``x_clean``."""
        from sklearn.linear_model import LogisticRegression

        f = np.concatenate([self.features(x_clean), self.features(x_adv)])
        t = np.concatenate([np.zeros(len(x_clean)), np.ones(len(x_adv))])
        self.mean = f.mean(axis=0)
        self.scale = f.std(axis=0) + 1e-6
        clf = LogisticRegression(C=self.C, max_iter=2000, class_weight="balanced")
        clf.fit((f - self.mean) / self.scale, t)
        self.coef, self.intercept = clf.coef_.reshape(-1).astype(np.float64), float(clf.intercept_[0])
        scores = self.score(x_clean)
        self.threshold = float(np.quantile(scores, 1 - fpr))
        self.target_fpr = float(fpr)
        return self

    def _check(self) -> None:
        if self.coef is None:
            raise ValueError("FeatureDetector is not fitted; call fit(x_clean, x_adv) or load a fitted detector")

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Detector logits from features."""
        self._check()
        return ((features - self.mean) / self.scale) @ self.coef + self.intercept

    def score(self, x: torch.Tensor) -> np.ndarray:
        """P(adversarial) per image (``N``)."""
        return 1.0 / (1.0 + np.exp(-self.logits(self.features(x))))

    def predict(self, x: torch.Tensor) -> np.ndarray:
        """Boolean flags (score above the fitted threshold)."""
        self._check()
        return self.score(x) > self.threshold

    def torch_head(self) -> nn.Module:
        """The fitted logistic regression as a module on features: ``B,F -> B`` logits."""
        self._check()
        lin = nn.Linear(len(self.coef), 1)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(self.coef / self.scale).float().view(1, -1))
            lin.bias.fill_(float(self.intercept - (self.mean / self.scale) @ self.coef))
        return lin

    def to_dict(self) -> dict[str, Any]:
        """Parameters, weights and threshold, JSON-serialisable."""
        self._check()
        return {
            "kind": "feature_logreg",
            "C": self.C,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "threshold": self.threshold,
            "target_fpr": self.target_fpr,
        }

    @classmethod
    def from_dict(cls, model: nn.Module, d: dict[str, Any]) -> FeatureDetector:
        """Inverse of :meth:`to_dict`."""
        obj = cls(model, d.get("C", 0.1))
        obj.mean, obj.scale = np.asarray(d["mean"]), np.asarray(d["scale"])
        obj.coef, obj.intercept = np.asarray(d["coef"]), float(d["intercept"])
        obj.threshold, obj.target_fpr = d.get("threshold"), d.get("target_fpr")
        return obj


class JointModel(nn.Module):
    """Detector and feature detector as one function for an adaptive attacker.

    Output ``B`` logits ``logsumexp(z_fake, z_adv)``: an attacker pushing this towards "real" (the
    CE loss on label fake) must make the model say real *and* the feature detector say clean.
    """

    def __init__(self, model: nn.Module, detector: FeatureDetector) -> None:
        super().__init__()
        self.model = model
        self.head = detector.torch_head().to(next(model.parameters()).device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Joint logits."""
        f = self.model.forward_features(x)
        z = self.model.forward_head(f)
        z_adv = self.head(f.flatten(1)).reshape(-1)
        return torch.logsumexp(torch.stack([z, z_adv]), dim=0)
