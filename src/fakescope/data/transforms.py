"""Image transforms for training and evaluation, derived from the detector's config.

Crops are resized to ``DetectorCfg.input_size`` and handed to the model as float ``3,S,S`` tensors in [0, 1]; the
model normalises internally. Training augmentations work on ``H,W,3`` uint8 RGB arrays with an explicit
:class:`numpy.random.Generator`, so every sample's augmentation is reproducible from ``(seed, epoch, index)``.

Augmentations, in the order applied: self-blending (a real crop becomes a fake, label 1; Shiohara & Yamasaki,
CVPR 2022, via :func:`fakescope.data.synth.self_blend`), horizontal flip, rotation, colour jitter, Gaussian blur,
JPEG re-compression.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np

from fakescope.data.contract import resize_square as resize_square


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentations; each field is a probability or a strength.

    Attributes:
        enabled: master switch (``False`` turns every augmentation off).
        flip: probability of a horizontal flip.
        rotate_p: probability of a rotation.
        rotate_deg: maximum absolute rotation angle in degrees.
        color_p: probability of colour jitter.
        color_strength: maximum relative change of brightness, contrast and saturation.
        blur_p: probability of a Gaussian blur.
        blur_sigma: range of the blur's sigma in pixels.
        jpeg_p: probability of JPEG re-compression.
        jpeg_quality: range of JPEG quality.
        self_blend: probability that a *real* crop is turned into a self-blended fake (label 1).
    """

    enabled: bool = True
    flip: float = 0.5
    rotate_p: float = 0.3
    rotate_deg: float = 10.0
    color_p: float = 0.5
    color_strength: float = 0.2
    blur_p: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 1.5)
    jpeg_p: float = 0.3
    jpeg_quality: tuple[int, int] = (40, 95)
    self_blend: float = 0.0

    @classmethod
    def from_value(cls, value: bool | dict[str, Any] | AugmentConfig | None) -> AugmentConfig:
        """Build from ``True``/``False``/``None``, a mapping of fields (YAML), or an AugmentConfig."""
        if isinstance(value, AugmentConfig):
            return value
        if value is None or isinstance(value, bool):
            return cls(enabled=bool(value))
        if not isinstance(value, dict):
            raise ValueError(f"augment must be true, false or a mapping of {[f.name for f in fields(cls)]}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown augment keys {unknown}; valid keys: {sorted(known)}")
        kw: dict[str, Any] = {}
        for key, v in value.items():
            if key in ("blur_sigma", "jpeg_quality"):
                lo, hi = v
                kw[key] = (float(lo), float(hi)) if key == "blur_sigma" else (int(lo), int(hi))
            elif key == "enabled":
                kw[key] = bool(v)
            else:
                kw[key] = float(v)
        kw.setdefault("enabled", True)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (tuples as lists) for YAML and JSON."""
        d = asdict(self)
        d["blur_sigma"], d["jpeg_quality"] = list(self.blur_sigma), list(self.jpeg_quality)
        return d


def to_tensor(image: np.ndarray) -> Any:
    """``H,W,3`` uint8 RGB -> float32 tensor ``3,H,W`` in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def maybe_self_blend(
    image: np.ndarray, label: int, cfg: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """With probability ``cfg.self_blend``, turn a real crop (label 0) into a self-blended fake (label 1)."""
    if not cfg.enabled or cfg.self_blend <= 0 or label != 0 or rng.random() >= cfg.self_blend:
        return image, label
    from fakescope.data.synth import self_blend

    fake, _mask = self_blend(image, rng)
    return fake, 1


def augment_image(image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Apply flip, rotation, colour jitter, blur and JPEG re-compression (each with its probability)."""
    if not cfg.enabled:
        return image
    img = image
    if rng.random() < cfg.flip:
        img = img[:, ::-1]
    if rng.random() < cfg.rotate_p and cfg.rotate_deg > 0:
        h, w = img.shape[:2]
        angle = float(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
        img = cv2.warpAffine(np.ascontiguousarray(img), m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < cfg.color_p and cfg.color_strength > 0:
        img = _color_jitter(img, cfg.color_strength, rng)
    if rng.random() < cfg.blur_p:
        sigma = float(rng.uniform(*cfg.blur_sigma))
        img = cv2.GaussianBlur(np.ascontiguousarray(img), (0, 0), sigma)
    if rng.random() < cfg.jpeg_p:
        quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        img = jpeg_roundtrip(img, quality)
    return np.ascontiguousarray(img)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode an RGB uint8 image as JPEG at ``quality`` and decode it again."""
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        return image
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _color_jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    img = image.astype(np.float32)
    b, c, s = (float(rng.uniform(1 - strength, 1 + strength)) for _ in range(3))
    img = img * b
    mean = img.mean()
    img = (img - mean) * c + mean
    gray = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    img = (img - gray[..., None]) * s + gray[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)
