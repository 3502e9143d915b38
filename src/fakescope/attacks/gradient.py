"""White-box gradient attacks through ART: FGSM (Goodfellow et al., ICLR 2015), fast FGSM with a random start
(Wong et al., "Fast is better than free", ICLR 2020) and PGD in L-inf and L2 (Madry et al., ICLR 2018).

The optimisation is ART's (``FastGradientMethod``, ``ProjectedGradientDescent``) over the detector presented as a
two-class PyTorch classifier with clip values (0, 1).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fakescope.attacks._base import Attack, Norm
from fakescope.attacks._registry import AttackFactory, register_attack


class FGSMAttack(Attack):
    """One signed-gradient step of size ``eps_step`` (= eps, or 1.25 eps after a uniform random start)."""

    name = "fgsm"
    norm = "linf"

    def _configure(self, *, random_start: bool = False, eps_step: float | None = None) -> None:
        self.random_start = bool(random_start)
        self.eps_step = float(eps_step) if eps_step is not None else (1.25 * self.eps if random_start else self.eps)

    def _generate(
        self, x: np.ndarray, y: np.ndarray, size: int, device: torch.device, generator: torch.Generator
    ) -> np.ndarray:
        from art.attacks.evasion import FastGradientMethod

        return self._run_art(
            FastGradientMethod, x, y, size, device, eps_step=self.eps_step, num_random_init=int(self.random_start)
        )


class PGDAttack(Attack):
    """Projected gradient descent (ART ``ProjectedGradientDescent``) in L-inf or L2 with an optional random start."""

    def _configure(
        self, *, norm: str = "linf", steps: int = 10, eps_step: float | None = None, random_start: bool = True
    ) -> None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.norm = "l2" if norm == "l2" else "linf"
        self.name = f"pgd_{self.norm}"
        self.steps = int(steps)
        self.eps_step = float(eps_step) if eps_step is not None else 2.5 * self.eps / self.steps
        self.random_start = bool(random_start)

    def _generate(
        self, x: np.ndarray, y: np.ndarray, size: int, device: torch.device, generator: torch.Generator
    ) -> np.ndarray:
        from art.attacks.evasion import ProjectedGradientDescent

        kwargs = {"eps_step": self.eps_step, "max_iter": self.steps, "num_random_init": int(self.random_start)}
        return self._run_art(ProjectedGradientDescent, x, y, size, device, **kwargs)


@register_attack
def fgsm(
    model: nn.Module,
    eps: float,
    seed: int = 0,
    *,
    steps: int | None = None,
    random_start: bool = False,
    batch_size: int = 64,
) -> Attack:
    """FGSM, one L-inf gradient-sign step (random_start=True gives fast FGSM, Wong et al. 2020)."""
    del steps  # one step by definition; accepted so a training config's adv_steps can be passed uniformly
    return FGSMAttack(model, eps, seed, batch_size, random_start=random_start)


@register_attack
def fgsm_rs(model: nn.Module, eps: float, seed: int = 0, *, steps: int | None = None, batch_size: int = 64) -> Attack:
    """Fast FGSM for adversarial training: uniform random start, then one step of 1.25 eps (Wong et al. 2020)."""
    del steps
    attack = FGSMAttack(model, eps, seed, batch_size, random_start=True)
    attack.name = "fgsm_rs"
    return attack


def _pgd_entrypoint(norm: Norm, doc: str) -> AttackFactory:
    """The registered ``pgd_<norm>`` factory, documented by ``doc``; both PGD entrypoints share this signature."""

    def factory(
        model: nn.Module,
        eps: float,
        seed: int = 0,
        *,
        steps: int = 10,
        eps_step: float | None = None,
        random_start: bool = True,
        batch_size: int = 64,
    ) -> Attack:
        return PGDAttack(
            model, eps, seed, batch_size, norm=norm, steps=steps, eps_step=eps_step, random_start=random_start
        )

    factory.__name__ = factory.__qualname__ = f"pgd_{norm}"
    factory.__doc__ = doc
    return factory


pgd_linf = register_attack(
    _pgd_entrypoint("linf", "PGD under an L-inf budget (Madry et al. 2018); step 2.5 eps / steps, random start.")
)
pgd_l2 = register_attack(
    _pgd_entrypoint("l2", "PGD under an L2 budget (eps is the L2 radius of the whole crop in [0, 1] units).")
)
