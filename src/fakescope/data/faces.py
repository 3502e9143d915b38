"""Face detection, cropping, 5-point alignment and linking faces into person tracks.

Two detector backends sit behind one interface (:func:`create_face_detector`):

- ``"blazeface"`` (default): MediaPipe's BlazeFace full-range model (Apache-2.0) run with the TensorFlow Lite
  runtime (``ai-edge-litert``), with our own anchors, decoding and weighted NMS (see ``_blazeface.py``). The frame
  is downscaled once so its short side matches the model input (192 px); the detector looks at the whole frame
  (letterboxed) and, when that finds nothing, at square tiles spanning the long side, which finds faces down to
  about 5 % of the frame height. Each tile is contrast-stretched first (dark videos). Gives 6 keypoints, mapped
  to the usual 5 points (eyes, nose, mouth corners estimated from the mouth centre).
- ``"haar"``: OpenCV's frontal-face Haar cascade (shipped inside opencv-python, no model file), run on a frame
  downscaled to ``max_side`` (default 640). Slower, less accurate, no landmarks; a baseline and fallback.

Model files are fetched once into a cache (``~/.cache/fakescope`` or ``cache_dir``) with SHA-256 verification, or
taken from a local folder (``weights_dir``; the CLI's ``--from DIR`` / ``FAKESCOPE_WEIGHTS_DIR``). Nothing is
fetched at import time.

Crops are cut from the full-resolution frame by :func:`fakescope.data.contract.cut_face` (the one crop function
of training and prediction): a square around the box centre with side ``max(w, h) * (1 + margin)``, levelled
when aligning; parts outside the frame are padded with black, then the square is resized to ``size``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fakescope.data.contract import CropContract, crop_face, cut_face, square_box
from fakescope.data.media import Frame

__all__ = [
    "Face",
    "FaceCrop",
    "FaceDetector",
    "align_face",
    "create_face_detector",
    "crop_face",
    "extract_faces",
    "link_tracks",
    "list_face_detectors",
    "resolve_blazeface_weights",
    "square_box",
]

_logger = logging.getLogger(__name__)

# ArcFace / InsightFace 5-point template for a 112x112 crop: left eye, right eye (as seen in the image), nose tip,
# left and right mouth corners.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
# half mouth width relative to the distance between the eyes, from the same template
_MOUTH_HALF_WIDTH = float((ARCFACE_TEMPLATE_112[4, 0] - ARCFACE_TEMPLATE_112[3, 0]) / 2) / float(
    ARCFACE_TEMPLATE_112[1, 0] - ARCFACE_TEMPLATE_112[0, 0]
)


@dataclass
class Face:
    """One detected face.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in pixels of the full-resolution image.
        score: detector confidence in [0, 1].
        landmarks: ``5,2`` (x, y) pixels: eye on the image's left, eye on the image's right, nose tip, left and
            right mouth corners; ``None`` when the backend gives no landmarks.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None


@dataclass
class FaceCrop:
    """A face cut out of one frame.

    Attributes:
        frame_index: index of the frame in its video (0 for an image).
        timestamp: seconds since the first frame.
        track_id: person track (0, 1, ... in order of first appearance).
        box: ``(x1, y1, x2, y2)`` detection box in full-resolution pixels.
        score: detector confidence.
        image: ``size,size,3`` uint8 RGB crop.
        landmarks: ``5,2`` landmarks in full-resolution pixels, or ``None``.
    """

    frame_index: int
    timestamp: float
    track_id: int
    box: tuple[float, float, float, float]
    score: float
    image: np.ndarray
    landmarks: np.ndarray | None = field(default=None, repr=False)


class FaceDetector(Protocol):
    """What every face-detector backend offers."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """Detect faces in an ``H,W,3`` uint8 RGB image; boxes in its pixels, sorted by score (highest first)."""
        ...

    def close(self) -> None:
        """Release the backend's resources."""
        ...


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected an H,W,3 RGB image, got shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    return image


# ----------------------------------------------------------------------------------------------------------------
# BlazeFace
# ----------------------------------------------------------------------------------------------------------------


