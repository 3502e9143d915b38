"""Self-blended images and the built-in demo data.

Self-blending (Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022) makes a fake
from one real face: a copy of the face is altered in colour and frequency content and slightly warped and
scaled, then blended back over the original inside a blurred face mask. The result carries the generic traces
of face swapping (a blending boundary, a colour and sharpness mismatch between the inner face and the rest)
without any identity change, which is why it also works as a training augmentation.

The demo data set is built offline from scikit-image's astronaut photo (:func:`skimage.data.astronaut`): each
*group* is one synthetic "identity / source photo" (a random crop, scale, rotation, flip, colour, gamma, lighting
and background tint of the photo) with a few real images and the self-blended fakes made from exactly those
images (a fake and its source share ``group_id``), plus a few short H.264 videos in which the camera pans and
zooms over a face, each with a self-blended fake version.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fakescope.data.media import write_h264
from fakescope.utils.io import atomic_path, atomic_write_text

_logger = logging.getLogger(__name__)

#: Face box (x1, y1, x2, y2) in ``skimage.data.astronaut()`` (512x512), forehead to chin.
ASTRONAUT_FACE_BOX = (172.0, 50.0, 278.0, 172.0)


@dataclass(frozen=True)
class BlendConfig:
    """Ranges of the random changes made by :func:`self_blend` (each drawn uniformly in ``[-x, x]`` or a range).

    Attributes:
        blend_ratios: candidates for the mask's peak (as in the SBI reference code, fewer faint ones).
        hue: hue shift (OpenCV units, 180 = full circle).
        saturation: relative saturation change.
        contrast: relative contrast change.
        brightness: brightness shift (0-255 scale).
        rgb_shift: per-channel shift (0-255 scale).
        freq_probs: probabilities of down/up-sampling, Gaussian blur and sharpening.
        downscale: range of the down-sampling factor.
        blur_sigma: range of the blur (and unsharp-mask) sigma, pixels.
        scale: relative scale change of the warped source.
        shift: horizontal shift of the source as a fraction of the box width (half that vertically).
        mask_blur: range of the mask's Gaussian sigma as a fraction of the face size.
    """

    blend_ratios: tuple[float, ...] = (0.5, 0.75, 1.0, 1.0)
    hue: float = 6.0
    saturation: float = 0.2
    contrast: float = 0.12
    brightness: float = 14.0
    rgb_shift: float = 16.0
    freq_probs: tuple[float, float, float] = (0.45, 0.3, 0.25)
    downscale: tuple[float, float] = (0.3, 0.55)
    blur_sigma: tuple[float, float] = (1.0, 2.0)
    scale: float = 0.05
    shift: float = 0.03
    mask_blur: tuple[float, float] = (0.03, 0.08)


#: Stronger settings used for the built-in demo data, so that a light model learns it in a few epochs.
DEMO_BLEND = BlendConfig(
    blend_ratios=(0.75, 1.0, 1.0),
    rgb_shift=24.0,
    brightness=18.0,
    freq_probs=(0.65, 0.35, 0.0),
    downscale=(0.2, 0.4),
    blur_sigma=(1.5, 2.5),
)


# --------------------------------------------------------------------------------------------------------------
# self-blending
# --------------------------------------------------------------------------------------------------------------
def _default_box(h: int, w: int, margin: float = 0.3) -> tuple[float, float, float, float]:
    """The face box of a crop made with ``margin`` (the face fills ``1 / (1 + 2 * margin)`` of the side)."""
    side = min(h, w) / (1.0 + 2.0 * margin)
    cx, cy = w / 2.0, h / 2.0
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def face_mask(
    shape: tuple[int, int],
    rng: np.random.Generator,
    box: tuple[float, float, float, float] | None = None,
    landmarks: np.ndarray | None = None,
    blur: tuple[float, float] = (0.03, 0.08),
) -> np.ndarray:
    """A random, blurred face mask ``H,W`` in [0, 1] (maximum 1).

    With ``landmarks`` (``N,2`` pixel coordinates) the mask is their convex hull, randomly dilated or eroded;
    otherwise it is an ellipse inside ``box`` (default: the face box of a crop with a 30 % margin) whose
    centre, axes and angle are jittered and whose outline is deformed by low-frequency noise. The mask is then
    blurred with a Gaussian (sigma drawn from ``blur`` times the face size) so the blending boundary is soft.
    """
    h, w = shape
    hard = np.zeros((h, w), np.uint8)
    if landmarks is not None and len(landmarks) >= 3:
        hull = cv2.convexHull(np.asarray(landmarks, np.float32)).astype(np.int32)
        cv2.fillConvexPoly(hard, hull, 1)
        _, _, bw, bh = cv2.boundingRect(hull)
        scale = max(bw, bh)
        k = max(1, int(scale * rng.uniform(0.02, 0.08)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        hard = cv2.dilate(hard, kernel) if rng.random() < 0.5 else cv2.erode(hard, kernel)
    else:
        x1, y1, x2, y2 = box if box is not None else _default_box(h, w)
        bw, bh = x2 - x1, y2 - y1
        scale = max(bw, bh)
        cx = (x1 + x2) / 2 + rng.uniform(-0.04, 0.04) * bw
        cy = (y1 + y2) / 2 + rng.uniform(-0.02, 0.06) * bh
        ax = bw / 2 * rng.uniform(0.72, 0.95)
        ay = bh / 2 * rng.uniform(0.78, 1.0)
        angle = math.radians(rng.uniform(-12, 12))
        theta = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        radius = np.ones_like(theta)
        for k in (2, 3, 4):
            radius += rng.uniform(-0.05, 0.05) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        px, py = ax * radius * np.cos(theta), ay * radius * np.sin(theta)
        pts = np.stack(
            [cx + px * math.cos(angle) - py * math.sin(angle), cy + px * math.sin(angle) + py * math.cos(angle)], 1
        )
        cv2.fillPoly(hard, [np.round(pts).astype(np.int32)], 1)
    sigma = max(1.0, scale * rng.uniform(*blur))
    mask = cv2.GaussianBlur(hard.astype(np.float32), (0, 0), sigma)
    peak = float(mask.max())
    return mask / peak if peak > 0 else mask


def _alter_colour(img: np.ndarray, rng: np.random.Generator, cfg: BlendConfig) -> np.ndarray:
    """Hue, saturation, brightness, contrast and per-channel shifts (float32 RGB in 0..255)."""
    hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-cfg.hue, cfg.hue)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * (1 + rng.uniform(-cfg.saturation, cfg.saturation)), 0, 255)
    out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    mean = out.mean()
    out = (out - mean) * (1 + rng.uniform(-cfg.contrast, cfg.contrast)) + mean
    out += rng.uniform(-cfg.brightness, cfg.brightness)
    return out + rng.uniform(-cfg.rgb_shift, cfg.rgb_shift, size=3).astype(np.float32)


def _alter_frequency(img: np.ndarray, rng: np.random.Generator, cfg: BlendConfig) -> np.ndarray:
    """One of: down- then up-sampling (the resolution mismatch of swapped faces), Gaussian blur, sharpening."""
    h, w = img.shape[:2]
    probs = np.asarray(cfg.freq_probs, np.float64)
    choice = rng.choice(3, p=probs / probs.sum())
    if choice == 0:
        f = rng.uniform(*cfg.downscale)
        small = cv2.resize(img, (max(2, round(w * f)), max(2, round(h * f))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    blurred = cv2.GaussianBlur(img, (0, 0), rng.uniform(*cfg.blur_sigma))
    if choice == 1:
        return blurred
    return img + rng.uniform(0.8, 1.6) * (img - blurred)


def self_blend(
    face: np.ndarray,
    rng: np.random.Generator,
    *,
    box: tuple[float, float, float, float] | None = None,
    landmarks: np.ndarray | None = None,
    config: BlendConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Make a self-blended fake of ``face``.

    The source copy gets a colour change (hue, saturation, brightness, contrast, RGB shift), a frequency change
    (down/up-sampling, blur or sharpening) and a small warp (scale 0.95-1.05, shift up to 3 % of the box);
    it is blended over the original with a random face mask (see :func:`face_mask`) whose peak is one of
    ``config.blend_ratios``. Deterministic given ``rng``.

    Args:
        face: ``H,W,3`` uint8 RGB image containing a face (a face crop by default).
        rng: the random generator; the same state gives the same fake.
        box: face box ``(x1, y1, x2, y2)`` in pixels; default: the face box of a crop with a 30 % margin.
        landmarks: optional ``N,2`` landmarks; when given the mask is their (dilated/eroded) convex hull.
        config: ranges of the random changes (default :class:`BlendConfig`).

    Returns:
        ``(fake, mask)``: the fake ``H,W,3`` uint8 RGB and the blend weight ``H,W`` float32 in [0, 1]
        (``fake = source * mask + face * (1 - mask)``).
    """
    if face.ndim != 3 or face.shape[2] != 3 or face.dtype != np.uint8:
        raise ValueError(f"self_blend expects an H,W,3 uint8 RGB image, got {face.dtype} {face.shape}")
    cfg = config or BlendConfig()
    h, w = face.shape[:2]
    mask = face_mask((h, w), rng, box=box, landmarks=landmarks, blur=cfg.mask_blur)
    mask *= float(rng.choice(cfg.blend_ratios))
    img = face.astype(np.float32)
    source = _alter_frequency(_alter_colour(img, rng, cfg), rng, cfg)
    x1, y1, x2, y2 = box if box is not None else _default_box(h, w)
    cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    s = 1 + rng.uniform(-cfg.scale, cfg.scale)
    warp = np.array(
        [
            [s, 0, (1 - s) * cx + rng.uniform(-cfg.shift, cfg.shift) * bw],
            [0, s, (1 - s) * cy + rng.uniform(-cfg.shift, cfg.shift) / 2 * bh],
        ],
        np.float32,
    )
    source = cv2.warpAffine(source, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    m = mask[..., None]
    fake = source * m + img * (1.0 - m)
    return np.clip(np.round(fake), 0, 255).astype(np.uint8), mask.astype(np.float32)


# --------------------------------------------------------------------------------------------------------------
# demo data
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoSpec:
    """Size of the built-in demo data set.

    Attributes:
        groups: number of image groups (synthetic identities / source photos).
        reals_per_group: real images per group; each gets one self-blended fake.
        image_size: side of the (square) images, pixels.
        videos: number of source clips; each is written as a real and a self-blended fake video.
        video_size: ``(width, height)`` of the videos.
        video_fps: frame rate.
        video_seconds: clip length.
    """

    groups: int = 40
    reals_per_group: int = 3
    image_size: int = 256
    videos: int = 3
    video_size: tuple[int, int] = (320, 240)
    video_fps: int = 12
    video_seconds: float = 2.0


def _astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[..., :3])


