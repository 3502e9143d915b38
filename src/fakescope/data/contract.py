"""The crop contract: one way to turn a frame and a face into a detector's input, used everywhere.

A detector's :class:`~fakescope.models.DetectorCfg` (stored in every checkpoint) fixes how its face crops are
made; :class:`CropContract` is that part of it:

- ``crop_size``: side of the square crop cut from the frame (``prepare --size``; what a manifest stores);
- ``size``: side of the model input; the crop is resized to it with :func:`resize_square` (a no-op when equal);
- ``margin``: the square's side is ``max(w, h) * (1 + margin)`` of the face box, centred on the box;
- ``align``: rotate about the box centre so the eye line is horizontal (needs the detector's eye keypoints);
- ``interpolation``: ``area`` (area averaging when shrinking, bilinear when enlarging), ``bilinear``, ``bicubic``;
- ``pictures``: how a picture that is a face crop already becomes the crop: ``whole`` (the picture resized to a
  square, the MesoNet convention) or ``cut`` (its face cut like any other face, black beyond the picture).

Training crops go frame -> :func:`cut_face` (``crop_size``) -> PNG -> :func:`resize_square` (``size``); prediction
runs the same two functions on the same face, so the model sees identical pixels (PNG is lossless).

Pictures that are face crops already (face datasets): :func:`face_in_crop` decides, with one rule for ``prepare``
and ``predict``, whether a picture is a face crop (and finds its face even where it touches the borders), and
:func:`crop_picture` turns it into the crop as ``pictures`` says.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from fakescope.data.faces import Face

INTERPOLATIONS = ("area", "bilinear", "bicubic")
PICTURE_MODES = ("whole", "cut")

#: A picture is looked at as a possible face crop only when its longer side is at most this many pixels.
FACE_CROP_MAX_SIDE = 400
#: ... and it is one when the face found in it covers at least this share of its area.
FACE_CROP_MIN_FILL = 0.25


@dataclass(frozen=True)
class CropContract:
    """How a detector's face crops are made (see the module docstring).

    Attributes:
        size: model input side in pixels.
        crop_size: side of the crop cut from the frame (None: ``size``).
        margin: context around the face box (0.3 = the square is 30 % larger than the box).
        align: level the eyes before cropping.
        interpolation: ``area``, ``bilinear`` or ``bicubic``.
        pictures: ``whole`` or ``cut`` (face-crop pictures; see the module docstring).
    """

    size: int
    crop_size: int | None = None
    margin: float = 0.3
    align: bool = False
    interpolation: str = "area"
    pictures: str = "whole"

    def __post_init__(self) -> None:
        if self.size < 1 or (self.crop_size is not None and self.crop_size < 1):
            raise ValueError(f"crop sizes must be >= 1, got size={self.size}, crop_size={self.crop_size}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; choose one of {list(INTERPOLATIONS)}")
        if self.pictures not in PICTURE_MODES:
            raise ValueError(f"unknown pictures mode {self.pictures!r}; choose one of {list(PICTURE_MODES)}")

    @property
    def cut_size(self) -> int:
        """Side of the crop cut from the frame."""
        return int(self.crop_size or self.size)

    @classmethod
    def from_cfg(cls, cfg: Any) -> CropContract:
        """The contract stored in a :class:`~fakescope.models.DetectorCfg`."""
        return cls(
            size=int(cfg.input_size),
            crop_size=cfg.crop_size,
            margin=float(cfg.crop_margin),
            align=bool(cfg.crop_align),
            interpolation=str(cfg.interpolation),
            pictures=str(getattr(cfg, "crop_pictures", "whole")),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return asdict(self)

    def model_input(self, crop: np.ndarray) -> np.ndarray:
        """A stored crop (``cut_size``) -> the model input (``size``)."""
        return resize_square(crop, self.size, self.interpolation)


def _cv2_flag(interpolation: str, shrinking: bool) -> int:
    import cv2

    if interpolation == "area":
        return cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}[interpolation]


def resize_square(image: np.ndarray, size: int, interpolation: str = "area") -> np.ndarray:
    """Resize an ``H,W,3`` uint8 image to ``size x size`` (returned as is when already that size)."""
    import cv2

    h, w = image.shape[:2]
    if h == size and w == size:
        return np.ascontiguousarray(image)
    flag = _cv2_flag(interpolation, shrinking=max(h, w) > size)
    return np.ascontiguousarray(cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=flag))


def square_box(box: Sequence[float], margin: float = 0.3) -> tuple[float, float, float, float]:
    """The square around ``box``'s centre with side ``max(w, h) * (1 + margin)`` (may extend past the frame)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def crop_face(
    image: np.ndarray, box: Sequence[float], size: int, margin: float = 0.3, interpolation: str = "area"
) -> np.ndarray:
    """Cut the square around ``box`` (side ``max(w, h) * (1 + margin)``) and resize it to ``size`` x ``size``.

    Where the square extends past the frame it is padded with black, so the face stays centred and at the same
    scale as crops away from the border.

    Returns:
        ``size,size,3`` uint8 RGB.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    h, w = image.shape[:2]
    sx1, sy1, sx2, _ = square_box(box, margin)
    side = max(1, round(sx2 - sx1))
    x0, y0 = round(sx1), round(sy1)
    canvas = np.zeros((side, side, image.shape[2]), dtype=image.dtype)
    ix1, iy1 = max(x0, 0), max(y0, 0)
    ix2, iy2 = min(x0 + side, w), min(y0 + side, h)
    if ix2 > ix1 and iy2 > iy1:
        canvas[iy1 - y0 : iy2 - y0, ix1 - x0 : ix2 - x0] = image[iy1:iy2, ix1:ix2]
    return resize_square(canvas, size, interpolation)


def eye_angle(landmarks: np.ndarray | None) -> float:
    """Angle in degrees of the line from the eye on the image's left to the other (0 when unknown)."""
    if landmarks is None:
        return 0.0
    pts = np.asarray(landmarks, np.float64).reshape(-1, 2)
    (lx, ly), (rx, ry) = pts[0], pts[1]
    if lx > rx:
        (lx, ly), (rx, ry) = (rx, ry), (lx, ly)
    return float(math.degrees(math.atan2(ry - ly, rx - lx)))


