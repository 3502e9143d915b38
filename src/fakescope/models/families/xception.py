"""Xception (Chollet, CVPR 2017) from timm's ``legacy_xception``: the original architecture with the
Keras/Cadene ImageNet weights, the backbone FaceForensics++ used (Rössler et al., ICCV 2019).

Input 299x299, inception normalisation (mean = std = 0.5).
"""

from __future__ import annotations

from typing import Any

from fakescope.models._cfg import INCEPTION_MEAN, INCEPTION_STD, DetectorCfg
from fakescope.models._registry import register_default_cfg, register_detector
from fakescope.models.base import Detector
from fakescope.models.families._timm import build_timm_detector, timm_cfg

register_default_cfg(
    timm_cfg(
        "xception",
        "legacy_xception.tf_in1k",
        299,
        INCEPTION_MEAN,
        INCEPTION_STD,
        "Chollet, Xception: Deep Learning with Depthwise Separable Convolutions, CVPR 2017",
    )
)


@register_detector
def xception(cfg: DetectorCfg, pretrained: bool = False, drop_rate: float = 0.5, **timm_kwargs: Any) -> Detector:
    """Xception (timm legacy_xception) + dropout, one output; 299 input, ImageNet weights with pretrained."""
    return build_timm_detector(cfg, pretrained, drop_rate=drop_rate, **timm_kwargs)
