"""Hugging Face image classifiers as detectors: ``create_detector("hf:Wvolf/ViT_Deepfake_Detection")``.

Optional extra (``pip install 'fakescope[hf]'``, i.e. ``transformers``); imported lazily, with a clear error when
missing. The model's ``id2label`` names are mapped to real/fake (:func:`map_hf_labels`); the fakescope logit is
``logsumexp(fake logits) - logsumexp(real logits)``, so ``sigmoid`` of it equals the model's softmax P(fake).
Normalisation and input size come from the model's image processor config. ``forward_features`` returns the
model's class logits (``B,K``), the head maps them to the single fake logit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fakescope.errors import FakescopeError
from fakescope.models._cfg import DetectorCfg
from fakescope.models.base import Detector

HF_PREFIX = "hf:"

FAKE_WORDS = ("fake", "deepfake", "manipulated", "forged", "synthetic", "spoof")
REAL_WORDS = ("real", "original", "pristine", "genuine", "authentic", "bonafide")


def _classify(label: str) -> int | None:
    words = [w for w in re.split(r"[^a-z0-9]+", label.lower()) if w]
    fake = any(any(fw in w for fw in FAKE_WORDS) for w in words)
    real = any(w in REAL_WORDS or w.startswith("real") for w in words)
    if fake == real:
        return None
    return 1 if fake else 0


def map_hf_labels(
    id2label: Mapping[int | str, str], overrides: Mapping[str, str | int] | None = None
) -> dict[int, int]:
    """Map a classifier's ``id2label`` to fakescope labels (0 = real, 1 = fake).

    Labels containing ``fake``/``deepfake``/``manipulated`` (and a few synonyms) are fake; labels containing
    ``real``/``original``/``pristine`` (and a few synonyms) are real. ``overrides`` maps a label name to
    ``"real"``/``"fake"`` (or 0/1) for models with other names (``{"LABEL_0": "real", "LABEL_1": "fake"}``).

    Returns:
        ``{class index: 0 or 1}`` for every class of the model.

    Raises:
        ValueError: a label matches neither or both sides, or one side has no class; the message lists the labels.
    """
    wanted = {"real": 0, "fake": 1, "0": 0, "1": 1}
    norm_overrides = {str(k).lower(): wanted.get(str(v).lower()) for k, v in (overrides or {}).items()}
    if None in norm_overrides.values():
        raise ValueError(f"label overrides must map to 'real' or 'fake', got {dict(overrides or {})}")
    mapping: dict[int, int] = {}
    unclear: list[str] = []
    for idx, label in sorted(((int(i), str(lab)) for i, lab in id2label.items())):
        side = norm_overrides.get(label.lower(), _classify(label))
        if side is None:
            unclear.append(label)
        else:
            mapping[idx] = side
    labels = ", ".join(f"{i}: {lab!r}" for i, lab in sorted((int(i), lab) for i, lab in id2label.items()))
    if unclear:
        raise ValueError(
            f"cannot tell whether label(s) {', '.join(map(repr, unclear))} mean real or fake (labels: {labels}); "
            "pass label_map={'<label>': 'real' | 'fake', ...}"
        )
    if set(mapping.values()) != {0, 1}:
        raise ValueError(f"labels {labels} do not name both a real and a fake class; pass label_map=...")
    return mapping


class HFLogits(nn.Module):
    """Run a ``transformers`` image classifier on normalised pixels; return its class logits ``B,K``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B,3,H,W`` normalised pixels -> ``B,K`` logits."""
        return self.model(pixel_values=x).logits


class LabelHead(nn.Module):
    """``B,K`` class logits -> ``B,1`` fake logit: ``logsumexp(fake) - logsumexp(real)`` (no parameters)."""

    def __init__(self, mapping: Mapping[int, int]) -> None:
        super().__init__()
        fake = [i for i, side in sorted(mapping.items()) if side == 1]
        real = [i for i, side in sorted(mapping.items()) if side == 0]
        self.register_buffer("fake_idx", torch.tensor(fake, dtype=torch.long), persistent=False)
        self.register_buffer("real_idx", torch.tensor(real, dtype=torch.long), persistent=False)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """Fake logit ``B,1``."""
        fake = torch.logsumexp(logits.index_select(1, self.fake_idx), dim=1)
        real = torch.logsumexp(logits.index_select(1, self.real_idx), dim=1)
        return (fake - real).unsqueeze(1)


def _processor_contract(processor: Any, config: Any) -> tuple[int, tuple, tuple]:
    size = getattr(processor, "size", None) or {}
    if isinstance(size, int):
        side = size
    else:
        side = size.get("height") or size.get("shortest_edge") or getattr(config, "image_size", None) or 224
    mean = tuple(getattr(processor, "image_mean", None) or (0.5, 0.5, 0.5))
    std = tuple(getattr(processor, "image_std", None) or (0.5, 0.5, 0.5))
    if not getattr(processor, "do_normalize", True):
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return int(side), mean, std


def create_hf_detector(
    model_id: str,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    revision: str | None = None,
    label_map: Mapping[str, str | int] | None = None,
) -> Detector:
    """Load a Hugging Face image classifier (Hub id or local folder) as a fakescope :class:`Detector`.

    Args:
        model_id: Hub id (``Wvolf/ViT_Deepfake_Detection``) or a folder saved with ``save_pretrained``.
        cache_dir: Hugging Face cache folder.
        local_files_only: never touch the network.
        revision: Hub revision (commit, branch or tag) to pin.
        label_map: overrides for :func:`map_hf_labels`.

    Raises:
        FakescopeError: ``transformers`` is not installed, or the model cannot be loaded.
        ValueError: the model's labels cannot be mapped to real/fake.
    """
    try:
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification
    except ImportError as exc:
        raise FakescopeError(
            f"hf:{model_id}: Hugging Face models need the optional 'transformers' package; "
            "install it with: pip install 'fakescope[hf]'"
        ) from exc
    kw: dict[str, Any] = {"cache_dir": str(cache_dir) if cache_dir else None, "local_files_only": local_files_only}
    if revision:
        kw["revision"] = revision
    try:
        config = AutoConfig.from_pretrained(model_id, **kw)
        mapping = map_hf_labels(config.id2label, label_map)
        model = AutoModelForImageClassification.from_pretrained(model_id, **kw)
        processor = AutoImageProcessor.from_pretrained(model_id, **kw)
    except OSError as exc:
        raise FakescopeError(f"hf:{model_id}: could not load the model ({exc})") from exc
    side, mean, std = _processor_contract(processor, config)
    cfg = DetectorCfg(
        arch=f"{HF_PREFIX}{model_id}",
        input_size=side,
        mean=mean,
        std=std,
        trained_on="see the model card on the Hugging Face Hub",
        license=str(getattr(config, "license", "") or "see the model card"),
        extra={"id2label": {str(k): v for k, v in config.id2label.items()}, "label_to_fakescope": mapping},
    )
    model.eval()
    return Detector(HFLogits(model), LabelHead(mapping), cfg, num_features=len(mapping))
