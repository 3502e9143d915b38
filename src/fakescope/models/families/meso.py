"""MesoNet: Meso-4 and MesoInception-4 (Afchar et al., "MesoNet: a Compact Facial Video Forgery Detection
Network", WIFS 2018). Layer layout follows the authors' Keras code (github.com/DariusAf/MesoNet, Apache-2.0)
so that their published weights can be imported.

Input: 256x256 RGB in [0, 1], no mean/std normalisation (the original contract).

The authors' weights (Keras 2.1 HDF5, ``model.save_weights``) are offered as named pretrained detectors
``meso4.mesonet_df``, ``meso4.mesonet_f2f``, ``mesoinception4.mesonet_df`` and ``mesoinception4.mesonet_f2f``.
The original network outputs P(real) (sigmoid unit, 1 = real); :func:`load_mesonet_keras_weights` negates the
last Dense layer so that the imported detector returns the fakescope logit of P(fake).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fakescope.errors import CheckpointError
from fakescope.models._cfg import NO_NORM_MEAN, NO_NORM_STD, DetectorCfg
from fakescope.models._registry import register_default_cfg, register_detector, register_pretrained
from fakescope.models.base import Detector

_logger = logging.getLogger(__name__)

_PAPER = "Afchar et al., MesoNet: a Compact Facial Video Forgery Detection Network, WIFS 2018"
_INPUT = 256


def _conv_block(cin: int, cout: int, k: int, pool: int) -> list[nn.Module]:
    # Keras: Conv2D(padding='same', activation='relu') -> BatchNormalization() -> MaxPooling2D(padding='same').
    # Odd kernels, so 'same' is a symmetric k // 2; every pooled size divides exactly at 256 input.
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


class InceptionLayer(nn.Module):
    """MesoInception's inception module: four branches concatenated on channels (``a + b + c + d`` outputs).

    Branches: 1x1 (``a``); 1x1 -> 3x3 (``b``); 1x1 -> 3x3 dilation 2 (``c``); 1x1 -> 3x3 dilation 3 (``d``);
    every convolution is followed by a ReLU, as in the Keras original.
    """

    def __init__(self, cin: int, a: int, b: int, c: int, d: int) -> None:
        super().__init__()
        self.branch1 = nn.Sequential(nn.Conv2d(cin, a, 1), nn.ReLU(inplace=True))
        self.branch2 = nn.Sequential(
            nn.Conv2d(cin, b, 1), nn.ReLU(inplace=True), nn.Conv2d(b, b, 3, padding=1), nn.ReLU(inplace=True)
        )
        self.branch3 = nn.Sequential(
            nn.Conv2d(cin, c, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=2, dilation=2),
            nn.ReLU(inplace=True),
        )
        self.branch4 = nn.Sequential(
            nn.Conv2d(cin, d, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(d, d, 3, padding=3, dilation=3),
            nn.ReLU(inplace=True),
        )
        self.out_channels = a + b + c + d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B,cin,H,W`` -> ``B,a+b+c+d,H,W``."""
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class MesoInception4Backbone(nn.Sequential):
    """InceptionLayer(1,4,4,2) and InceptionLayer(2,4,4,2), each with BN and max-pool 2, then two 5x5 conv blocks
    of 16 channels (pools 2 and 4) and a flatten: 256x256 input -> 1024 features."""

    def __init__(self) -> None:
        inc1 = InceptionLayer(3, 1, 4, 4, 2)
        inc2 = InceptionLayer(inc1.out_channels, 2, 4, 4, 2)
        super().__init__(
            inc1,
            nn.BatchNorm2d(inc1.out_channels, eps=1e-3, momentum=0.01),
            nn.MaxPool2d(2, 2),
            inc2,
            nn.BatchNorm2d(inc2.out_channels, eps=1e-3, momentum=0.01),
            nn.MaxPool2d(2, 2),
            *_conv_block(inc2.out_channels, 16, 5, 2),
            *_conv_block(16, 16, 5, 4),
            nn.Flatten(),
        )


