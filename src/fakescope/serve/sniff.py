"""Content sniffing of uploads: decide image or video from the first bytes, never from the file name.

Recognised: JPEG, PNG, WebP, BMP, GIF (images); MP4/M4V/3GP and QuickTime MOV (ISO-BMFF ``ftyp``), Matroska and
WebM (EBML), AVI (RIFF) (videos). Everything else is unknown, including ISO-BMFF still images (HEIC/AVIF).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SNIFF_BYTES = 64
"""How many leading bytes :func:`sniff` needs."""

SUPPORTED = "JPEG, PNG, WebP, BMP, GIF images; MP4, MOV, Matroska (MKV), WebM, AVI videos"

_IMAGE_BRANDS = {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}


@dataclass(frozen=True)
class Sniffed:
    """What an upload is.

    Attributes:
        kind: ``"image"`` or ``"video"``.
        format: short format name (``"jpeg"``, ``"mp4"``, ...).
        suffix: the canonical file suffix the server stores it under (``".jpg"``, ``".mp4"``, ...).
    """

    kind: Literal["image", "video"]
    format: str
    suffix: str


def sniff(head: bytes) -> Sniffed | None:
    """Identify a media file from its first :data:`SNIFF_BYTES` bytes; ``None`` when it is not supported."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "jpeg", ".jpg")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "png", ".png")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "gif", ".gif")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "webp", ".webp")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Sniffed("video", "avi", ".avi")
    if (
        head[:2] == b"BM"
        and len(head) >= 26
        and int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64, 108, 124)
    ):
        # "BM" alone is too weak (plain text can start with it); also require a known DIB header size.
        return Sniffed("image", "bmp", ".bmp")
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return None
        if brand == b"qt  ":
            return Sniffed("video", "mov", ".mov")
        return Sniffed("video", "mp4", ".mp4")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        if b"webm" in head[:SNIFF_BYTES]:
            return Sniffed("video", "webm", ".webm")
        return Sniffed("video", "matroska", ".mkv")
    return None
