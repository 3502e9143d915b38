"""Ensembles: detectors combined into one detector with one crop contract.

Two rules:

- ``mean`` (:class:`EnsembleDetector`): members sharing one crop contract, combined by mean probability (k-fold
  models, the MesoNet ensemble);
- ``any`` (:class:`PanelDetector`): a *panel* of members with different crop contracts, each of which catches
  what it was trained on; the panel says fake when any member says fake at its own threshold. The panel cuts
  one crop (:func:`panel_cfg`: the finest member's scale, the widest margin, alignment only when every member
  aligns, the first member's picture rule) and each member sees the centre of it that matches its own margin,
  resized to its input size (area averaging or bilinear, whatever the member's own interpolation), so the panel
  is one detector with one contract for ``prepare``, ``evaluate``, ``predict``, ``serve``, attacks and ONNX
  export alike.

Two sources: a k-fold ``ensemble.json`` written by ``fakescope train --folds K`` (member checkpoints relative to
it) and *named ensembles* registered here (:func:`register_ensemble`; ``fakescope models list`` shows them),
whose members are named pretrained detectors. Both load through :func:`fakescope.models.load_model`, so
``predict``, ``serve``, ``evaluate`` and ``export`` take them like any single detector.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from fakescope.errors import CheckpointError

ENSEMBLE_KIND = "fakescope-ensemble"
COMBINE_RULES = ("mean", "any")


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
                f"interpolation); got {sorted(contracts, key=str)}. Members with different contracts combine in a "
                "panel (combine='any': fakescope.models.ensemble.PanelDetector)"
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


def _member_threshold(member: nn.Module, threshold: float | None, index: int) -> float:
    """The threshold given, else the member's own (an ensemble's, or the one stored in its cfg), else 0.5.

    Raises:
        ValueError: a threshold outside (0, 1).
    """
    if threshold is None:
        threshold = getattr(member, "threshold", None)
    if threshold is None:
        threshold = getattr(member.cfg, "extra", {}).get("threshold", 0.5)
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"panel member {index} ({member.cfg.name}): threshold must be in (0, 1), got {threshold}")
    return float(threshold)


def panel_cfg(members: list[nn.Module], name: str) -> Any:
    """The panel's config: one crop every member's own crop lies in, at the finest member's scale.

    Margin: the widest member margin. Scale: the finest member's pixels per face-box side
    (``input_size / (1 + crop_margin)``), so that member sees its own crop and the others a downscaled one.
    Alignment: only when every member aligns (a rotation changes what a member without it was trained on).
    Picture rule and interpolation: the first member's.
    """
    first = members[0].cfg
    margin = max(float(m.cfg.crop_margin) for m in members)
    scale = max(int(m.cfg.input_size) / (1.0 + float(m.cfg.crop_margin)) for m in members)
    size = round(scale * (1.0 + margin))
    arch, _, tag = name.partition(".")
    return first.with_(
        arch=arch,
        tag=tag,
        input_size=size,
        crop_size=size,
        crop_margin=margin,
        crop_align=all(bool(m.cfg.crop_align) for m in members),
        extra={},
    )


def area_matrix(src: int, dst: int) -> torch.Tensor:
    """``dst x src`` matrix of area averaging (OpenCV's ``INTER_AREA`` when shrinking): row ``i`` averages the
    source pixels under output pixel ``i``, weighted by their overlap. ``A @ x @ A.T`` resizes an ``src`` square."""
    ratio = src / dst
    a = torch.zeros(dst, src, dtype=torch.float64)
    for i in range(dst):
        lo, hi = i * ratio, (i + 1) * ratio
        for j in range(math.floor(lo), min(src, math.ceil(hi))):
            a[i, j] = (min(hi, j + 1) - max(lo, j)) / ratio
    return a.float()


class _MemberView(nn.Module):
    """The part of the panel's crop one member takes: the centre matching its margin, at its input size
    (area averaging when shrinking, bilinear when enlarging: the crop contract's ``area`` rule)."""

    def __init__(self, panel_size: int, panel_margin: float, member: nn.Module) -> None:
        super().__init__()
        cfg = member.cfg
        side = round(panel_size * (1.0 + float(cfg.crop_margin)) / (1.0 + panel_margin))
        side += (panel_size - side) % 2  # same parity: the centre sits on whole pixels
        self.start, self.side, self.size = (panel_size - side) // 2, side, int(cfg.input_size)
        shrink = area_matrix(side, self.size) if side > self.size else torch.zeros(0)
        self.register_buffer("shrink", shrink, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[..., self.start : self.start + self.side, self.start : self.start + self.side]
        if self.side == self.size:
            return x
        if self.side > self.size:
            return self.shrink @ x @ self.shrink.T
        return torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)


class PanelDetector(nn.Module):
    """Members with different crop contracts; fake when any member is confident at its own threshold.

    ``forward`` returns ``max_k (logit_k - logit(t_k))``: the logit of the most confident member measured from
    its own threshold ``t_k``, so the panel's P(fake) crosses 0.5 exactly when some member crosses its threshold,
    and a panel of one member is that member (at its threshold).

    Args:
        members: detectors, each with its ``cfg`` crop contract (:func:`panel_cfg` makes the panel's).
        thresholds: each member's threshold (None: the one stored with its weights, else 0.5).
        name: the panel's name (its cfg's ``arch.tag``).
    """

    def __init__(
        self, members: list[nn.Module], thresholds: Sequence[float | None] | None = None, name: str = "panel"
    ) -> None:
        super().__init__()
        if not members:
            raise CheckpointError("a panel needs at least one member")
        thresholds = list(thresholds) if thresholds is not None else [None] * len(members)
        if len(thresholds) != len(members):
            raise ValueError(f"{len(members)} members but {len(thresholds)} thresholds")
        self.cfg = panel_cfg(members, name)
        self.members = nn.ModuleList(members)
        self.views = nn.ModuleList(_MemberView(self.cfg.input_size, self.cfg.crop_margin, m) for m in members)
        pairs = enumerate(zip(members, thresholds, strict=True))
        self.member_thresholds = [_member_threshold(m, t, i) for i, (m, t) in pairs]
        offsets = [math.log(t / (1.0 - t)) for t in self.member_thresholds]
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.float32), persistent=False)
        self.threshold = 0.5
        self._widths = [int(m.num_features) for m in members]
        self.num_features = sum(self._widths)

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's logit minus the logit of its threshold, ``K,B``."""
        logits = torch.stack([m(v(x)).reshape(-1) for m, v in zip(self.members, self.views, strict=True)])
        return logits - self.offsets[:, None]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated member features ``B,sum(F_k)``, each member on its own view."""
        return torch.cat([m.forward_features(v(x)) for m, v in zip(self.members, self.views, strict=True)], dim=1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The panel's logit ``B`` from concatenated features."""
        if pre_logits:
            return features
        parts = torch.split(features, self._widths, dim=1)
        logits = torch.stack([m.forward_head(f).reshape(-1) for m, f in zip(self.members, parts, strict=True)])
        return (logits - self.offsets[:, None]).amax(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The panel's logit ``B`` for [0, 1] images ``B,3,S,S`` (``S = cfg.input_size``)."""
        return self.member_logits(x).amax(0)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """The panel's P(fake) ``B`` (0.5 at the first member threshold crossed)."""
        return torch.sigmoid(self(x))


@dataclass(frozen=True)
class NamedEnsemble:
    """A registered ensemble of named pretrained detectors.

    Attributes:
        name: the ensemble's name (``--model NAME``).
        members: named pretrained detectors (same crop contract for ``mean``).
        description: one line for ``fakescope models list``.
        threshold: decision threshold of the mean probability (``mean``).
        combine: ``mean`` (:class:`EnsembleDetector`) or ``any`` (:class:`PanelDetector`).
        member_thresholds: ``any``: each member's threshold (None: the one stored with its weights).
    """

    name: str
    members: tuple[str, ...]
    description: str = ""
    threshold: float = 0.5
    combine: str = "mean"
    member_thresholds: tuple[float | None, ...] | None = None

    def __post_init__(self) -> None:
        if self.combine not in COMBINE_RULES:
            raise ValueError(f"unknown combine rule {self.combine!r}; choose one of: {', '.join(COMBINE_RULES)}")
        if self.combine == "any" and self.threshold != 0.5:
            raise ValueError(f"{self.name}: a panel decides at 0.5; set member_thresholds instead of threshold")
        if self.member_thresholds is not None and len(self.member_thresholds) != len(self.members):
            raise ValueError(
                f"{self.name}: {len(self.members)} members but {len(self.member_thresholds)} member_thresholds"
            )


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


def describe_ensemble(name: str) -> dict[str, Any]:
    """What ``fakescope models info NAME`` shows for a named ensemble or panel (its members' cfgs, no weights).

    Raises:
        KeyError: unknown ensemble name.
    """
    from fakescope.models._registry import get_detector_cfg

    spec = _ENSEMBLES[name]
    cfgs = [get_detector_cfg(m) for m in spec.members]
    holders = [SimpleNamespace(cfg=c) for c in cfgs]  # what panel_cfg and _member_threshold read of a member
    contract = panel_cfg(holders, name) if spec.combine == "any" else cfgs[0]  # type: ignore[arg-type]
    thresholds = spec.member_thresholds or [None] * len(cfgs)
    per_member = [_member_threshold(h, t, i) for i, (h, t) in enumerate(zip(holders, thresholds, strict=True))]
    return {
        "name": name,
        "kind": "panel" if spec.combine == "any" else "ensemble",
        "description": spec.description,
        "combine": spec.combine,
        "members": list(spec.members),
        **({"member_thresholds": per_member} if spec.combine == "any" else {}),
        "threshold": spec.threshold,  # a panel's is 0.5 (NamedEnsemble checks it)
        "input_size": contract.input_size,
        "crop_margin": contract.crop_margin,
        "crop_align": contract.crop_align,
        "crop_pictures": contract.crop_pictures,
        "trained_on": [c.trained_on for c in cfgs],
        "license": [c.license for c in cfgs],
    }


def create_ensemble(
    name: str, weights_dir: str | Path | None = None, cache_dir: str | Path | None = None
) -> EnsembleDetector | PanelDetector:
    """Build a registered ensemble from its named members.

    Raises:
        KeyError: unknown ensemble name.
    """
    from fakescope.models._registry import create_detector

    if name not in _ENSEMBLES:
        raise KeyError(f"unknown ensemble {name!r}; registered: {', '.join(list_ensembles()) or 'none'}")
    spec = _ENSEMBLES[name]
    members = [create_detector(m, weights_dir=weights_dir, cache_dir=cache_dir) for m in spec.members]
    model: EnsembleDetector | PanelDetector
    if spec.combine == "any":
        model = PanelDetector(members, spec.member_thresholds, name=name)
    else:
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

register_ensemble(
    NamedEnsemble(
        "panel.dfdc_f2f",
        ("mobilenet_v2.dfdc", "mesoinception4.mesonet_f2f"),
        "fake when either member is (the default; both ship in the package)",
        combine="any",
    )
)
