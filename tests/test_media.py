"""Reading media: frame sampling, rotation, variable frame rate, images, and bad files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from fakescope.data.media import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    Frame,
    iter_media,
    media_kind,
    probe_video,
    read_image,
    sample_frames,
)
from fakescope.errors import MediaError

W, H = 64, 48
BITS = 8  # frame numbers up to 255 are drawn as 8 black/white vertical bars


def _frame_image(i: int, width: int = W, height: int = H) -> np.ndarray:
    img = np.zeros((height, width, 3), np.uint8)
    bar = width // BITS
    for b in range(BITS):
        if (i >> b) & 1:
            img[:, b * bar : (b + 1) * bar] = 255
    return img


def _read_number(img: np.ndarray) -> int:
    bar = img.shape[1] // BITS
    gray = img.mean(axis=2)
    return sum(1 << b for b in range(BITS) if gray[:, b * bar + 2 : (b + 1) * bar - 2].mean() > 127)


def _write_video(path: Path, n: int, gop: int = 12, fps: int = 30, rotation: int | None = None) -> Path:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.codec_context.gop_size = gop
        s.codec_context.options = {"crf": "10"}
        if rotation is not None:
            s.set_display_rotation(rotation)
        for i in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(_frame_image(i), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def numbered(tmp_path_factory) -> Path:
    """120 frames at 30 fps, a keyframe every 12 frames (B-frames on), each frame's number drawn in."""
    return _write_video(tmp_path_factory.mktemp("v") / "numbered.mp4", 120)


def _check_numbers(frames: list[Frame]) -> None:
    for f in frames:
        assert _read_number(f.image) == f.index, f"frame {f.index} shows {_read_number(f.image)}"


def test_probe(numbered):
    info = probe_video(numbered)
    assert (info.width, info.height, info.num_frames, info.rotation) == (W, H, 120, 0)
    assert info.fps == pytest.approx(30.0)
    assert info.duration == pytest.approx(4.0, abs=0.05)


@pytest.mark.parametrize("n", [1, 5, 8, 32, 119])
def test_even_sampling_exact_indices(numbered, n):
    frames = sample_frames(numbered, num_frames=n)
    expected = sorted({round(x) for x in np.linspace(0, 119, n)})
    assert [f.index for f in frames] == expected
    _check_numbers(frames)  # the decoded pixels really are those frames (seeking did not shift anything)
    for f in frames:
        assert f.timestamp == pytest.approx(f.index / 30, abs=1e-3)
        assert f.image.shape == (H, W, 3)
        assert f.image.dtype == np.uint8


def test_every_k(numbered):
    frames = sample_frames(numbered, every=25)
    assert [f.index for f in frames] == [0, 25, 50, 75, 100]
    _check_numbers(frames)


def test_per_second(numbered):
    frames = sample_frames(numbered, per_second=2)
    assert [f.index for f in frames] == list(range(0, 120, 15))
    _check_numbers(frames)


def test_all_frames_and_max_side(numbered):
    frames = sample_frames(numbered, num_frames=None, max_side=32)
    assert [f.index for f in frames] == list(range(120))
    assert frames[0].image.shape == (24, 32, 3)


def test_fewer_frames_than_asked(tmp_path):
    path = _write_video(tmp_path / "short.mp4", 7)
    frames = sample_frames(path, num_frames=32)
    assert [f.index for f in frames] == list(range(7))  # all of them, no duplicates
    _check_numbers(frames)


def test_bad_sampling_arguments(numbered):
    with pytest.raises(ValueError, match="num_frames"):
        sample_frames(numbered, num_frames=0)
    with pytest.raises(ValueError, match="every"):
        sample_frames(numbered, every=0)
    with pytest.raises(ValueError, match="threads"):
        sample_frames(numbered, threads=-1)


def test_decoder_threads_do_not_change_frames(numbered):
    one = sample_frames(numbered, num_frames=9, threads=1)
    auto = sample_frames(numbered, num_frames=9)
    assert [f.index for f in one] == [f.index for f in auto]
    for a, b in zip(one, auto, strict=True):
        np.testing.assert_array_equal(a.image, b.image)


