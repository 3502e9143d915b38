"""Adversarial attacks on fakescope detectors, behind one registry.

Every attack works in [0, 1] pixel space of the face crop; the detector normalises inside ``forward``, so the
normalisation is part of the attacked function. Attacks are untargeted with respect to the true labels: on fakes
that is fake -> real, the default goal. The optimisation itself is done by the Adversarial Robustness Toolbox
(ART); fakescope only wraps the detector, seeds the randomness and enforces the threat model.

    >>> from fakescope.attacks import create_attack, list_attacks
    >>> attack = create_attack("pgd_linf", model, eps=8 / 255, steps=10, seed=0)
    >>> x_adv = attack(x, y)  # B,3,S,S in [0, 1]; ||x_adv - x||_inf <= 8/255
"""

from __future__ import annotations

from fakescope.attacks import gradient as _gradient  # noqa: F401  (registers fgsm, pgd_linf, pgd_l2)
from fakescope.attacks import robust as _robust  # noqa: F401  (registers robust_eot)
from fakescope.attacks import square as _square  # noqa: F401  (registers square)
from fakescope.attacks._base import Attack as Attack
from fakescope.attacks._base import parse_eps as parse_eps
from fakescope.attacks._registry import create_attack as create_attack
from fakescope.attacks._registry import get_attack_info as get_attack_info
from fakescope.attacks._registry import list_attacks as list_attacks
from fakescope.attacks._registry import register_attack as register_attack

__all__ = ["Attack", "create_attack", "get_attack_info", "list_attacks", "parse_eps", "register_attack"]
