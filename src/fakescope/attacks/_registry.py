"""The attack registry: ``@register_attack`` on a factory, ``create_attack(name, model, eps)``, ``list_attacks()``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from fakescope.attacks._base import Attack

AttackFactory = Callable[..., Attack]
_ATTACKS: dict[str, AttackFactory] = {}
ALIASES = {"pgd": "pgd_linf", "fast_fgsm": "fgsm_rs", "eot": "robust_eot"}


def register_attack(fn: AttackFactory) -> AttackFactory:
    """Register an attack factory under its function name (``pgd_linf``); its docstring's first line describes it.

    Raises:
        ValueError: the name is already registered.
    """
    name = fn.__name__
    if name in _ATTACKS:
        raise ValueError(f"attack {name!r} is already registered")
    _ATTACKS[name] = fn
    return fn


def list_attacks() -> list[str]:
    """Sorted names of the registered attacks."""
    return sorted(_ATTACKS)


def get_attack_info(name: str) -> dict[str, Any]:
    """Name, one-line description and the keyword arguments (with defaults) of an attack factory."""
    fn = _get(name)
    params = {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.default is not inspect.Parameter.empty and p.kind == p.KEYWORD_ONLY
    }
    doc = (inspect.getdoc(fn) or "").strip().splitlines()
    return {"name": resolve_attack_name(name), "description": doc[0] if doc else "", "params": params}


def create_attack(name: str, model: nn.Module, eps: float, seed: int = 0, **kwargs: Any) -> Attack:
    """Build the attack ``name`` against ``model`` (a fakescope Detector: [0, 1] input, one logit out).

    Args:
        name: a registered attack (see :func:`list_attacks`).
        model: the detector to attack.
        eps: perturbation budget in [0, 1] pixel units (L-inf attacks) or the L2 radius (``pgd_l2``).
        seed: seed of every random choice the attack makes (random starts, EoT transforms, Square's squares).
        **kwargs: attack-specific options (``steps``, ``eps_step``, ``batch_size``...); ``None`` values are dropped
            so that CLI defaults never override an attack's own defaults.

    Raises:
        ValueError: unknown attack name, or a negative ``eps``.
    """
    fn = _get(name)
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    accepted = set(inspect.signature(fn).parameters)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"attack {name!r} does not take {unknown}; it takes {sorted(accepted - {'model', 'eps'})}")
    return fn(model, eps=eps, seed=seed, **kwargs)


def resolve_attack_name(name: str) -> str:
    """The registered name behind ``name`` (aliases: ``pgd`` -> ``pgd_linf``, ``fast_fgsm`` -> ``fgsm_rs``)."""
    return ALIASES.get(name, name)


def _get(name: str) -> AttackFactory:
    name = resolve_attack_name(name)
    if name not in _ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose one of {list_attacks()}")
    return _ATTACKS[name]
