"""Vision Transformers (Dosovitskiy et al., ICLR 2021) from timm: ViT-S/16 and ViT-B/16 at 224x224.

The class token is the pooled feature; inception normalisation (mean = std = 0.5) as timm's AugReg weights.
"""

from __future__ import annotations

from typing import Any

from fakescope.models._cfg import INCEPTION_MEAN, INCEPTION_STD, DetectorCfg
from fakescope.models._registry import register_default_cfg, register_detector
from fakescope.models.base import Detector
from fakescope.models.families._timm import build_timm_detector, timm_cfg

_PAPER = "Dosovitskiy et al., An Image is Worth 16x16 Words, ICLR 2021"

register_default_cfg(
    timm_cfg("vit_small", "vit_small_patch16_224.augreg_in21k_ft_in1k", 224, INCEPTION_MEAN, INCEPTION_STD, _PAPER)
)
register_default_cfg(
    timm_cfg("vit_base", "vit_base_patch16_224.augreg2_in21k_ft_in1k", 224, INCEPTION_MEAN, INCEPTION_STD, _PAPER)
)


@register_detector
def vit_small(cfg: DetectorCfg, pretrained: bool = False, drop_rate: float = 0.1, **timm_kwargs: Any) -> Detector:
    """ViT-S/16 (timm vit_small_patch16_224) + dropout, one output; ImageNet-21k/1k weights with pretrained."""
    return build_timm_detector(cfg, pretrained, drop_rate=drop_rate, **timm_kwargs)


@register_detector
def vit_base(cfg: DetectorCfg, pretrained: bool = False, drop_rate: float = 0.1, **timm_kwargs: Any) -> Detector:
    """ViT-B/16 (timm vit_base_patch16_224) + dropout, one output; ImageNet-21k/1k weights with pretrained."""
    return build_timm_detector(cfg, pretrained, drop_rate=drop_rate, **timm_kwargs)