def _identity_variant(base: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple[float, ...]]:
    """A colour/lighting/background variant of the full photo, possibly flipped; returns it and its face box."""
    h, w = base.shape[:2]
    x1, y1, x2, y2 = ASTRONAUT_FACE_BOX
    img = base.astype(np.float32)
    if rng.random() < 0.5:
        img = img[:, ::-1]
        x1, x2 = w - x2, w - x1
    hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-10, 10)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.6, 1.3), 0, 255)
    img = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32) / 255.0
    img = np.power(np.clip(img, 0, 1), rng.uniform(0.7, 1.4))
    mean = img.mean()
    img = (img - mean) * rng.uniform(0.75, 1.25) + mean + rng.uniform(-0.1, 0.1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # lighting: a smooth linear gradient in a random direction
    a = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - w / 2) * math.cos(a) + (yy - h / 2) * math.sin(a)) / max(h, w)
    img = img * (1.0 + rng.uniform(0.0, 0.5) * ramp)[..., None]
    # background: a smooth colour tint growing with the distance from the face (no seam)
    fcx, fcy = (x1 + x2) / 2, (y1 + y2) / 2
    dist = np.clip(np.hypot(xx - fcx, yy - fcy) / (1.2 * (x2 - x1)) - 0.6, 0, 1.5)[..., None]
    tint = rng.uniform(-0.25, 0.25, size=3).astype(np.float32)
    img = img + dist * tint
    out = np.clip(img * 255.0, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out), (x1, y1, x2, y2)