def _level(square: np.ndarray, angle: float, size: int) -> np.ndarray:
    """Rotate a square image about its centre by ``angle`` (undoing the tilt) and keep the central ``size`` pixels."""
    import cv2

    side = square.shape[0]
    m = cv2.getRotationMatrix2D((side / 2.0, side / 2.0), angle, 1.0)
    m[:, 2] += (size - side) / 2.0
    return cv2.warpAffine(square, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


#: Tilts below this many degrees are not corrected (saves a warp, keeps upright faces bit-identical).
MIN_TILT_DEG = 1.0


def cut_face(image: np.ndarray, face: Face, contract: CropContract) -> np.ndarray:
    """The crop of one face as the contract defines it (``cut_size`` square, uint8 RGB).

    With ``align`` and eye keypoints, a square ``sqrt(2)`` times larger is cut and resized first (area averaging
    keeps a large face from aliasing), rotated to level the eyes, and its centre kept.
    """
    angle = eye_angle(face.landmarks) if contract.align else 0.0
    size = contract.cut_size
    if abs(angle) < MIN_TILT_DEG:
        return crop_face(image, face.box, size, contract.margin, contract.interpolation)
    big = math.ceil(size * math.sqrt(2.0))
    big += (big - size) % 2  # same parity as size: the kept centre sits on whole pixels
    wide = (1.0 + contract.margin) * big / size - 1.0
    square = crop_face(image, face.box, big, wide, contract.interpolation)
    return _level(square, angle, size)


def face_in_crop(image: np.ndarray, detector: Any) -> Face | None:
    """If the picture is itself a face crop, the face in it (picture coordinates); else None.

    Only pictures of at most :data:`FACE_CROP_MAX_SIDE` pixels are candidates. Detectors miss faces that touch
    the borders, so when nothing is found the picture is searched again inside a black frame of half its size.
    The face (highest score) must cover :data:`FACE_CROP_MIN_FILL` of the picture.
    """
    import cv2

    from fakescope.data.faces import Face

    h, w = image.shape[:2]
    if max(h, w) > FACE_CROP_MAX_SIDE:
        return None
    faces = detector.detect(image)
    pad = 0
    if not faces:
        pad = max(h, w) // 2
        faces = detector.detect(cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0)))
    if not faces:
        return None
    f = faces[0]
    x1, y1, x2, y2 = (v - pad for v in f.box)
    fill = max(0.0, min(x2, w) - max(x1, 0)) * max(0.0, min(y2, h) - max(y1, 0)) / float(w * h)
    if fill < FACE_CROP_MIN_FILL:
        return None
    landmarks = None if f.landmarks is None else np.asarray(f.landmarks, np.float32) - pad
    return Face(box=(x1, y1, x2, y2), score=f.score, landmarks=landmarks)