def _cfg(arch: str, **kw: Any) -> DetectorCfg:
    return DetectorCfg(arch=arch, input_size=_INPUT, mean=NO_NORM_MEAN, std=NO_NORM_STD, paper=_PAPER, **kw)


register_default_cfg(_cfg("meso4"))
register_default_cfg(_cfg("mesoinception4"))


@register_detector
def meso4(cfg: DetectorCfg, pretrained: bool = False, drop_rate: float = 0.5, **_: Any) -> Detector:
    """Meso-4: four conv blocks, dense 16, one output (about 28k parameters)."""
    return Detector(Meso4Backbone(), _meso_head(16 * 8 * 8, drop_rate), cfg, num_features=1024)


@register_detector
def mesoinception4(cfg: DetectorCfg, pretrained: bool = False, drop_rate: float = 0.5, **_: Any) -> Detector:
    """MesoInception-4: two inception modules, two conv blocks, dense 16, one output (about 29k parameters)."""
    return Detector(MesoInception4Backbone(), _meso_head(16 * 8 * 8, drop_rate), cfg, num_features=1024)


# --------------------------------------------------------------------------------------------- Keras import


def _keras_layers(h5: Any, kind: str) -> list[str]:
    """Names of the weight-holding Keras layers of one kind (``conv2d``...) in creation order (numeric suffix)."""
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in h5.attrs["layer_names"]]
    pattern = re.compile(rf"^{kind}_(\d+)$")
    found = [(int(m.group(1)), n) for n in names if (m := pattern.match(n))]
    return [n for _, n in sorted(found)]


def _keras_weights(h5: Any, layer: str) -> dict[str, np.ndarray]:
    group = h5[layer]
    out = {}
    for wn in group.attrs["weight_names"]:
        wn = wn.decode() if isinstance(wn, bytes) else str(wn)
        key = wn.rsplit("/", 1)[-1].split(":")[0]  # 'conv2d_5/kernel:0' -> 'kernel'
        out[key] = np.asarray(group[wn], dtype=np.float32)
    return out