def _crop_matrix(
    box: tuple[float, ...], out_w: int, out_h: int, face_frac: float, angle: float, dx: float, dy: float
) -> np.ndarray:
    """Affine map from the photo to an ``out_w x out_h`` view where the face spans ``face_frac`` of the width."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2 + dx * (x2 - x1), (y1 + y2) / 2 + dy * (y2 - y1)
    scale = face_frac * out_w / (x2 - x1)
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[0, 2] += out_w / 2 - cx
    m[1, 2] += out_h / 2 - cy
    return m


def _map_box(m: np.ndarray, box: tuple[float, ...], out_w: int, out_h: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    pts = np.array([[x1, y1, 1], [x2, y1, 1], [x1, y2, 1], [x2, y2, 1]], np.float64) @ m.T
    bx1, by1 = np.clip(pts.min(0), 0, [out_w, out_h])
    bx2, by2 = np.clip(pts.max(0), 0, [out_w, out_h])
    return float(bx1), float(by1), float(bx2), float(by2)


def _write_png(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: could not write PNG")


def _video_frames(
    real_full: np.ndarray, fake_full: np.ndarray, box: tuple[float, ...], spec: DemoSpec, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Render the same camera path (pan, zoom, slight roll) over the real and the fake photo."""
    out_w, out_h = spec.video_size
    n = max(2, round(spec.video_fps * spec.video_seconds))
    frac0, zoom = rng.uniform(0.28, 0.36), rng.uniform(0.1, 0.3)
    pan_x, pan_y = rng.uniform(-0.5, 0.5), rng.uniform(0.0, 0.4)
    roll = rng.uniform(-6, 6)
    phase = rng.uniform(0, 2 * np.pi)
    real, fake = [], []
    for i in range(n):
        t = i / (n - 1)
        frac = frac0 * (1 + zoom * t)
        m = _crop_matrix(
            box,
            out_w,
            out_h,
            frac,
            roll * math.sin(2 * np.pi * t + phase),
            pan_x * math.sin(np.pi * t + phase),
            0.25 + pan_y * math.sin(np.pi * t),
        )
        kw = {"flags": cv2.INTER_AREA, "borderMode": cv2.BORDER_REPLICATE}
        real.append(cv2.warpAffine(real_full, m, (out_w, out_h), **kw))
        fake.append(cv2.warpAffine(fake_full, m, (out_w, out_h), **kw))
    return real, fake


