"""MesoNet: Meso-4 and MesoInception-4 (Afchar et al., "MesoNet: a Compact Facial Video Forgery Detection
Network", WIFS 2018). Layer layout follows the authors' Keras code (github.com/DariusAf/MesoNet, Apache-2.0)
so that their published weights can be imported.

Input: 256x256 RGB in [0, 1], no mean/std normalisation (the original contract).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from fakescope.models._cfg import NO_NORM_MEAN, NO_NORM_STD, DetectorCfg
from fakescope.models._registry import register_default_cfg, register_detector
from fakescope.models.base import Detector

_PAPER = "Afchar et al., MesoNet: a Compact Facial Video Forgery Detection Network, WIFS 2018"


def _conv_block(cin: int, cout: int, k: int, pool: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, k, padding=k // 2),
        nn.ReLU(inplace=True),
        nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
        nn.MaxPool2d(pool, pool),
    ]


def _meso_head(in_features: int, drop: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Dropout(drop), nn.Linear(in_features, 16), nn.LeakyReLU(0.1), nn.Dropout(drop), nn.Linear(16, 1)
    )


class Meso4Backbone(nn.Sequential):
    """Four conv blocks (8, 8, 16, 16 channels) ending in a flatten: 256x256 input -> 1024 features."""

    def __init__(self) -> None:
        super().__init__(
            *_conv_block(3, 8, 3, 2),
            *_conv_block(8, 8, 5, 2),
            *_conv_block(8, 16, 5, 2),
            *_conv_block(16, 16, 5, 4),
            nn.Flatten(),
        )


def _cfg(arch: str, **kw: Any) -> DetectorCfg:
    return DetectorCfg(arch=arch, input_size=256, mean=NO_NORM_MEAN, std=NO_NORM_STD, paper=_PAPER, **kw)


register_default_cfg(_cfg("meso4"))


@register_detector
def meso4(cfg: DetectorCfg, pretrained: bool = False, drop_rate: float = 0.5, **_: Any) -> Detector:
    """Meso-4: four conv blocks, dense 16, one output (about 28k parameters)."""
    return Detector(Meso4Backbone(), _meso_head(16 * 8 * 8, drop_rate), cfg, num_features=1024)
