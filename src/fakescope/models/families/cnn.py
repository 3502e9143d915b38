"""The study's small CNN: three 3x3 conv layers (32, 64, 128 channels, ReLU, 2x2 max-pooling each), flatten,
dense 256, dropout 0.5, one output.

Input 224x224 ('same' padding: 224 -> 112 -> 56 -> 28, so 128 * 28 * 28 = 100352 flattened features), ImageNet
mean/std normalisation. Most of its ~25.7M parameters sit in the dense layer, as in the study.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from fakescope.models._cfg import IMAGENET_MEAN, IMAGENET_STD, DetectorCfg
from fakescope.models._registry import register_default_cfg, register_detector
from fakescope.models.base import Detector
from fakescope.models.families._timm import linear_head

_INPUT = 224


class SmallCNNBackbone(nn.Sequential):
    """conv(32) -> pool -> conv(64) -> pool -> conv(128) -> pool -> flatten."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        layers: list[nn.Module] = []
        cin = 3
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2)]
            cin = w
        super().__init__(*layers, nn.Flatten())


register_default_cfg(
    DetectorCfg(
        arch="cnn",
        input_size=_INPUT,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        paper="the study's baseline CNN (Adversarial Attack Detection in Deepfake models)",
    )
)


@register_detector
def cnn(cfg: DetectorCfg, pretrained: bool = False, drop_rate: float = 0.5, hidden: int = 256, **_: Any) -> Detector:
    """The study's small CNN: conv 32/64/128 with max-pooling, dense 256, dropout 0.5 (no pretrained weights)."""
    if pretrained:
        raise ValueError("cnn has no pretrained weights; build it with pretrained=False and train it")
    side = cfg.input_size // 8
    features = 128 * side * side
    return Detector(SmallCNNBackbone(), linear_head(features, hidden, drop_rate), cfg, num_features=features)
