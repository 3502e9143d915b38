"""Reading media: images and sampled video frames, always as upright 8-bit RGB arrays.

Images go through Pillow (JPEG, PNG, WebP, BMP and whatever else Pillow reads): EXIF orientation is applied,
grayscale / palette / CMYK / 16-bit images become 8-bit RGB, and an alpha channel is composited onto black.

Videos go through PyAV (FFmpeg) with frame threading. :func:`sample_frames` first demuxes the stream without
decoding (cheap) to learn the exact presentation timestamps and keyframe positions, then decodes sequentially
and keeps only the wanted frames. It seeks only when a keyframe lies between the last decoded frame and the next
wanted one, so it never decodes more frames than a plain sequential pass would (seeking to every frame was about
10x slower on long-GOP videos). Between wanted frames FFmpeg skips the frames no other frame refers to
(``skip_frame=NONREF``), which does not change a single pixel of the wanted ones; the opt-in keyframes sampling
decodes keyframes only (``NONKEY``). :func:`iter_frames` yields the frames one at a time. Frame indices follow
presentation order and timestamps come from ``pts`` and the stream's time base, so variable-frame-rate videos
are handled. The display matrix (phone videos stored
1920x1080 with a 90-degree rotation) is honoured.

Anything unusable (missing, a folder, zero bytes, truncated, not an image or video, audio only, no decodable
frame) raises :class:`fakescope.errors.MediaError` naming the file and the reason. The kind of a file is found
by sniffing its content, never by trusting its extension.
"""

from __future__ import annotations

import bisect
import glob
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, ParamSpec

import numpy as np

from fakescope.errors import MediaError
from fakescope.utils.io import atomic_path

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "Frame",
    "VideoInfo",
    "iter_frames",
    "iter_media",
    "media_kind",
    "probe_video",
    "read_image",
    "sample_frames",
    "scan_media",
]

_logger = logging.getLogger(__name__)
P = ParamSpec("P")

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
VIDEO_SUFFIXES: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}
)

#: Images and video frames are decoded to at most this many pixels on their longer side, so the memory one file
#: takes does not grow with its resolution (a 1080p frame is below it; faces stay far above a detector's input).
MAX_WORKING_SIDE = 2048
#: Images that declare more pixels than this are refused before any decoding (JPEGs up to it decode reduced).
MAX_IMAGE_PIXELS = 256_000_000
#: Images decoded at full size (every format but JPEG) may have at most this many pixels (~150 MB as RGB).
MAX_DECODE_PIXELS = 50_000_000
#: Video frames of more than this many pixels are refused (8K UHD, 33 megapixels, is accepted).
MAX_FRAME_PIXELS = 70_000_000

