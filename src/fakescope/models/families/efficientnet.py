"""EfficientNet (Tan and Le, ICML 2019) from timm: B0 at 224x224 and B4 at 380x380, the family of the DFDC
winner (Seferbekov, 2020). ImageNet mean/std normalisation.
"""

from __future__ import annotations

from typing import Any

from fakescope.models._cfg import IMAGENET_MEAN, IMAGENET_STD, DetectorCfg
from fakescope.models._registry import register_default_cfg, register_detector
from fakescope.models.base import Detector
from fakescope.models.families._timm import build_timm_detector, timm_cfg

_PAPER = "Tan and Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks, ICML 2019"

register_default_cfg(timm_cfg("efficientnet_b0", "efficientnet_b0.ra_in1k", 224, IMAGENET_MEAN, IMAGENET_STD, _PAPER))
register_default_cfg(timm_cfg("efficientnet_b4", "efficientnet_b4.ra2_in1k", 380, IMAGENET_MEAN, IMAGENET_STD, _PAPER))


@register_detector
def efficientnet_b0(cfg: DetectorCfg, pretrained: bool = False, drop_rate: float = 0.2, **timm_kwargs: Any) -> Detector:
    """EfficientNet-B0 (timm) + dropout, one output; 224 input, ImageNet weights with pretrained."""
    return build_timm_detector(cfg, pretrained, drop_rate=drop_rate, **timm_kwargs)


@register_detector
def efficientnet_b4(cfg: DetectorCfg, pretrained: bool = False, drop_rate: float = 0.4, **timm_kwargs: Any) -> Detector:
    """EfficientNet-B4 (timm) + dropout, one output; 380 input as the DFDC winner, ImageNet weights with pretrained."""
    return build_timm_detector(cfg, pretrained, drop_rate=drop_rate, **timm_kwargs)
