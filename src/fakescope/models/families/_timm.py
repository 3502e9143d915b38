"""Shared plumbing for families built on timm backbones: pooled features from timm, a fakescope head on top.

timm is imported lazily (inside the builders) so that listing detectors stays cheap.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from fakescope.errors import DownloadError
from fakescope.models._cfg import DetectorCfg
from fakescope.models.base import Detector

_logger = logging.getLogger(__name__)


def timm_cfg(arch: str, timm_name: str, input_size: int, mean: tuple, std: tuple, paper: str, **kw: Any) -> DetectorCfg:
    """A default cfg for a timm-backed family; ``extra['timm_name']`` names the timm model (and its weights)."""
    extra = {"timm_name": timm_name, "imagenet": True, **kw.pop("extra", {})}
    return DetectorCfg(
        arch=arch,
        input_size=input_size,
        mean=mean,
        std=std,
        paper=paper,
        license=kw.pop("license", "weights: see timm model card"),
        extra=extra,
        **kw,
    )


def timm_backbone(timm_name: str, pretrained: bool = False, **timm_kwargs: Any) -> tuple[nn.Module, int]:
    """Build ``timm_name`` with ``num_classes=0`` (global pooling, no classifier); return it and its width.

    Args:
        timm_name: timm model name, optionally with a weights tag (``resnet50.a1_in1k``).
        pretrained: load timm's ImageNet weights (downloaded from the Hugging Face Hub or GitHub).
        **timm_kwargs: passed to ``timm.create_model`` (``drop_path_rate``, ...).

    Raises:
        DownloadError: ImageNet weights were asked for but could not be fetched.
    """
    import timm

    try:
        model = timm.create_model(timm_name, pretrained=pretrained, num_classes=0, **timm_kwargs)
    except (OSError, RuntimeError) as exc:
        if not pretrained:
            raise
        raise DownloadError(
            f"{timm_name}: could not fetch timm's ImageNet weights ({exc}). Offline? Build without pretrained "
            "weights, or pre-fill the Hugging Face / torch hub cache."
        ) from exc
    return model, int(model.num_features)


def linear_head(in_features: int, hidden: int | None = None, drop_rate: float = 0.0) -> nn.Sequential:
    """``[Linear(in, hidden), ReLU]`` when ``hidden``, then ``Dropout(drop_rate)``, ``Linear(., 1)``."""
    layers: list[nn.Module] = []
    width = in_features
    if hidden:
        layers += [nn.Linear(in_features, hidden), nn.ReLU(inplace=True)]
        width = hidden
    if drop_rate > 0:
        layers.append(nn.Dropout(drop_rate))
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def build_timm_detector(
    cfg: DetectorCfg,
    pretrained: bool = False,
    hidden: int | None = None,
    drop_rate: float = 0.0,
    **timm_kwargs: Any,
) -> Detector:
    """A :class:`Detector` from the timm backbone named in ``cfg.extra['timm_name']`` plus a linear head."""
    backbone, width = timm_backbone(cfg.extra["timm_name"], pretrained=pretrained, **timm_kwargs)
    return Detector(backbone, linear_head(width, hidden, drop_rate), cfg, num_features=width)