def _pair_rows(name: str, group: str, source: str, kind: str) -> list[dict[str, object]]:
    common = {"group_id": group, "source_id": source, "kind": kind}
    return [
        {"path": f"real/{name}", "label": 0, **common, "manipulation": ""},
        {"path": f"fake/{name}", "label": 1, **common, "manipulation": "self_blend"},
    ]


def build_demo_media(
    out_dir: str | Path, seed: int = 0, spec: DemoSpec | None = None, blend: BlendConfig = DEMO_BLEND
) -> Path:
    """Write the demo data set: ``real/`` and ``fake/`` images and videos plus ``labels.csv``.

    Each image group ``gNNN`` is one synthetic identity (a random view and look of the astronaut photo) with
    ``spec.reals_per_group`` real images (small pose/lighting jitter and sensor noise) and one self-blended fake
    per real image. Each clip ``vNNN`` is a 2 s camera move over a face, written as H.264 MP4 once from the real
    photo and once from its self-blended version. Everything is deterministic given ``seed``.

    ``labels.csv`` has the columns ``path`` (relative to the CSV's folder), ``label`` (0 real / 1 fake),
    ``group_id`` (shared by a fake and its source), ``source_id`` (the real image or clip a fake was made from)
    ``kind`` (``image`` / ``video``) and ``manipulation`` (``self_blend`` for fakes).

    Args:
        out_dir: target folder (created).
        seed: random seed.
        spec: sizes (default :class:`DemoSpec`: 40 groups x (3 real + 3 fake) images at 256 px, 3 + 3 videos).
        blend: self-blending ranges (default :data:`DEMO_BLEND`, stronger than the augmentation default).

    Returns:
        The path of ``labels.csv``.
    """
    spec = spec or DemoSpec()
    out = Path(out_dir)
    (out / "real").mkdir(parents=True, exist_ok=True)
    (out / "fake").mkdir(parents=True, exist_ok=True)
    base = _astronaut()
    rows: list[dict[str, object]] = []
    root_rng = np.random.default_rng(seed)
    size = spec.image_size
    for g in range(spec.groups):
        rng = np.random.default_rng(root_rng.integers(2**63))
        group = f"g{g:03d}"
        photo, box = _identity_variant(base, rng)
        frac, angle = rng.uniform(0.48, 0.68), rng.uniform(-12, 12)
        dx, dy = rng.uniform(-0.12, 0.12), rng.uniform(-0.1, 0.1)
        for i in range(spec.reals_per_group):
            m = _crop_matrix(
                box,
                size,
                size,
                frac * rng.uniform(0.94, 1.06),
                angle + rng.uniform(-4, 4),
                dx + rng.uniform(-0.04, 0.04),
                dy + rng.uniform(-0.04, 0.04),
            )
            img = cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
            noise = rng.normal(0, rng.uniform(0.5, 4.0), img.shape)
            img = np.clip(img.astype(np.float32) * rng.uniform(0.94, 1.06) + noise, 0, 255).astype(np.uint8)
            fake, _ = self_blend(img, rng, box=_map_box(m, box, size, size), config=blend)
            name = f"{group}_{i}.png"
            _write_png(out / "real" / name, img)
            _write_png(out / "fake" / name, fake)
            src = f"{group}_{i}"
            rows += _pair_rows(name, group, src, "image")
    for v in range(spec.videos):
        rng = np.random.default_rng(root_rng.integers(2**63))
        clip = f"v{v:03d}"
        photo, box = _identity_variant(base, rng)
        fake_photo, _ = self_blend(photo, rng, box=box, config=blend)
        real_frames, fake_frames = _video_frames(photo, fake_photo, box, spec, rng)
        name = f"{clip}.mp4"
        write_h264(out / "real" / name, real_frames, spec.video_fps, crf=20, preset="veryfast")
        write_h264(out / "fake" / name, fake_frames, spec.video_fps, crf=20, preset="veryfast")
        rows += _pair_rows(name, clip, clip, "video")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path = out / "labels.csv"
    atomic_write_text(csv_path, buf.getvalue())
    _logger.info("demo media: %d files in %s", len(rows), out)
    return csv_path