def resolve_blazeface_weights(
    variant: str = "full", weights_dir: str | Path | None = None, cache_dir: str | Path | None = None
) -> Path:
    """Return a verified local path to a BlazeFace model file, downloading it into the cache on first use.

    Args:
        variant: ``"full"`` (full range, 192 px input) or ``"short"`` (short range, 128 px input).
        weights_dir: a folder already holding the file (offline route); it is verified and used in place.
        cache_dir: cache folder (default ``~/.cache/fakescope``).

    Raises:
        ValueError: unknown variant.
        fakescope.errors.DownloadError: not available offline and cannot be downloaded, or wrong SHA-256.
    """
    from fakescope.data._blazeface import SPECS
    from fakescope.utils.download import fetch_file

    if variant not in SPECS:
        raise ValueError(f"unknown BlazeFace variant {variant!r}; choose one of {sorted(SPECS)}")
    spec = SPECS[variant]
    return fetch_file(spec.url, spec.sha256, filename=spec.filename, cache_dir=cache_dir, local_dir=weights_dir)


def _stretch_contrast(tile: np.ndarray, max_gain: float = 4.0) -> np.ndarray:
    """Stretch the 1st..99th percentile of a tile to 0..255 (gain capped), for dark or washed-out frames."""
    cdf = np.cumsum(np.bincount(tile[::2, ::2].ravel(), minlength=256))
    lo, hi = np.searchsorted(cdf, (0.01 * cdf[-1], 0.99 * cdf[-1]))
    span = max(float(hi - lo), 255.0 / max_gain)
    if span >= 254.0:
        return tile
    lut = np.clip((np.arange(256, dtype=np.float32) - lo) * (255.0 / span), 0, 255).astype(np.uint8)
    return lut[tile]


def _square_tiles(width: int, height: int, side: int) -> list[tuple[int, int]]:
    """Top-left corners of the fewest ``side``-square tiles that cover a ``width`` x ``height`` image."""
    nx = max(1, int(np.ceil(width / side - 1e-6)))
    ny = max(1, int(np.ceil(height / side - 1e-6)))
    xs = np.linspace(0, max(width - side, 0), nx).round().astype(int) if nx > 1 else np.zeros(1, int)
    ys = np.linspace(0, max(height - side, 0), ny).round().astype(int) if ny > 1 else np.zeros(1, int)
    return [(int(x), int(y)) for y in ys for x in xs]