def _copy(param: torch.Tensor, value: np.ndarray, what: str) -> None:
    if tuple(param.shape) != value.shape:
        raise CheckpointError(f"{what}: shape {value.shape} does not fit {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def load_mesonet_keras_weights(model: Detector, path: str | Path) -> None:
    """Import the authors' Keras weights (HDF5 from ``model.save_weights``) into ``meso4`` or ``mesoinception4``.

    Conversions: conv kernels HWIO -> OIHW; BatchNorm gamma/beta/moving mean/variance (eps 1e-3, set in the
    model); the Dense after Flatten re-ordered from Keras' channels-last flatten (H, W, C) to torch's
    channels-first order (C, H, W); the last Dense negated, because the original outputs P(real).

    Raises:
        CheckpointError: the file is not a MesoNet weights file for this architecture.
    """
    import h5py

    path = Path(path)
    convs = [m for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    denses = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
    try:
        with h5py.File(path, "r") as h5:
            k_convs, k_bns, k_denses = (_keras_layers(h5, k) for k in ("conv2d", "batch_normalization", "dense"))
            if (len(k_convs), len(k_bns), len(k_denses)) != (len(convs), len(bns), len(denses)):
                raise CheckpointError(
                    f"{path}: {len(k_convs)} conv / {len(k_bns)} batch-norm / {len(k_denses)} dense layers, but "
                    f"{model.cfg.arch} has {len(convs)} / {len(bns)} / {len(denses)}; wrong file for this model?"
                )
            for conv, name in zip(convs, k_convs, strict=True):
                w = _keras_weights(h5, name)
                _copy(conv.weight, w["kernel"].transpose(3, 2, 0, 1), f"{path}:{name}")
                _copy(conv.bias, w["bias"], f"{path}:{name}")
            for bn, name in zip(bns, k_bns, strict=True):
                w = _keras_weights(h5, name)
                _copy(bn.weight, w["gamma"], f"{path}:{name}")
                _copy(bn.bias, w["beta"], f"{path}:{name}")
                _copy(bn.running_mean, w["moving_mean"], f"{path}:{name}")
                _copy(bn.running_var, w["moving_variance"], f"{path}:{name}")
            first, last = (_keras_weights(h5, n) for n in k_denses)
    except OSError as exc:
        raise CheckpointError(f"{path}: not a readable HDF5 weights file ({exc})") from exc
    except KeyError as exc:
        raise CheckpointError(f"{path}: not a MesoNet Keras weights file (missing {exc})") from exc
    # Flatten order: Keras index (h * W + w) * C + c  ->  torch index c * H * W + h * W + w.
    channels = bns[-1].num_features
    side = round((first["kernel"].shape[0] / channels) ** 0.5)
    kernel = first["kernel"].reshape(side, side, channels, -1).transpose(2, 0, 1, 3).reshape(channels * side**2, -1)
    _copy(denses[0].weight, kernel.T, f"{path}:{k_denses[0]}")
    _copy(denses[0].bias, first["bias"], f"{path}:{k_denses[0]}")
    # The original's sigmoid unit is P(real): logit_fake = -logit_real.
    _copy(denses[1].weight, -last["kernel"].T, f"{path}:{k_denses[1]}")
    _copy(denses[1].bias, -last["bias"], f"{path}:{k_denses[1]}")
    _logger.debug("imported MesoNet Keras weights from %s into %s", path, model.cfg.name)


_URL = "https://github.com/DariusAf/MesoNet/raw/master/weights/"
_TRAINED_ON = {
    "df": (
        "MesoNet's own Deepfake face set (Afchar et al. 2018): faces from deepfake videos collected online and "
        "real faces from similar videos, low resolution, 2018-era face swaps"
    ),
    "f2f": (
        "MesoNet's own Face2Face face set (Afchar et al. 2018): faces from FaceForensics Face2Face "
        "reenactment videos and their originals"
    ),
}
_WEIGHTS = {
    ("meso4", "df"): ("Meso4_DF.h5", "036ed30d04ffd9c7506f825b97c86aa64915f5818931da96817b169aad790af5"),
    ("meso4", "f2f"): ("Meso4_F2F.h5", "bcfda015d217b9f8d6557693edbdf9f4e79cfd22672541968dd0e2954462b5d7"),
    ("mesoinception4", "df"): (
        "MesoInception_DF.h5",
        "234586d40058e76ef8b6f27ca4b63c06e31c2a5a69c0d8ba6f30b1468ab7bafa",
    ),
    ("mesoinception4", "f2f"): (
        "MesoInception_F2F.h5",
        "d4533ac8a3197dc35c47405d23d99e888c1d0135e267e03540c7451feaccff3f",
    ),
}

#: Weights shipped inside the package as well (the default panel's Face2Face member, so it needs no download):
#: the authors' file converted once by :func:`load_mesonet_keras_weights` to safetensors (a test checks the copy
#: equals the import of the original); licence and notice in ``fakescope/models/weights/MESONET_NOTICE``.
_BUNDLED_COPIES = {
    ("mesoinception4", "f2f"): (
        "mesoinception4.mesonet_f2f.safetensors",
        "0dcaadd730802ab148e416c3726417488130879d9fe9d8fe46bbe6a78abff1ff",
    ),
}

for (_arch, _set), (_file, _sha) in _WEIGHTS.items():
    _copy_of = {"bundled_copy": _BUNDLED_COPIES[(_arch, _set)]} if (_arch, _set) in _BUNDLED_COPIES else {}
    register_pretrained(
        _cfg(
            _arch,
            tag=f"mesonet_{_set}",
            url=_URL + _file,
            sha256=_sha,
            filename=_file,
            license="Apache-2.0 (DariusAf/MesoNet)",
            trained_on=_TRAINED_ON[_set],
            extra={
                "source": "DariusAf/MesoNet commit 2144d56, Keras 2.1 HDF5",
                "source_output": "sigmoid, 1 = real (flipped on import)",
                "resize": "face crop resized to 256x256, RGB scaled to [0, 1]",
                **_copy_of,
            },
        ),
        load_mesonet_keras_weights,
    )