_STILL_IMAGE_DEMUXERS = frozenset({"image2", "image2pipe", "tty", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe"})

_IMAGE_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n"),  # PNG
    (0, b"BM"),  # BMP
    (0, b"GIF8"),  # GIF
    (0, b"II*\x00"),  # TIFF little endian
    (0, b"MM\x00*"),  # TIFF big endian
)


@dataclass
class Frame:
    """One decoded video frame (or a still image seen as frame 0).

    Attributes:
        index: frame number in presentation order, starting at 0.
        timestamp: seconds since the first frame (from ``pts`` and the stream time base).
        image: ``H,W,3`` uint8 RGB, upright.
    """

    index: int
    timestamp: float
    image: np.ndarray


@dataclass
class VideoInfo:
    """What :func:`probe_video` learns about a video.

    Attributes:
        width: displayed width in pixels (after rotation).
        height: displayed height in pixels (after rotation).
        fps: average frame rate (frames per second); for variable frame rate, frames / duration.
        num_frames: number of frames (from the container, or counted by demuxing when the container omits it).
        duration: seconds.
        rotation: counter-clockwise rotation in degrees applied to stored frames to show them upright
            (0, 90, 180 or -90).
    """

    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    rotation: int


# ----------------------------------------------------------------------------------------------------------------
# Sniffing and listing
# ----------------------------------------------------------------------------------------------------------------


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(path, "file not found")
    if path.is_dir():
        raise MediaError(path, "is a directory, not a media file")
    if not path.is_file():
        raise MediaError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(path, "zero bytes (empty file)")


def _looks_like_image(head: bytes) -> bool:
    if any(head[off : off + len(magic)] == magic for off, magic in _IMAGE_MAGIC):
        return True
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _looks_like_video(head: bytes) -> bool:
    return (
        head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free")  # MP4 / MOV / 3GP
        or head[:4] == b"\x1a\x45\xdf\xa3"  # Matroska / WebM
        or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
        or head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")  # MPEG-PS
        or head[:3] == b"FLV"
        or head[:4] == b"\x30\x26\xb2\x75"  # ASF / WMV
    )


def media_kind(path: str | Path) -> Literal["image", "video"]:
    """Tell whether ``path`` is an image or a video by its content (not its extension).

    Images are recognised by their magic bytes (JPEG, PNG, WebP, BMP, GIF, TIFF) or by Pillow; anything else
    must open in FFmpeg with at least one video stream.

    Raises:
        MediaError: missing, a directory, empty, audio only, or neither an image nor a video.
    """
    path = Path(path)
    _check_file(path)
    with open(path, "rb") as f:
        head = f.read(32)
    if _looks_like_image(head):
        return "image"
    import av

    try:
        with av.open(str(path)) as container:
            # FFmpeg picks its still-image demuxers from the file name alone (a text file named .jpg opens as
            # "image2"): content with no image magic is never taken as a one-frame "video" that way.
            still = container.format.name in _STILL_IMAGE_DEMUXERS
            if container.streams.video and not still:
                return "video"
            if container.streams.audio and not still:
                raise MediaError(path, "audio only, no video stream")
            if not still:
                raise MediaError(path, "no video stream")
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        if _looks_like_video(head):
            raise MediaError(path, f"corrupt or truncated video ({_short(exc)})") from exc
    # Last chance: an image format without a magic number Pillow still knows.
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.verify()
        return "image"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        pass
    raise MediaError(path, "not an image or video (unrecognised content)")


def _walk(folder: Path, known: frozenset[str], out: dict[Path, str | None]) -> None:
    """Media files below ``folder`` (symlinks not followed into folders); unreadable parts become error rows."""

    def onerror(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        out.setdefault(where, f"cannot read folder ({exc.strerror or exc})")

    for dirpath, dirnames, filenames in os.walk(folder, onerror=onerror, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for d in dirnames:
            if Path(d).suffix.lower() in known:  # a folder named like a media file: report it, do not hide it
                out.setdefault(base / d, "is a directory, not a media file")
        for name in sorted(filenames):
            f = base / name
            if name.startswith(".") or f.suffix.lower() not in known:
                continue
            if f.is_symlink() and not f.exists():
                out.setdefault(f, "broken symbolic link or symlink loop")
            else:
                out.setdefault(f, None)
        # symlinked folders (os.walk lists them in dirnames but does not enter them) are skipped on purpose


def scan_media(paths: str | Path | Iterable[str | Path]) -> list[tuple[Path, str | None]]:
    """Expand files, folders (recursively) and glob patterns into ``(path, error)`` pairs, one per input found.

    Files named explicitly are kept whatever their suffix (their content decides later); inside folders and globs
    only files with an image or video suffix are kept, and hidden files and folders are skipped. Nothing found
    is dropped silently: a missing path, a broken link or symlink loop, a folder named like a media file and an
    unreadable folder each come back with the reason in ``error`` (None for a file to analyse).
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    known = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    out: dict[Path, str | None] = {}
    for item in paths:
        p = Path(item)
        if p.is_symlink() and not p.exists():
            out.setdefault(p, "broken symbolic link or symlink loop")
        elif p.is_dir():
            if p.suffix.lower() in known:
                out.setdefault(p, "is a directory, not a media file")
            else:
                found: dict[Path, str | None] = {}
                _walk(p, known, found)
                for f in sorted(found):  # one sorted listing per folder, as a recursive glob gives
                    out.setdefault(f, found[f])
        elif p.exists():
            out.setdefault(p, None)
        else:
            matches = sorted(glob.glob(str(item), recursive=True))
            if not matches:
                out.setdefault(p, "file not found")
            for m in matches:
                mp = Path(m)
                if mp.suffix.lower() in known and (mp.is_file() or mp.is_dir() or mp.is_symlink()):
                    out.setdefault(mp, None if mp.is_file() else "not a regular media file")
    return list(out.items())


def iter_media(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The files of :func:`scan_media` that can be analysed (inputs with an error are left out).

    Raises:
        MediaError: an explicit path that does not exist and matches no glob.
    """
    found = scan_media(paths)
    for p, err in found:
        if err == "file not found":
            raise MediaError(p, err)
    return [p for p, err in found if err is None]


# ----------------------------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------------------------


def _to_rgb8(img) -> np.ndarray:

    mode = img.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img)
        if mode == "F":
            arr = np.clip(arr, 0.0, 1.0 if arr.max() <= 1.0 else 255.0)
            scale = 255.0 if arr.max() <= 1.0 else 1.0
            gray = (arr * scale).round().astype(np.uint8)
        else:
            arr = arr.astype(np.int64)
            gray = (
                (np.clip(arr, 0, 65535) / 257.0).round().astype(np.uint8) if arr.max() > 255 else arr.astype(np.uint8)
            )
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:4] / 255.0
        return (rgba[..., :3] * alpha).round().astype(np.uint8)  # composited onto black
    if mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def _pixel_limit(path: Path, width: int, height: int, limit: int, what: str) -> None:
    if width * height > limit:
        raise MediaError(
            path,
            f"{what} is {width}x{height} ({width * height / 1e6:.0f} megapixels), above the limit of "
            f"{limit / 1e6:.0f} megapixels",
        )


def read_image(path: str | Path, max_side: int | None = MAX_WORKING_SIDE) -> np.ndarray:
    """Read an image as ``H,W,3`` uint8 RGB, upright, at most ``max_side`` pixels on its longer side.

    EXIF orientation is applied. Grayscale and palette images are expanded to RGB, 16-bit images are scaled to
    8 bits (value / 257), and an alpha channel is composited onto black (transparent pixels become black, like
    the padding of face crops). Memory stays bounded whatever the declared size: a JPEG larger than ``max_side``
    is decoded at a reduced scale (libjpeg's DCT scaling), other formats are decoded in full only up to
    :data:`MAX_DECODE_PIXELS`, and nothing above :data:`MAX_IMAGE_PIXELS` is decoded at all.

    Raises:
        MediaError: missing, a directory, empty, truncated, too large, a decompression bomb or not an image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as img:
            w, h = img.size
            _pixel_limit(path, w, h, MAX_IMAGE_PIXELS, "image")
            if max_side and max(w, h) > max_side and img.format == "JPEG":
                scale = max_side / max(w, h)
                img.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
            _pixel_limit(path, *img.size, MAX_DECODE_PIXELS, f"{img.format or 'this'} image")
            img.load()
            img = ImageOps.exif_transpose(img)
            arr = _to_rgb8(img)
        if max_side and max(arr.shape[:2]) > max_side:
            import cv2

            tw, th = _fit_size(arr.shape[1], arr.shape[0], max_side)
            arr = cv2.resize(arr, (tw, th), interpolation=cv2.INTER_AREA)
        return arr
    except Image.DecompressionBombError as exc:
        raise MediaError(path, f"refused as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise MediaError(path, "not an image (unrecognised content)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason:
            reason = "truncated image"
        raise MediaError(path, f"cannot decode image ({reason})") from exc


# ----------------------------------------------------------------------------------------------------------------
# Videos
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class _StreamTable:
    """Presentation timestamps of every frame and the keyframe positions, learned by demuxing."""

    pts: list[int]  # sorted presentation timestamps, one per frame (empty when the container gives none)
    keyframes: list[int]  # frame indices (into pts) of keyframes, sorted
    time_base: float
    count: int  # number of frames (== len(pts) when pts are known)


def _open(path: Path):
    import av

    _check_file(path)
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        with open(path, "rb") as f:
            head = f.read(32)
        if _looks_like_image(head):
            raise MediaError(path, "is an image, not a video") from exc
        if _looks_like_video(head):
            raise MediaError(path, f"corrupt or truncated video ({_short(exc)})") from exc
        raise MediaError(path, f"not a video or unreadable container ({_short(exc)})") from exc
    except (OSError, ValueError) as exc:
        raise MediaError(path, f"cannot open ({_short(exc)})") from exc
    if not container.streams.video:
        has_audio = bool(container.streams.audio)
        container.close()
        raise MediaError(path, "audio only, no video stream" if has_audio else "no video stream")
    return container


def _short(exc: BaseException) -> str:
    msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return msg.split(":")[0].strip() if len(msg) > 80 else msg


def _scan(path: Path, container) -> _StreamTable:
    """Demux (no decoding) to collect frame timestamps and keyframes."""
    import av

    stream = container.streams.video[0]
    tb = float(stream.time_base) if stream.time_base else 0.0
    entries: list[tuple[int, bool]] = []
    n_packets = 0
    missing_pts = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.is_discard:
                continue
            n_packets += 1
            if packet.pts is None:
                missing_pts = True
            else:
                entries.append((packet.pts, packet.is_keyframe))
    except av.FFmpegError as exc:
        if n_packets == 0:
            raise MediaError(path, f"no readable video data ({_short(exc)})") from exc
        _logger.warning("%s: stream ends early (%s); using the %d frames before it", path, _short(exc), n_packets)
    if n_packets == 0:
        raise MediaError(path, "video stream holds no frames")
    if missing_pts or not tb:
        return _StreamTable(pts=[], keyframes=[], time_base=tb, count=n_packets)
    entries.sort()
    pts = [p for p, _ in entries]
    keyframes = [i for i, (_, k) in enumerate(entries) if k]
    return _StreamTable(pts=pts, keyframes=keyframes, time_base=tb, count=len(pts))


def _rotation_of(frame) -> int:
    try:
        rot = round(frame.rotation)
    except (AttributeError, TypeError, ValueError):
        return 0
    rot = ((rot + 180) % 360) - 180
    if rot == -180:
        rot = 180
    if rot not in (0, 90, -90, 180):
        _logger.warning("rotation of %d degrees is not a multiple of 90; ignored", rot)
        return 0
    return rot


def _rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate ``image`` counter-clockwise by ``rotation`` degrees (a multiple of 90) to make it upright."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=k)) if k else image


def _fit_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    # even sizes keep swscale happy with subsampled chroma
    return max(2, round(width * s / 2) * 2), max(2, round(height * s / 2) * 2)


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video's size, frame rate, frame count, duration and rotation (decodes at most one frame).

    Raises:
        MediaError: the file is not a readable video.
    """
    import av

    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        num = int(stream.frames or 0)
        tb = float(stream.time_base) if stream.time_base else 0.0
        duration = float(stream.duration * tb) if stream.duration and tb else 0.0
        if not duration and container.duration:
            duration = container.duration / av.time_base
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        if num <= 0:
            num = _scan(path, container).count
            container.seek(0)
        if not fps and duration:
            fps = num / duration
        if not duration and fps:
            duration = num / fps
        rotation = 0
        try:
            for frame in container.decode(stream):
                rotation = _rotation_of(frame)
                break
        except av.FFmpegError as exc:
            raise MediaError(path, f"cannot decode video frames ({_short(exc)})") from exc
        w, h = stream.codec_context.width, stream.codec_context.height
        if rotation in (90, -90):
            w, h = h, w
        return VideoInfo(width=w, height=h, fps=fps, num_frames=num, duration=duration, rotation=rotation)
    finally:
        container.close()


def _wanted_indices(
    table: _StreamTable,
    fps: float,
    num_frames: int | None,
    every: int | None,
    per_second: float | None,
) -> list[int]:
    n = table.count
    given = sum(x is not None for x in (num_frames, every, per_second))
    if given > 1:
        raise ValueError("give only one of num_frames, every, per_second")
    if every is not None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        return list(range(0, n, every))
    if per_second is not None:
        if per_second <= 0:
            raise ValueError(f"per_second must be > 0, got {per_second}")
        if table.pts:
            times = [(p - table.pts[0]) * table.time_base for p in table.pts]
        else:
            times = [i / fps for i in range(n)] if fps else [float(i) for i in range(n)]
        out: list[int] = []
        step = 1.0 / per_second
        eps = 1e-6
        k = 0
        while True:
            i = bisect.bisect_left(times, k * step - eps)
            if i >= n:
                break
            out.append(i)
            # next target: the first multiple of the step after the frame just taken (skips gaps in VFR streams)
            k = max(k + 1, int(np.floor((times[i] + eps) / step)) + 1)
        return out
    if num_frames is None:
        return list(range(n))
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if num_frames >= n:
        return list(range(n))
    return sorted({round(x) for x in np.linspace(0, n - 1, num_frames)})


def _keyframe_indices(table: _StreamTable, num_frames: int | None) -> list[int]:
    """At most ``num_frames`` keyframes, evenly spaced among the video's keyframes (all of them when fewer)."""
    keys = table.keyframes or [0]
    if num_frames is None or num_frames >= len(keys):
        return list(keys)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return sorted({keys[round(x)] for x in np.linspace(0, len(keys) - 1, num_frames)})


def _plan(
    path: Path, num_frames: int | None, every: int | None, per_second: float | None, keyframes: bool
) -> tuple[_StreamTable, list[int], float]:
    """Demux once: the stream table, the wanted frame indices and the frame rate."""
    if keyframes and (every is not None or per_second is not None):
        raise ValueError("keyframes sampling takes num_frames only, not every or per_second")
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        table = _scan(path, container)
    finally:
        container.close()
    if keyframes:
        if not table.pts:
            raise MediaError(path, "keyframes sampling needs frame timestamps, which this video lacks")
        wanted = _keyframe_indices(table, num_frames)
    else:
        wanted = _wanted_indices(table, fps, num_frames, every, per_second)
    if not wanted:
        raise MediaError(path, "no frames to sample")
    return table, wanted, fps


class _WantedDecoder:
    """Sequential decoding of the wanted frames of one video (see :func:`iter_frames`)."""

    def __init__(self, path: Path, table: _StreamTable, wanted: list[int], fps: float, skip: str | None) -> None:
        self.path, self.table, self.wanted, self.fps = path, table, wanted, fps
        self.wanted_set = set(wanted)
        # frames no other frame needs are skipped between wanted ones: only with known pts (to tell them apart)
        self.skip = skip if table.pts else None
        self.wanted_pts = {table.pts[i] for i in wanted} if table.pts else set()
        self.pts_index = {p: i for i, p in enumerate(table.pts)}
        self.first_pts = table.pts[0] if table.pts else 0
        self.w_pos = 0  # position in wanted of the next frame to deliver
        self.counter = -1  # index of the last frame decoded (sequential counting, used when pts are unknown)
        self.last_index = -1
        self.n_errors = 0
        self.n_frames = 0

    def seek_target(self) -> int | None:
        """A keyframe strictly after the last decoded frame and at or before the next wanted one, else None."""
        if not self.table.pts or not self.table.keyframes:
            return None
        k = bisect.bisect_right(self.table.keyframes, self.wanted[self.w_pos]) - 1
        if k < 0:
            return None
        kf = self.table.keyframes[k]
        return kf if kf > self.last_index + 1 else None

    def accept(self, frame) -> int | None:
        """The index of a decoded frame when it is a wanted one (advances the state), else None."""
        self.counter += 1
        if self.table.pts and frame.pts is not None:
            idx = self.pts_index.get(frame.pts)
            if idx is None:
                return None
        else:
            idx = self.counter
        if idx <= self.last_index:
            return None
        self.last_index = idx
        return idx if idx in self.wanted_set else None

    def advance(self) -> bool:
        """Move past the wanted frames already decoded; True when all are done."""
        while self.w_pos < len(self.wanted) and self.wanted[self.w_pos] <= self.last_index:
            self.w_pos += 1
        return self.w_pos >= len(self.wanted)

    def timestamp(self, frame, idx: int) -> float:
        """Seconds since the first frame."""
        if frame.pts is not None and self.table.pts:
            return float((frame.pts - self.first_pts) * self.table.time_base)
        return idx / self.fps if self.fps else 0.0

    def skip_mode(self, packet) -> str:
        """FFmpeg's ``skip_frame`` for this packet: decode wanted frames in full, skip what the mode allows."""
        if self.skip is None or packet.pts is None or packet.pts in self.wanted_pts:
            return "DEFAULT"
        return self.skip


def _decode_wanted(path: Path, dec: _WantedDecoder, max_side: int | None, threads: int | None) -> Iterator[Frame]:
    import av

    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        cc = stream.codec_context
        _pixel_limit(path, cc.width, cc.height, MAX_FRAME_PIXELS, "each video frame")
        if threads:
            cc.thread_count = int(threads)
        out_w, out_h = _fit_size(cc.width, cc.height, max_side)
        resize = (out_w, out_h) != (cc.width, cc.height)
        skip_now = "DEFAULT"
        done = False
        while not done:
            kf = dec.seek_target()
            if kf is not None:
                container.seek(dec.table.pts[kf], stream=stream, backward=True, any_frame=False)
                _logger.debug("%s: seek to frame %d for frame %d", path, kf, dec.wanted[dec.w_pos])
            restarted = False
            try:
                for packet in container.demux(stream):
                    mode = dec.skip_mode(packet)
                    if mode != skip_now:  # read by FFmpeg when the packet is sent, also with frame threads
                        cc.skip_frame = skip_now = mode
                    try:
                        decoded = packet.decode()
                    except av.FFmpegError as exc:
                        dec.n_errors += 1
                        _logger.debug("%s: undecodable packet (%s)", path, _short(exc))
                        continue
                    for frame in decoded:
                        idx = dec.accept(frame)
                        if idx is not None:
                            fmt = frame.reformat(
                                width=out_w if resize else None,
                                height=out_h if resize else None,
                                format="rgb24",
                                interpolation="AREA" if resize else None,
                            )
                            image = _rotate(fmt.to_ndarray(), _rotation_of(frame))
                            dec.n_frames += 1
                            yield Frame(index=idx, timestamp=dec.timestamp(frame, idx), image=image)
                        if dec.advance():
                            done = True
                            break
                        if dec.seek_target() is not None:
                            restarted = True
                            break
                    if done or restarted:
                        break
            except av.FFmpegError as exc:
                dec.n_errors += 1
                _logger.warning("%s: decoding stopped early (%s)", path, _short(exc))
                break
            if not restarted:
                break
    finally:
        container.close()


def iter_frames(
    path: str | Path,
    num_frames: int | None = 32,
    every: int | None = None,
    per_second: float | None = None,
    max_side: int | None = MAX_WORKING_SIDE,
    threads: int | None = None,
    *,
    keyframes: bool = False,
    skip_nonref: bool = True,
) -> Iterator[Frame]:
    """Decode selected frames of a video as upright RGB images, one at a time.

    Exactly one sampling mode applies: ``every`` (every k-th frame: 0, k, 2k, ...), ``per_second`` (the first
    frame at or after each multiple of ``1/per_second`` seconds), ``keyframes`` (at most ``num_frames`` of the
    video's keyframes, evenly spaced among them: the cheapest to decode, but other frames than the default), or
    else ``num_frames`` evenly spaced frames including the first and last (``None``: all frames). A video with
    fewer frames than asked gives all of its frames, never duplicates. Still images are accepted too and give one
    frame.

    Decoding is sequential, and between wanted frames FFmpeg skips the frames no other frame refers to
    (``skip_frame=NONREF``; ``NONKEY`` in keyframes mode): the wanted frames decode to the same pixels as in a
    full decode, for about half the work on typical H.264 with B-frames.

    Args:
        path: the video (or image) file.
        num_frames: number of evenly spaced frames (default 32); ignored when ``every`` or ``per_second`` is set.
        every: keep every k-th frame.
        per_second: keep this many frames per second of video time.
        max_side: downscale (keeping the aspect ratio) during decoding so the longer side is at most this
            (default :data:`MAX_WORKING_SIDE`, so memory per frame does not grow with the video's resolution;
            None: full resolution). Frames of more than :data:`MAX_FRAME_PIXELS` are refused.
        threads: decoder threads (None or 0: FFmpeg's choice, one per core). Parallel workers set 1 so that they
            do not compete for the same cores; the frames are the same either way.
        keyframes: sample keyframes only (opt-in: it changes which frames are seen).
        skip_nonref: skip unreferenced frames between wanted ones (False: decode every frame, as before).

    The generator holds one decoded frame at a time, so a consumer that drops each frame after use (the
    prediction pipeline) needs memory for a few frames, not for all of them. :func:`sample_frames` takes the same
    arguments and returns the list. Errors surface on the first ``next()``.

    Yields:
        Frames in presentation order with their index and timestamp (seconds since the first frame). Frames that
        fail to decode are left out (logged); the rest are yielded.

    Raises:
        MediaError: the file is not a readable video (or image), or no wanted frame could be decoded.
        ValueError: bad sampling arguments.
    """
    if every is not None or per_second is not None:
        num_frames = None
    if threads is not None and threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    path = Path(path)
    _check_file(path)
    with open(path, "rb") as f:
        head = f.read(32)
    if _looks_like_image(head):
        yield Frame(index=0, timestamp=0.0, image=read_image(path, max_side=max_side))
        return
    table, wanted, fps = _plan(path, num_frames, every, per_second, keyframes)
    skip = "NONKEY" if keyframes else ("NONREF" if skip_nonref else None)
    dec = _WantedDecoder(path, table, wanted, fps, skip)
    yield from _decode_wanted(path, dec, max_side, threads)
    if dec.n_errors:
        _logger.warning(
            "%s: %d undecodable packet(s); returned %d of %d wanted frames",
            path,
            dec.n_errors,
            dec.n_frames,
            len(wanted),
        )
    if not dec.n_frames:
        raise MediaError(path, "no decodable video frames")


def _collected(frames: Callable[P, Iterator[Frame]]) -> Callable[P, list[Frame]]:
    """A function taking the arguments of the frame generator ``frames`` and returning all its frames as a list."""

    def collected(*args: P.args, **kwargs: P.kwargs) -> list[Frame]:
        return list(frames(*args, **kwargs))

    collected.__signature__ = inspect.signature(frames).replace(return_annotation="list[Frame]")  # type: ignore[attr-defined]
    return collected


sample_frames = _collected(iter_frames)
sample_frames.__name__ = sample_frames.__qualname__ = "sample_frames"
sample_frames.__doc__ = """Decode selected frames of a video as upright RGB images: :func:`iter_frames` as a list.

Arguments, sampling modes and errors are those of :func:`iter_frames`.

Returns:
    Frames in presentation order with their index and timestamp (seconds since the first frame). Frames that fail
    to decode are left out (logged); the rest are returned.
"""


def write_h264(path: str | Path, frames: list[np.ndarray], fps: float, crf: int = 23, preset: str = "medium") -> Path:
    """Encode RGB frames as H.264 (yuv420p, libx264, constant rate factor ``crf``) into an MP4, atomically.

    x264's macroblock tree (``mbtree``) is switched off: with it, the same frames encoded twice in one process
    (or in two processes) gave different bytes and different decoded pixels, which made every result computed
    from an encoded clip (the demo data, the video attack's re-encoding) irreproducible. Without it the output
    is a function of the frames and the settings only. Odd sides are cropped by one pixel (yuv420p needs even
    sides); ``fps`` is rounded to a whole rate (25 if unknown).
    """
    import av

    h, w = frames[0].shape[:2]
    h2, w2 = h - h % 2, w - w % 2
    rate = max(1, round(fps)) if fps else 25
    path = Path(path)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": preset, "x264-params": "mbtree=0"}
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h2, :w2]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
