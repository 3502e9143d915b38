"""ResNet-50 (He et al., CVPR 2016) from timm: ImageNet backbone, global average pooling, dense 256, dropout,
one output (the study's transfer-learning set-up; ``freeze_backbone=True`` trains only the head).
"""

from __future__ import annotations

from typing import Any

from fakescope.models._cfg import IMAGENET_MEAN, IMAGENET_STD, DetectorCfg
from fakescope.models._registry import register_default_cfg, register_detector
from fakescope.models.base import Detector
from fakescope.models.families._timm import build_timm_detector, timm_cfg

register_default_cfg(
    timm_cfg(
        "resnet50",
        "resnet50.a1_in1k",
        224,
        IMAGENET_MEAN,
        IMAGENET_STD,
        "He et al., Deep Residual Learning for Image Recognition, CVPR 2016",
    )
)


@register_detector
def resnet50(
    cfg: DetectorCfg, pretrained: bool = False, hidden: int = 256, drop_rate: float = 0.5, **timm_kwargs: Any
) -> Detector:
    """ResNet-50 (timm) + global pooling, dense 256, dropout 0.5, one output; ImageNet weights with pretrained."""
    return build_timm_detector(cfg, pretrained, hidden=hidden, drop_rate=drop_rate, **timm_kwargs)