def test_variable_frame_rate(tmp_path):
    path = tmp_path / "vfr.mp4"
    times_ms = [0, 33, 66, 100, 500, 533, 566, 1500, 1533, 2000]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(_frame_image(i), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    frames = sample_frames(path, num_frames=None)
    assert [f.index for f in frames] == list(range(10))
    assert [f.timestamp for f in frames] == pytest.approx([t / 1000 for t in times_ms], abs=2e-3)
    _check_numbers(frames)
    # two per second by time, not by frame count: t = 0, 0.5, 1.0 (-> 1.5), 2.0
    assert [f.index for f in sample_frames(path, per_second=2)] == [0, 4, 7, 9]


@pytest.mark.parametrize(("rotation", "expected_edge"), [(-90, "top"), (90, "bottom"), (180, "right")])
def test_rotation_honoured(tmp_path, rotation, expected_edge):
    # a landscape 64x48 video whose display matrix says "rotate"; frame number 1 lights the leftmost bar
    path = _write_video(tmp_path / f"rot{rotation}.mp4", 3, rotation=rotation)
    info = probe_video(path)
    assert info.rotation == rotation
    frames = sample_frames(path, num_frames=3)
    img = frames[1].image
    if rotation in (90, -90):
        assert (info.width, info.height) == (H, W)
        assert img.shape == (W, H, 3)  # stored landscape, comes out portrait
    else:
        assert img.shape == (H, W, 3)
    # the lit bar was the stored image's left edge; find which edge it is on now
    g = img.mean(axis=2)
    edges = {"top": g[:4].mean(), "bottom": g[-4:].mean(), "left": g[:, :4].mean(), "right": g[:, -4:].mean()}
    assert max(edges, key=edges.get) == expected_edge


# ------------------------------------------------------------------------------------------------------------
# Bad media
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_media(tmp_path_factory, numbered) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    good = numbered.read_bytes()
    out = {}
    out["zero bytes"] = d / "empty.mp4"
    out["zero bytes"].write_bytes(b"")
    out["truncated"] = d / "truncated.mp4"
    out["truncated"].write_bytes(good[: len(good) // 2])
    out["not a video"] = d / "notes.mp4"
    out["not a video"].write_text("this is a text file, not a video\n" * 20)
    out["directory"] = d / "folder.mp4"
    out["directory"].mkdir()
    out["missing"] = d / "missing.mp4"
    out["audio only"] = d / "audio.mp4"
    with av.open(str(out["audio only"]), "w") as c:
        s = c.add_stream("aac", rate=44100)
        for i in range(10):
            fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            fr.sample_rate, fr.pts = 44100, i * 1024
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    # valid container, every video packet overwritten with noise
    with av.open(str(numbered)) as c:
        spans = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    data = bytearray(good)
    rng = np.random.default_rng(0)
    for pos, size in spans:
        data[pos : pos + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    out["undecodable"] = d / "garbage.mp4"
    out["undecodable"].write_bytes(bytes(data))
    return out


REASONS = {
    "zero bytes": "zero bytes",
    "truncated": "truncated",
    "not a video": "not a",
    "directory": "directory",
    "missing": "not found",
    "audio only": "audio only",
    "undecodable": "decod",
}


@pytest.mark.parametrize("case", list(REASONS))
def test_bad_media_raises_media_error(bad_media, case):
    path = bad_media[case]
    with pytest.raises(MediaError) as info:
        sample_frames(path, num_frames=4)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert REASONS[case] in info.value.reason


@pytest.mark.parametrize("case", ["zero bytes", "truncated", "not a video", "directory", "missing", "audio only"])
def test_bad_media_kind_and_probe(bad_media, case):
    for fn in (media_kind, probe_video):
        with pytest.raises(MediaError, match=REASONS[case]):
            fn(bad_media[case])


def test_batch_goes_on(bad_media, numbered):
    """One bad file is recorded and skipped; the rest still finish."""
    results, failures = {}, {}
    for path in [numbered, *bad_media.values(), numbered]:
        try:
            results[path] = len(sample_frames(path, num_frames=2))
        except MediaError as exc:
            failures[exc.path] = exc.reason
    assert results == {numbered: 2}
    assert len(failures) == len(bad_media)


# ------------------------------------------------------------------------------------------------------------
# Images and sniffing
# ------------------------------------------------------------------------------------------------------------


def _pattern(h: int = 20, w: int = 30) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) * 255 // (w + h - 2)], -1).astype(np.uint8)


@pytest.mark.parametrize(
    ("fmt", "suffix", "lossless"),
    [("PNG", ".png", True), ("BMP", ".bmp", True), ("WEBP", ".webp", True), ("JPEG", ".jpg", False)],
)
def test_image_formats(tmp_path, fmt, suffix, lossless):
    arr = _pattern()
    path = tmp_path / f"img{suffix}"
    kwargs = {"lossless": True} if fmt == "WEBP" else ({"quality": 95} if fmt == "JPEG" else {})
    Image.fromarray(arr).save(path, fmt, **kwargs)
    out = read_image(path)
    assert out.shape == arr.shape
    assert out.dtype == np.uint8
    if lossless:
        np.testing.assert_array_equal(out, arr)
    else:
        assert np.abs(out.astype(int) - arr).mean() < 8
    assert media_kind(path) == "image"


def test_content_sniffing_ignores_extension(tmp_path, numbered):
    fake_video = tmp_path / "photo.mp4"
    Image.fromarray(_pattern()).save(fake_video, "PNG")
    assert media_kind(fake_video) == "image"
    frames = sample_frames(fake_video)  # a still image is one frame
    assert [f.index for f in frames] == [0]
    fake_image = tmp_path / "clip.jpg"
    fake_image.write_bytes(numbered.read_bytes())
    assert media_kind(fake_image) == "video"
    with pytest.raises(MediaError, match="not an image"):
        read_image(fake_image)


def test_exif_orientation(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :10] = 255  # left part white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "phone.jpg"
    Image.fromarray(arr).save(path, "JPEG", exif=exif, quality=95)
    out = read_image(path)
    assert out.shape == (40, 20, 3)
    assert out[:8].mean() > 200  # the white left part is now on top
    assert out[-20:].mean() < 50


def test_gray_rgba_16bit(tmp_path):
    gray = (np.arange(200).reshape(10, 20) % 256).astype(np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (10, 20, 3)
    np.testing.assert_array_equal(out[..., 0], gray)
    np.testing.assert_array_equal(out[..., 2], gray)

    rgba = np.zeros((10, 20, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:, :10, 3] = 255  # left opaque, right transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (10, 20, 3)
    assert (out[:, :10] == 200).all()
    assert (out[:, 10:] == 0).all()  # composited onto black

    g16 = (np.arange(200).reshape(10, 20) * 300).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out = read_image(tmp_path / "g16.png")
    assert out.dtype == np.uint8
    np.testing.assert_allclose(out[..., 0], g16 / 257, atol=1)

    import cv2

    rgb16 = np.zeros((10, 20, 3), np.uint16)
    rgb16[..., 2] = 65535  # BGR order for cv2: red channel full
    rgb16[..., 1] = 257 * 100
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16)
    out = read_image(tmp_path / "rgb16.png")
    np.testing.assert_allclose(out[0, 0], [255, 100, 0], atol=1)


def test_bad_images(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(_pattern(200, 200)).save(good, "JPEG")
    data = good.read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated"):
        read_image(tmp_path / "trunc.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(MediaError, match="zero bytes"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "text.png").write_text("no image here")
    with pytest.raises(MediaError, match="not an image"):
        read_image(tmp_path / "text.png")


def test_iter_media(tmp_path, numbered):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.fromarray(_pattern()).save(tmp_path / "a" / "x.png")
    Image.fromarray(_pattern()).save(tmp_path / "a" / "b" / "y.JPG", "JPEG")
    (tmp_path / "a" / "b" / "v.mp4").write_bytes(numbered.read_bytes())
    (tmp_path / "a" / "notes.txt").write_text("skip me")
    (tmp_path / "a" / ".hidden").mkdir()
    Image.fromarray(_pattern()).save(tmp_path / "a" / ".hidden" / "z.png")
    found = iter_media(tmp_path / "a")
    assert [p.name for p in found] == ["v.mp4", "y.JPG", "x.png"]
    assert iter_media(str(tmp_path / "a" / "*.png")) == [tmp_path / "a" / "x.png"]
    with pytest.raises(MediaError, match="not found"):
        iter_media(tmp_path / "nothing_here.mp4")
    assert ".png" in IMAGE_SUFFIXES
    assert ".mp4" in VIDEO_SUFFIXES
