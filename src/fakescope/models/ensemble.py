"""Ensembles: detectors sharing one crop contract, combined by mean probability.

Two sources: a k-fold ``ensemble.json`` written by ``fakescope train --folds K`` (member checkpoints relative to
it) and *named ensembles* registered here (:func:`register_ensemble`; ``fakescope models list`` shows them),
whose members are named pretrained detectors. Both load through :func:`fakescope.models.load_model`, so
``predict``, ``serve``, ``evaluate`` and ``export`` take them like any single detector.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fakescope.errors import CheckpointError

ENSEMBLE_KIND = "fakescope-ensemble"


def _contract_key(cfg: Any) -> Any:
    from fakescope.data.contract import CropContract

    return CropContract.from_cfg(cfg)


class EnsembleDetector(nn.Module):
    """Mean-probability ensemble of detectors sharing one input contract.

    ``forward`` returns the logit of the mean P(fake) of the members, so ``sigmoid(forward(x))`` is the
    ensemble's P(fake) like for any single detector.
    """

    def __init__(self, members: list[nn.Module], threshold: float = 0.5) -> None:
        super().__init__()
        if not members:
            raise CheckpointError("an ensemble needs at least one member")
        contracts = {_contract_key(m.cfg) for m in members}
        if len(contracts) != 1:
            raise CheckpointError(
                "ensemble members must share one crop contract (input size, crop size, margin, alignment, "
                f"interpolation); got {sorted(contracts, key=str)}"
            )
        self.members = nn.ModuleList(members)
        self.cfg = members[0].cfg
        self.threshold = threshold
        self._widths = [int(m.num_features) for m in members]
        self.num_features = sum(self._widths)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated member features ``B,sum(F_k)``."""
        return torch.cat([m.forward_features(x) for m in self.members], dim=1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logit of the mean member probability ``B`` from concatenated features."""
        if pre_logits:
            return features
        parts = torch.split(features, self._widths, dim=1)
        probs = torch.stack([torch.sigmoid(m.forward_head(f)) for m, f in zip(self.members, parts, strict=True)])
        return torch.logit(probs.mean(0), eps=1e-7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logit ``B`` of the mean P(fake) of the members for [0, 1] images ``B,3,S,S``."""
        probs = torch.stack([torch.sigmoid(m(x)) for m in self.members])
        return torch.logit(probs.mean(0), eps=1e-7)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Mean P(fake) ``B``."""
        return torch.sigmoid(self(x))


@dataclass(frozen=True)
class NamedEnsemble:
    """A registered ensemble of named pretrained detectors.

    Attributes:
        name: the ensemble's name (``--model NAME``).
        members: named pretrained detectors (same crop contract).
        description: one line for ``fakescope models list``.
        threshold: decision threshold of the mean probability.
    """

    name: str
    members: tuple[str, ...]
    description: str = ""
    threshold: float = 0.5


_ENSEMBLES: dict[str, NamedEnsemble] = {}


def register_ensemble(ensemble: NamedEnsemble) -> NamedEnsemble:
    """Declare a named ensemble (members are checked when it is built, not here)."""
    _ENSEMBLES[ensemble.name] = ensemble
    return ensemble


def list_ensembles() -> list[str]:
    """Names of the registered ensembles."""
    return sorted(_ENSEMBLES)


def get_ensemble(name: str) -> NamedEnsemble | None:
    """The registered ensemble ``name``, or None."""
    return _ENSEMBLES.get(name)


def create_ensemble(
    name: str, weights_dir: str | Path | None = None, cache_dir: str | Path | None = None
) -> EnsembleDetector:
    """Build a registered ensemble from its named members.

    Raises:
        KeyError: unknown ensemble name.
    """
    from fakescope.models._registry import create_detector

    if name not in _ENSEMBLES:
        raise KeyError(f"unknown ensemble {name!r}; registered: {', '.join(list_ensembles()) or 'none'}")
    spec = _ENSEMBLES[name]
    members = [create_detector(m, weights_dir=weights_dir, cache_dir=cache_dir) for m in spec.members]
    model = EnsembleDetector(members, threshold=spec.threshold)
    model.name = name
    return model.eval()


def load_ensemble(path: str | Path, map_location: str | torch.device = "cpu") -> EnsembleDetector:
    """Load an ``ensemble.json`` descriptor (member checkpoints are relative to its folder).

    Raises:
        CheckpointError: not an ensemble descriptor, or a member checkpoint is missing/unreadable.
    """
    from fakescope.models.checkpoint import load_checkpoint

    path = Path(path)
    if path.is_dir():
        path = path / "ensemble.json"
    try:
        desc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable ensemble descriptor ({exc})") from exc
    if not isinstance(desc, dict) or desc.get("kind") != ENSEMBLE_KIND:
        kind = desc.get("kind") if isinstance(desc, dict) else None
        raise CheckpointError(f"{path}: not a fakescope ensemble descriptor (kind={kind!r})")
    members = [load_checkpoint(path.parent / m, map_location=map_location)[0] for m in desc["members"]]
    model = EnsembleDetector(members, threshold=float(desc.get("threshold", 0.5)))
    return model.to(map_location).eval()


register_ensemble(
    NamedEnsemble(
        "mesonet_ensemble",
        (
            "mesoinception4.mesonet_df",
            "mesoinception4.mesonet_f2f",
            "meso4.mesonet_df",
            "meso4.mesonet_f2f",
        ),
        "the study's MesoNet ensemble: the four published MesoNet weight files (Deepfake and Face2Face)",
    )
)
