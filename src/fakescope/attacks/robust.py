"""The compression-robust attack: PGD with expectation over transformations (EoT).

Hussain et al., "Adversarial Deepfakes: Evaluating Vulnerability of Deepfake Detectors to Adversarial Examples",
WACV 2021, make perturbations that survive video compression by averaging the attack gradient over random
transformations of the input (Athalye et al., "Synthesizing Robust Adversarial Examples", ICML 2018). Here each
gradient is averaged over ``nb_samples`` random chains of JPEG re-encoding (quality 40-95), Gaussian blur,
down- and up-sizing and Gaussian noise, each applied with probability 1/2.

The chain is an ART ``EoTPyTorch`` preprocessor inside an ART ``PyTorchClassifier``, attacked with ART's
``ProjectedGradientDescent``. JPEG is not differentiable; it is applied with a straight-through (BPDA, Athalye
et al. 2018) identity gradient: forward ``jpeg(x)``, backward ``d/dx x``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fakescope.attacks._base import Attack
from fakescope.attacks._registry import register_attack


def jpeg_straight_through(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG-compress [0, 1] images ``B,3,H,W`` at ``quality``; the gradient passes through as the identity."""
    from torchvision.io import decode_jpeg, encode_jpeg

    with torch.no_grad():
        u8 = (x.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        out = torch.stack([decode_jpeg(encode_jpeg(img, quality=int(quality))) for img in u8])
        out = out.to(device=x.device, dtype=x.dtype) / 255.0
    return x + (out - x).detach()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Differentiable separable Gaussian blur (radius ceil(2 sigma), reflect padding) of ``B,C,H,W`` images."""
    r = max(1, int(np.ceil(2 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def down_up(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Differentiable bilinear resize to ``scale`` of the side and back."""
    h, w = x.shape[-2:]
    small = F.interpolate(
        x,
        size=(max(8, round(h * scale)), max(8, round(w * scale))),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def random_degradation(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random chain (JPEG, blur, resize, noise; each with probability 1/2) applied to ``B,3,H,W`` images."""
    u = torch.rand(8, generator=generator).tolist()
    if u[0] < 0.5:
        x = gaussian_blur(x, 0.3 + 1.2 * u[1])
    if u[2] < 0.5:
        x = down_up(x, 0.5 + 0.5 * u[3])
    if u[4] < 0.5:
        noise = torch.randn(x.shape, generator=generator).to(x.device)
        x = x + (0.03 * u[5]) * noise
    x = x.clamp(0, 1)
    if u[6] < 0.5:
        x = jpeg_straight_through(x, 40 + int(55 * u[7]))
    return x


def _eot_class() -> type:
    from art.preprocessing.expectation_over_transformation.pytorch import EoTPyTorch

    class EoTCompression(EoTPyTorch):
        """ART EoT preprocessor drawing random compression chains from an explicit torch generator."""

        def __init__(self, nb_samples: int, generator: torch.Generator) -> None:
            super().__init__(nb_samples=nb_samples, clip_values=(0.0, 1.0), apply_fit=False, apply_predict=True)
            self.generator = generator

        def _transform(self, x: torch.Tensor, y: Any, **kwargs: Any) -> tuple[torch.Tensor, Any]:
            return random_degradation(x, self.generator), y

    return EoTCompression


class RobustEOTAttack(Attack):
    """L-inf PGD whose every gradient is the mean over ``nb_samples`` random compression chains."""

    name = "robust_eot"
    norm = "linf"
    default_batch_size = 16

    def _configure(self, *, steps: int = 20, nb_samples: int = 4, eps_step: float | None = None) -> None:
        if steps < 1 or nb_samples < 1:
            raise ValueError(f"steps and nb_samples must be >= 1, got {steps}, {nb_samples}")
        self.steps = int(steps)
        self.nb_samples = int(nb_samples)
        self.eps_step = float(eps_step) if eps_step is not None else 2.5 * self.eps / self.steps

    def _generate(
        self, x: np.ndarray, y: np.ndarray, size: int, device: torch.device, generator: torch.Generator
    ) -> np.ndarray:
        from art.attacks.evasion import ProjectedGradientDescent

        eot = _eot_class()(self.nb_samples, generator)
        kwargs = {"eps_step": self.eps_step, "max_iter": self.steps, "num_random_init": 1}
        return self._run_art(ProjectedGradientDescent, x, y, size, device, preprocessing_defences=[eot], **kwargs)


@register_attack
def robust_eot(
    model: nn.Module,
    eps: float,
    seed: int = 0,
    *,
    steps: int = 20,
    nb_samples: int = 4,
    eps_step: float | None = None,
    batch_size: int = 16,
) -> Attack:
    """Compression-robust PGD (Hussain et al. 2021): EoT over JPEG (BPDA), blur, resize and noise."""
    return RobustEOTAttack(model, eps, seed, batch_size, steps=steps, nb_samples=nb_samples, eps_step=eps_step)
