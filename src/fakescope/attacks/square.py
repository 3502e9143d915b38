"""Square Attack (Andriushchenko et al., ECCV 2020): a score-based black-box L-inf attack through ART.

It only queries P(fake) (no gradients): random square-shaped updates are kept when they lower the margin of the
true class. ``steps`` is the number of queries per image.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fakescope.attacks._base import Attack
from fakescope.attacks._registry import register_attack


class SquareLinfAttack(Attack):
    """ART ``SquareAttack`` under an L-inf budget."""

    name = "square"
    norm = "linf"

    def _configure(self, *, steps: int = 200, p_init: float = 0.3) -> None:
        self.steps = int(steps)
        self.p_init = float(p_init)

    def _generate(
        self, x: np.ndarray, y: np.ndarray, size: int, device: torch.device, generator: torch.Generator
    ) -> np.ndarray:
        from art.attacks.evasion import SquareAttack

        return self._run_art(SquareAttack, x, y, size, device, max_iter=self.steps, p_init=self.p_init, nb_restarts=1)


@register_attack
def square(
    model: nn.Module, eps: float, seed: int = 0, *, steps: int = 200, p_init: float = 0.3, batch_size: int = 64
) -> Attack:
    """Square Attack, score-based black box (queries P(fake) only), L-inf; steps = queries per image."""
    return SquareLinfAttack(model, eps, seed, batch_size, steps=steps, p_init=p_init)