def crop_picture(image: np.ndarray, face: Face | None, contract: CropContract) -> np.ndarray:
    """A picture that is a face crop -> the contract's crop (``cut_size``): its face cut like any other face
    (``pictures="cut"``, when the face is known), else the whole picture (:func:`crop_whole`).
    """
    if contract.pictures == "cut" and face is not None:
        return cut_face(image, face, contract)
    return crop_whole(image, face, contract)


def crop_whole(image: np.ndarray, face: Face | None, contract: CropContract) -> np.ndarray:
    """A picture that is a face crop -> the contract's crop: the whole picture resized to ``cut_size`` square.

    With ``align`` and a face with eye keypoints, the resized picture is then levelled about its centre.
    """
    angle = 0.0
    if contract.align and face is not None and face.landmarks is not None:
        h, w = image.shape[:2]  # the angle as it appears after the picture is stretched to a square
        scale = np.array([contract.cut_size / w, contract.cut_size / h], np.float64)
        angle = eye_angle(np.asarray(face.landmarks, np.float64).reshape(-1, 2) * scale)
    out = resize_square(image, contract.cut_size, contract.interpolation)
    if abs(angle) >= MIN_TILT_DEG:
        out = _level(out, angle, contract.cut_size)
    return out


def manifest_contract(root: str | Path) -> dict[str, Any] | None:
    """The crop options a manifest's crops were made with (``prepare``'s ``config.yaml`` beside it), or None.

    A key missing from an older ``config.yaml`` means the behaviour from before that option existed (margin 0.3,
    no alignment, whole pictures), not today's default: those crops were made that way.

    Returns:
        ``{"crop_size", "crop_margin", "crop_align", "interpolation", "crop_pictures"}``: the DetectorCfg fields of
        the contract.
    """
    import yaml

    root = Path(root)
    folder = root.parent if root.suffix in (".parquet", ".csv") else root
    path = folder / "config.yaml"
    if not path.is_file():
        return None
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return None
    if not isinstance(cfg, dict) or cfg.get("command") != "prepare" or "size" not in cfg:
        return None
    return {
        "crop_size": int(cfg["size"]),
        "crop_margin": float(cfg.get("margin", 0.3)),
        "crop_align": bool(cfg.get("align", False)),
        "interpolation": "area",
        "crop_pictures": str(cfg.get("pictures", "whole")),
    }


#: The DetectorCfg fields of the contract that a manifest's crops must match (``interpolation`` only resizes them).
CONTRACT_FIELDS = ("crop_size", "crop_margin", "crop_align", "crop_pictures")


def contract_mismatch(cfg: Any, root: str | Path) -> str | None:
    """Why the crops of the manifest at ``root`` differ from what a detector with ``cfg`` was trained on, or None.

    None as well when the manifest does not record its crop options, or the detector has no crop size (an old
    checkpoint scores crops as they come).
    """
    made = manifest_contract(root)
    if made is None or getattr(cfg, "crop_size", None) is None:
        return None
    wanted = {k: getattr(cfg, k, None) for k in CONTRACT_FIELDS}
    diff = [f"{k} {made[k]!r} (model: {wanted[k]!r})" for k in CONTRACT_FIELDS if made[k] != wanted[k]]
    if not diff:
        return None
    return (
        f"{root}: crops made with " + ", ".join(diff) + "; prepare the data with the model's contract "
        f"(--size {wanted['crop_size']} --margin {wanted['crop_margin']} "
        f"{'--align' if wanted['crop_align'] else '--no-align'} --pictures {wanted['crop_pictures']})"
    )
