"""Adaptive attacks on the adversarial-input detectors: every squeezed branch to "real", the detector's own score
as a penalty, restarts, and the iterate that beats the fitted thresholds.

Feature squeezing flags an input when the prediction on a squeezed copy disagrees with the prediction on the
input. An attacker who drives only the *mean* logit over the branches to "real" can push one branch far enough
while the others disagree, which is exactly what squeezing detects. The attacks here follow He et al.,
"Adversarial example defenses: ensembles of weak defenses are not strong" (WOOT 2017), Carlini and Wagner,
"Adversarial examples are not easily detected" (AISec 2017) and Tramer et al., "On adaptive attacks to
adversarial example defenses" (NeurIPS 2020):

- **all branches**: a hinge on *every* branch (the input and each squeezed copy) pushes its logit below the
  model's decision threshold minus a margin ``kappa``;
- **penalty**: plus ``penalty`` times the squeezing score itself (the largest L1 distance between the
  probability vectors of the input and of a squeezed copy);
- **learned**: a hinge on the feature detector's logit below its fitted threshold minus the margin;
- BPDA through the squeezers (bit depth and JPEG pass the gradient straight through; the median passes it to the
  chosen pixel), L-inf PGD with sign steps of ``eps_step`` (default ``eps / 8``), ``restarts`` random starts;
- per image, the first iterate that passes as real *and* beats every targeted detector's fitted threshold is
  kept (else the iterate with the lowest loss); images already won are not attacked further.

The loop is hand-written (plain PyTorch): ART's ``ProjectedGradientDescent`` optimises the classifier's own loss
and keeps the last iterate, so it cannot express a loss over several branches plus a detector score, nor stop
at the fitted thresholds. With no detector targeted the loop is plain PGD on the model's hinge, which the
strength checks compare with ART's PGD (:func:`fakescope.defenses.evaluate.strength_checks`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from fakescope.defenses.learned import FeatureDetector
from fakescope.defenses.squeezing import FeatureSqueezing
from fakescope.models.inference import eval_mode

_logger = logging.getLogger(__name__)


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


@dataclass
class AttackTrace:
    """Where each image was first won: ``restart`` and ``step`` (-1, -1 when never), for the strength curves."""

    restart: list[int] = field(default_factory=list)
    step: list[int] = field(default_factory=list)

    def success_by_step(self, steps: int) -> list[float]:
        """Share of images won within the first restart after ``k`` steps, ``k = 0..steps``."""
        r, s = np.asarray(self.restart), np.asarray(self.step)
        n = max(1, len(r))
        return [float(((r == 0) & (s >= 0) & (s <= k)).sum() / n) for k in range(steps + 1)]

    def success_by_restart(self, restarts: int) -> list[float]:
        """Share of images won within the first ``k`` restarts (full steps each), ``k = 1..restarts``."""
        r = np.asarray(self.restart)
        n = max(1, len(r))
        return [float(((r >= 0) & (r < k)).sum() / n) for k in range(1, restarts + 1)]


class AdaptiveAttack:
    """L-inf PGD with restarts against the model and the adversarial-input detectors it targets.

    Args:
        model: the detector ([0, 1] input, one logit).
        eps: L-inf budget.
        squeezing: a fitted :class:`FeatureSqueezing` to beat (None: not targeted).
        learned: a fitted :class:`FeatureDetector` to beat (None: not targeted).
        all_branches: hinge on every squeezed branch too (False: on the input's logit only).
        penalty: weight of the squeezing score in the loss (0: none).
        threshold: the model's decision threshold on P(fake).
        steps: PGD steps per restart.
        restarts: random starts (each only for the images not yet won).
        eps_step: step size (default ``eps / 8``, so a restart can cross the ball several times).
        margin: ``kappa``, in logits, below each threshold that the hinges aim for.
        seed: call ``k`` draws its random starts from ``seed + k``.
        batch_size: images per step.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        *,
        squeezing: FeatureSqueezing | None = None,
        learned: FeatureDetector | None = None,
        all_branches: bool = True,
        penalty: float = 0.0,
        threshold: float = 0.5,
        steps: int = 100,
        restarts: int = 5,
        eps_step: float | None = None,
        margin: float = 3.0,
        seed: int = 0,
        batch_size: int = 32,
    ) -> None:
        if steps < 1 or restarts < 1:
            raise ValueError(f"steps and restarts must be >= 1, got {steps}, {restarts}")
        if squeezing is not None and squeezing.threshold is None:
            raise ValueError("the squeezing detector has no threshold; fit it first")
        if learned is not None and learned.threshold is None:
            raise ValueError("the learned detector is not fitted; fit it first")
        self.model = model
        self.eps = float(eps)
        self.squeezing = squeezing
        self.learned = learned
        self.all_branches = bool(all_branches)
        self.penalty = float(penalty)
        self.threshold = float(threshold)
        self.steps = int(steps)
        self.restarts = int(restarts)
        self.eps_step = float(eps_step) if eps_step is not None else self.eps / 8
        self.margin = float(margin)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.calls = 0
        self.trace = AttackTrace()
        self._squeezers = list(squeezing.squeezers().values()) if squeezing is not None else []
        self._head = learned.torch_head().to(_device(model)) if learned is not None else None

    def describe(self) -> dict[str, float | int | bool | str]:
        """The threat model and parameters, for reports."""
        keys = ("eps", "all_branches", "penalty", "threshold", "steps", "restarts", "eps_step", "margin", "seed")
        return {
            "attack": "adaptive_pgd_linf",
            "norm": "linf",
            "targets": ",".join(n for n, d in (("squeezing", self.squeezing), ("learned", self.learned)) if d),
            **{k: getattr(self, k) for k in keys},
        }

    def objective(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss per image (``B``, to minimise) and whether each image already wins (``B`` bool, no gradient)."""
        feats = self.model.forward_features(x)
        z0 = self.model.forward_head(feats).reshape(-1).float()
        target = _logit(self.threshold) - self.margin
        ok = torch.sigmoid(z0) < self.threshold
        branch = [z0]
        if self._squeezers:
            zs = [self.model(fn(x)).reshape(-1).float() for fn in self._squeezers]
            if self.all_branches:
                branch += zs
            p0 = torch.sigmoid(z0)
            score = torch.stack([2 * (p0 - torch.sigmoid(z)).abs() for z in zs]).amax(dim=0)
            ok = ok & (score <= self.squeezing.threshold)
        loss = sum(torch.relu(z - target) for z in branch)
        if self._squeezers and self.penalty > 0:
            loss = loss + self.penalty * score
        if self._head is not None:
            zl = self._head(feats.flatten(1)).reshape(-1).float()
            loss = loss + torch.relu(zl - (_logit(self.learned.threshold) - self.margin))
            ok = ok & (torch.sigmoid(zl) <= self.learned.threshold)
        return loss, ok.detach()

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Adversarial versions of the fakes ``x`` (``B,3,H,W`` in [0, 1]), pushed fake -> real; ``y`` ignored."""
        del y  # the threat model is fake -> real
        seed = self.seed + self.calls
        self.calls += 1
        gen = torch.Generator().manual_seed(seed)
        with eval_mode(self.model):
            parts = [self._attack_batch(x[i : i + self.batch_size], gen) for i in range(0, len(x), self.batch_size)]
        return torch.cat(parts) if parts else x.detach().clone()

    def _attack_batch(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        device = _device(self.model)
        x0 = x.detach().to(device).float()
        n = len(x0)
        best = x0.clone()
        best_loss = torch.full((n,), float("inf"), device=device)
        won = torch.zeros(n, dtype=torch.bool, device=device)
        first = np.full((n, 2), -1)
        for r in range(self.restarts):
            idx = torch.nonzero(~won).reshape(-1)
            if len(idx) == 0:
                break
            noise = (torch.rand(x0[idx].shape, generator=gen) * 2 - 1).to(device) * self.eps
            xa = (x0[idx] + noise).clamp(0, 1)
            for s in range(self.steps + 1):
                xa.requires_grad_(True)
                loss, ok = self.objective(xa)
                with torch.no_grad():
                    better = ok | (loss.detach() < best_loss[idx])
                    best[idx[better]] = xa.detach()[better]
                    best_loss[idx[better]] = loss.detach()[better]
                    first[idx[ok].cpu().numpy()] = (r, s)
                    won[idx[ok]] = True
                if s == self.steps or ok.all():
                    break
                (grad,) = torch.autograd.grad(loss.sum(), xa)
                keep = ~ok
                with torch.no_grad():
                    step = xa.detach()[keep] - self.eps_step * grad[keep].sign()
                    xa = torch.min(torch.max(step, x0[idx[keep]] - self.eps), x0[idx[keep]] + self.eps).clamp(0, 1)
                idx = idx[keep]
        self.trace.restart += first[:, 0].tolist()
        self.trace.step += first[:, 1].tolist()
        return best.to(x.device, x.dtype)


def _device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def squeezer_gradients(squeezing: FeatureSqueezing, x: torch.Tensor) -> dict[str, float]:
    """Mean absolute gradient of the model's logit on each squeezed copy with respect to the input ``x``.

    BPDA must let the gradient through every squeezer; a squeezer with a zero gradient would make an adaptive
    attacker blind to that branch (Tramer et al. 2020, "gradient masking" check). ``identity`` is the unsqueezed
    input, for scale.
    """
    model = squeezing.model
    out: dict[str, float] = {}
    with eval_mode(model):
        fns = {"identity": lambda t: t, **squeezing.squeezers()}
        for name, fn in fns.items():
            xa = x.detach().to(_device(model)).float().requires_grad_(True)
            (grad,) = torch.autograd.grad(model(fn(xa)).sum(), xa)
            out[name] = float(grad.abs().mean())
    return out