def _downscale(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize with area averaging; big reductions go through a cheap bilinear step to twice the target first."""
    import cv2

    h, w = image.shape[:2]
    if width >= w or height >= h:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    if w > 2 * width:  # INTER_AREA over a 1080p frame costs ~10 ms; this costs ~1.5 ms
        image = cv2.resize(image, (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _five_points(kp6: np.ndarray) -> np.ndarray:
    """MediaPipe's 6 keypoints -> 5 points (eyes, nose, mouth corners estimated from the mouth centre)."""
    eye_a, eye_b, nose, mouth = kp6[0], kp6[1], kp6[2], kp6[3]
    if eye_a[0] > eye_b[0]:
        eye_a, eye_b = eye_b, eye_a
    half = (eye_b - eye_a) * _MOUTH_HALF_WIDTH
    return np.stack([eye_a, eye_b, nose, mouth - half, mouth + half]).astype(np.float32)


class BlazeFaceDetector:
    """BlazeFace on the TensorFlow Lite runtime (see the module docstring for the detection scheme).

    Args:
        model_path: the ``.tflite`` file of ``variant``.
        variant: ``"full"`` (default) or ``"short"``.
        min_score: detection threshold (default 0.5).
        tiling: ``"auto"`` (tiles only when the whole frame gives no face), ``"always"`` (also finds small faces
            next to a big one) or ``"off"`` (whole frame only, fastest).
        contrast: stretch the contrast of each model input (helps in dark videos).
        num_threads: TFLite interpreter threads.
    """

    name = "blazeface"

    def __init__(
        self,
        model_path: str | Path,
        variant: str = "full",
        min_score: float = 0.5,
        tiling: str = "auto",
        contrast: bool = True,
        num_threads: int = 1,
    ) -> None:
        from fakescope.data._blazeface import SPECS, BlazeFaceModel

        if tiling not in ("auto", "always", "off"):
            raise ValueError(f"tiling must be 'auto', 'always' or 'off', got {tiling!r}")
        if variant not in SPECS:
            raise ValueError(f"unknown BlazeFace variant {variant!r}; choose one of {sorted(SPECS)}")
        self.variant = variant
        self.min_score = float(min_score)
        self.tiling = tiling
        self.contrast = contrast
        self._model = BlazeFaceModel(model_path, SPECS[variant], num_threads=num_threads)
        self.input_size = SPECS[variant].input_size

    def _run(self, tile: np.ndarray, ox: float, oy: float, scale: float, side: float, acc: list) -> None:
        if self.contrast:
            tile = _stretch_contrast(tile)
        boxes, scores, kps = self._model.detect_square(tile, self.min_score)
        if len(scores):
            # [0,1] of the tile -> pixels of the small frame -> pixels of the full frame
            boxes = (boxes * side + np.array([ox, oy, ox, oy], np.float32)) / scale
            kps = (kps * side + np.array([ox, oy], np.float32)) / scale
            acc.append((boxes, scores, kps))

    def _inputs(self, image: np.ndarray) -> tuple[float, list[tuple], list[tuple]]:
        """``(scale, whole, tiles)``: the model inputs of ``image`` as ``(tile, ox, oy, side)``.

        ``whole`` is the frame letterboxed (centred, black padding) into the square model input (empty with
        ``tiling="always"`` on a frame wider than the input); ``tiles`` cover the downscaled frame at full size.
        """
        import cv2

        h, w = image.shape[:2]
        s_in = self.input_size
        scale = s_in / min(h, w)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = _downscale(image, sw, sh)
        whole, tiles = [], []
        if self.tiling != "always" or max(sw, sh) <= s_in:
            f = s_in / max(sw, sh)
            lw, lh = max(1, round(sw * f)), max(1, round(sh * f))
            box = np.zeros((s_in, s_in, 3), np.uint8)
            px, py = (s_in - lw) // 2, (s_in - lh) // 2
            box[py : py + lh, px : px + lw] = cv2.resize(small, (lw, lh), interpolation=cv2.INTER_AREA)
            whole.append((box, -px / f, -py / f, s_in / f))
        if max(sw, sh) > s_in and self.tiling != "off":
            for x, y in _square_tiles(sw, sh, s_in):
                tiles.append((np.ascontiguousarray(small[y : y + s_in, x : x + s_in]), x, y, s_in))
        return scale, whole, tiles

    def max_score(self, image: np.ndarray) -> float:
        """Highest raw face score over every model input :meth:`detect` can run (whole frame and every tile).

        :meth:`detect` finds no face when this is below ``min_score``; an attack that hides faces minimises it.
        """
        _, whole, tiles = self._inputs(_check_image(image))
        best = 0.0
        for tile, *_ in whole + tiles:
            _, scores, _ = self._model.detect_square(_stretch_contrast(tile) if self.contrast else tile, 0.0)
            best = max(best, float(scores.max()) if len(scores) else 0.0)
        return best

    def detect(self, image: np.ndarray) -> list[Face]:
        """Detect faces; boxes and landmarks in pixels of ``image``, sorted by score."""
        from fakescope.data._blazeface import weighted_nms

        image = _check_image(image)
        h, w = image.shape[:2]
        scale, whole, tiles = self._inputs(image)
        acc: list = []
        for tile, ox, oy, side in whole:
            self._run(tile, ox, oy, scale, side, acc)
        if self.tiling == "always" or not acc:
            for tile, ox, oy, side in tiles:
                self._run(tile, ox, oy, scale, side, acc)
        if not acc:
            return []
        boxes = np.concatenate([a[0] for a in acc])
        scores = np.concatenate([a[1] for a in acc])
        kps = np.concatenate([a[2] for a in acc])
        boxes, scores, kps = weighted_nms(boxes, scores, kps, self._model.spec.min_suppression_iou)
        faces = []
        for b, s, k in zip(boxes, scores, kps, strict=True):
            x1, y1 = float(np.clip(b[0], 0, w)), float(np.clip(b[1], 0, h))
            x2, y2 = float(np.clip(b[2], 0, w)), float(np.clip(b[3], 0, h))
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            faces.append(Face(box=(x1, y1, x2, y2), score=float(s), landmarks=_five_points(k)))
        return faces

    def close(self) -> None:
        """Release the interpreter."""
        self._model.close()


# ----------------------------------------------------------------------------------------------------------------
# Haar cascade
# ----------------------------------------------------------------------------------------------------------------


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (no model file: it ships inside opencv-python).

    Args:
        max_side: detect on a copy downscaled so its longer side is at most this (None: full resolution).
        scale_factor: image-pyramid step of ``detectMultiScale``.
        min_neighbors: neighbours a candidate needs to be kept (higher: fewer false positives).
        min_size: smallest face, as a fraction of the shorter side of the detection image.

    The score is ``n / (n + min_neighbors)`` with ``n`` the number of merged neighbours (>= 0.5 for kept faces).
    """

    name = "haar"

    def __init__(
        self, max_side: int | None = 640, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: float = 0.05
    ) -> None:
        import cv2

        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"{path}: OpenCV could not load its Haar cascade (opencv-python-headless<5 has it)")
        self.max_side = max_side
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, image: np.ndarray) -> list[Face]:
        """Detect faces; boxes in pixels of ``image``, sorted by score; no landmarks."""
        import cv2

        image = _check_image(image)
        h, w = image.shape[:2]
        scale = 1.0
        if self.max_side and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        min_px = max(16, int(min(gray.shape) * self.min_size))
        rects, counts = self._cascade.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_px, min_px)
        )
        faces = []
        for (x, y, bw, bh), n in zip(np.asarray(rects).reshape(-1, 4), np.asarray(counts).reshape(-1), strict=True):
            box = (x / scale, y / scale, (x + bw) / scale, (y + bh) / scale)
            faces.append(Face(box=tuple(float(v) for v in box), score=float(n / (n + self.min_neighbors))))
        faces.sort(key=lambda f: -f.score)
        return faces

    def close(self) -> None:
        """Nothing to release (kept for the interface)."""


# ----------------------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------------------


def _create_blazeface(
    weights_dir: str | Path | None = None, cache_dir: str | Path | None = None, variant: str = "full", **kw: Any
) -> BlazeFaceDetector:
    return BlazeFaceDetector(resolve_blazeface_weights(variant, weights_dir, cache_dir), variant=variant, **kw)


def _create_haar(weights_dir: str | Path | None = None, cache_dir: str | Path | None = None, **kw: Any) -> HaarDetector:
    return HaarDetector(**kw)


_DETECTORS: dict[str, Callable[..., FaceDetector]] = {"blazeface": _create_blazeface, "haar": _create_haar}


def list_face_detectors() -> list[str]:
    """Names of the face-detector backends (the first is the default)."""
    return list(_DETECTORS)


def create_face_detector(
    name: str = "blazeface", weights_dir: str | Path | None = None, cache_dir: str | Path | None = None, **kw: Any
) -> FaceDetector:
    """Build a face detector by name.

    Args:
        name: ``"blazeface"`` (default) or ``"haar"``.
        weights_dir: folder already holding the model file (offline route); ignored by ``"haar"``.
        cache_dir: download cache (default ``~/.cache/fakescope``).
        **kw: backend options (BlazeFace: ``variant``, ``min_score``, ``tiling``, ``contrast``, ``num_threads``;
            Haar: ``max_side``, ``scale_factor``, ``min_neighbors``, ``min_size``). ``None`` values are dropped so
            CLI defaults never override a backend's own.

    Raises:
        ValueError: unknown name or option.
        fakescope.errors.DownloadError: the model file is unavailable or fails its SHA-256 check.
    """
    if name not in _DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose one of {list_face_detectors()}")
    kw = {k: v for k, v in kw.items() if v is not None}
    return _DETECTORS[name](weights_dir=weights_dir, cache_dir=cache_dir, **kw)


# ----------------------------------------------------------------------------------------------------------------
# Crops, alignment, tracks
# ----------------------------------------------------------------------------------------------------------------


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int, margin: float = 0.3) -> np.ndarray:
    """Warp a face so its 5 landmarks land on the ArcFace template (similarity transform), padded with black.

    The template is scaled to ``size`` and shrunk about the centre by ``1 + margin`` so the same margin convention
    as :func:`crop_face` holds roughly.

    Returns:
        ``size,size,3`` uint8 RGB.
    """
    import cv2

    dst = (ARCFACE_TEMPLATE_112 / 112.0 - 0.5) / (1.0 + margin) * size + size / 2.0
    matrix, _ = cv2.estimateAffinePartial2D(
        np.asarray(landmarks, np.float32).reshape(5, 2), dst.astype(np.float32), method=cv2.LMEDS
    )
    if matrix is None:
        raise ValueError("could not fit a similarity transform to the landmarks")
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA, borderValue=(0, 0, 0))


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def link_tracks(
    boxes_per_frame: Sequence[Sequence[Sequence[float]]], max_distance: float = 1.0, min_iou: float = 0.2
) -> list[list[int]]:
    """Link face boxes across frames into person tracks.

    Each box is matched greedily (best first) to the track whose last box either overlaps it (IoU >= ``min_iou``)
    or has its centre within ``max_distance`` face widths and a similar size (ratio within 2x). Unmatched boxes
    start new tracks; a track takes at most one box per frame.

    Args:
        boxes_per_frame: for each frame, its boxes ``(x1, y1, x2, y2)``.

    Returns:
        For each frame, the track id of each box (ids 0, 1, ... in order of first appearance).
    """
    last: list[tuple[float, float, float, float]] = []  # last box per track
    out: list[list[int]] = []
    for boxes in boxes_per_frame:
        pairs = []
        for i, b in enumerate(boxes):
            bw, bh = b[2] - b[0], b[3] - b[1]
            for t, tb in enumerate(last):
                tw, th = tb[2] - tb[0], tb[3] - tb[1]
                iou = _iou(b, tb)
                dist = np.hypot((b[0] + b[2] - tb[0] - tb[2]) / 2, (b[1] + b[3] - tb[1] - tb[3]) / 2)
                size = max(bw, bh, tw, th, 1e-6)
                ratio = max(bw * bh, 1e-6) / max(tw * th, 1e-6)
                if iou >= min_iou or (dist / size <= max_distance and 0.25 <= ratio <= 4.0):
                    pairs.append((-iou, dist / size, i, t))
        pairs.sort()
        ids = [-1] * len(boxes)
        used: set[int] = set()
        for _, _, i, t in pairs:
            if ids[i] == -1 and t not in used:
                ids[i] = t
                used.add(t)
        for i, b in enumerate(boxes):
            if ids[i] == -1:
                ids[i] = len(last)
                last.append(tuple(b))
            else:
                last[ids[i]] = tuple(b)
        out.append(ids)
    return out


def extract_faces(
    frames: Sequence[Frame],
    detector: FaceDetector | str = "blazeface",
    size: int = 256,
    margin: float = 0.3,
    max_faces: int | None = None,
    align: bool = False,
    interpolation: str = "area",
) -> list[FaceCrop]:
    """Detect faces in frames, link them into tracks and cut crops from the full-resolution frames.

    Detection backends work on downscaled copies internally; boxes come back in full-resolution pixels and the
    crops are cut from the frames as given.

    Args:
        frames: frames of one video (or one image as a single frame), in order.
        detector: a detector, or a backend name (created with defaults and closed afterwards).
        size: side of the square crops in pixels.
        margin: how much the square grows beyond the face box (0.3 = 30 %).
        max_faces: keep at most this many faces per frame (highest scores first); ``None`` keeps all.
        align: level the eyes (rotation about the box centre) when the backend gives landmarks.
        interpolation: resize rule (see :class:`fakescope.data.contract.CropContract`).

    Returns:
        Crops in frame order, then by score; each with its frame index, timestamp, track id, box and score.
    """
    own = isinstance(detector, str)
    det = create_face_detector(detector) if own else detector
    try:
        detections: list[list[Face]] = []
        for frame in frames:
            faces = det.detect(frame.image)
            detections.append(faces[:max_faces] if max_faces is not None else faces)
    finally:
        if own:
            det.close()
    track_ids = link_tracks([[f.box for f in faces] for faces in detections])
    contract = CropContract(size=size, margin=margin, align=align, interpolation=interpolation)
    crops: list[FaceCrop] = []
    for frame, faces, ids in zip(frames, detections, track_ids, strict=True):
        for face, tid in zip(faces, ids, strict=True):
            img = cut_face(frame.image, face, contract)
            crops.append(
                FaceCrop(
                    frame_index=frame.index,
                    timestamp=frame.timestamp,
                    track_id=tid,
                    box=face.box,
                    score=face.score,
                    image=img,
                    landmarks=face.landmarks,
                )
            )
    return crops
