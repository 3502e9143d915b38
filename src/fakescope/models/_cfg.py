"""DetectorCfg: the contract of a detector — the face crop it takes, its normalisation, weights and provenance.

The crop contract (``input_size``, ``crop_margin``, ``crop_align``, ``interpolation``) travels inside every
checkpoint; :mod:`fakescope.data.contract` turns a frame and a face into the model input from it, for training,
evaluation, prediction, attacks and the service alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class DetectorCfg:
    """Everything needed to feed a detector and to trust its weights.

    Attributes:
        arch: registered architecture name (``meso4``).
        tag: weights tag (``mesonet_df``), empty for random init.
        input_size: square side of the face crop the model takes, in pixels.
        crop_size: side of the crop cut from the frame before it is resized to ``input_size`` (what the training
            manifest stored; None: cut at ``input_size`` directly).
        crop_margin: the square crop's side is ``max(w, h) * (1 + crop_margin)`` of the face box.
        crop_align: rotate the face upright (eye line horizontal) before cropping, when the face detector gives
            eye keypoints.
        interpolation: resize rule, ``area`` (area averaging when shrinking, bilinear when enlarging),
            ``bilinear`` or ``bicubic``.
        crop_pictures: a picture that is a face crop already is used ``whole`` (resized to a square) or its face
            is ``cut`` like any other face.
        mean: per-channel mean applied *inside* the model to [0, 1] RGB input.
        std: per-channel std applied inside the model.
        url: public download address of pretrained weights, if any.
        sha256: SHA-256 of the file behind ``url``.
        filename: file name of the weights in a cache or a local ``--from`` folder.
        license: licence of the weights.
        paper: citation of the method.
        trained_on: what the weights were trained on (for READMEs and reports).
        extra: anything family specific.
    """

    arch: str
    tag: str = ""
    input_size: int = 224
    crop_size: int | None = None
    crop_margin: float = 0.3
    crop_align: bool = False
    interpolation: str = "area"
    crop_pictures: str = "whole"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    url: str = ""
    sha256: str = ""
    filename: str = ""
    license: str = ""
    paper: str = ""
    trained_on: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``arch.tag`` or just ``arch``."""
        return f"{self.arch}.{self.tag}" if self.tag else self.arch

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectorCfg:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("mean", "std"):
            if k in known:
                known[k] = tuple(known[k])
        return cls(**known)

    def with_(self, **changes: Any) -> DetectorCfg:
        """A copy with some fields changed."""
        return replace(self, **changes)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
NO_NORM_MEAN = (0.0, 0.0, 0.0)
NO_NORM_STD = (1.0, 1.0, 1.0)
