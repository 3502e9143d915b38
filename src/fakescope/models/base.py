"""The detector contract shared by every model.

A :class:`Detector` takes RGB images in [0, 1] of shape ``B,3,H,W`` (``H = W = cfg.input_size``), applies its
own normalisation inside ``forward`` (so attacks and ONNX export see pixel space), and returns one logit per
image, shape ``B``: ``sigmoid(logit)`` is P(fake).
"""

from __future__ import annotations

import torch
from torch import nn

from fakescope.models._cfg import DetectorCfg


class Detector(nn.Module):
    """Wrap a backbone (``forward_features``) and a head into the fakescope contract.

    Args:
        backbone: a module mapping normalised images ``B,3,H,W`` to pooled features ``B,F``.
        head: a module mapping ``B,F`` features to ``B,1`` logits.
        cfg: the detector's config (input size, normalisation, provenance).
        num_features: ``F``, the width of the pooled features (for feature-based adversarial detectors).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, cfg: DetectorCfg, num_features: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.cfg = cfg
        self.num_features = num_features
        self.register_buffer("pixel_mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)

    def set_cfg(self, cfg: DetectorCfg) -> None:
        """Replace the config (for example one read from a checkpoint) and the normalisation it implies."""
        self.cfg = cfg
        device = self.pixel_mean.device
        self.pixel_mean = torch.tensor(cfg.mean, device=device).view(1, 3, 1, 1)
        self.pixel_std = torch.tensor(cfg.std, device=device).view(1, 3, 1, 1)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map [0, 1] RGB to the backbone's expected input."""
        return (x - self.pixel_mean) / self.pixel_std

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``B,F`` of [0, 1] images ``B,3,H,W``."""
        return self.backbone(self.normalize(x))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logits ``B`` from features (or the head's input when ``pre_logits``)."""
        if pre_logits:
            return features
        return self.head(features).reshape(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``B`` for [0, 1] images ``B,3,H,W``; ``torch.sigmoid`` of them is P(fake)."""
        return self.forward_head(self.forward_features(x))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """P(fake) ``B`` in eval mode without gradients."""
        return torch.sigmoid(self(x))

    def get_classifier(self) -> nn.Module:
        """The classification head."""
        return self.head

    def freeze_backbone(self, freeze: bool = True) -> None:
        """Freeze (or unfreeze) every backbone parameter; the head stays trainable."""
        for p in self.backbone.parameters():
            p.requires_grad_(not freeze)