def build_demo_manifest(
    out_dir: str | Path,
    seed: int = 0,
    size: int = 256,
    *,
    media_csv: str | Path | None = None,
    spec: DemoSpec | None = None,
    num_frames: int = 8,
    detector: str = "haar",
    workers: int = 1,
) -> Path:
    """Build the demo media (unless ``media_csv`` is given) and prepare it into face crops and a manifest.

    Images are already face crops and go through without detection; the videos go through face detection
    (``detector``, default ``haar``: OpenCV's cascade, which needs no model file, so the demo stays offline;
    one face per frame, as every clip shows one person).
    Splits are group-disjoint (a fake and its source stay together), seeded with ``seed``.

    Args:
        out_dir: target folder; the media go to ``out_dir/media`` and the prepared data to ``out_dir/prepared``.
        seed: seed of the media and of the split.
        size: side of the face crops.
        media_csv: an existing ``labels.csv`` from :func:`build_demo_media` (skips building the media).
        spec: sizes of the media (default :class:`DemoSpec`).
        num_frames: frames sampled per video.
        detector: face-detector backend for the videos.
        workers: prepare's worker processes.

    Returns:
        The manifest path.
    """
    from dataclasses import replace

    from fakescope.data.adapters import VIDEO_SUFFIXES, load_records
    from fakescope.data.prepare import prepare_dataset

    out = Path(out_dir)
    if media_csv is None:
        media_csv = build_demo_media(out / "media", seed=seed, spec=spec)
    records = load_records(
        "csv", Path(media_csv), group_col="group_id", source_col="source_id", manipulation_col="manipulation"
    )
    # the images are face crops by construction; only the videos need the detector
    records = [replace(r, cropped=r.media_path.suffix.lower() not in VIDEO_SUFFIXES) for r in records]
    result = prepare_dataset(
        "csv",
        media_csv,
        out / "prepared",
        size=size,
        num_frames=num_frames,
        detector=detector,
        max_faces=1,
        workers=workers,
        seed=seed,
        records=records,
    )
    if result.n_failed:
        _logger.warning("demo prepare: %d inputs failed, see %s", result.n_failed, result.failures_path)
    return Path(result.manifest_path)
