"""Decoding less: unreferenced frames skipped between wanted ones, and the opt-in keyframes sampling."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from fakescope.data.media import iter_frames, sample_frames


def _write_numbered(path: Path, n: int = 90, gop: int = 30) -> Path:
    """An H.264 clip with B-frames; frame ``i`` is a distinct noise picture (seeded)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.gop_size = gop
        s.codec_context.options = {"crf": "18", "bframes": "3"}
        for i in range(n):
            img = np.roll(base, i, axis=1)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return _write_numbered(tmp_path_factory.mktemp("skip") / "clip.mp4")


def _count_decoded(path: Path, skip: str) -> int:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.skip_frame = skip
        return sum(1 for _ in c.decode(s))


def _assert_same(a, b) -> None:
    assert [f.index for f in a] == [f.index for f in b]
    assert [f.timestamp for f in a] == [f.timestamp for f in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.image, y.image)


def test_clip_has_frames_to_skip(clip):
    # the premise of the next tests: this clip holds unreferenced frames FFmpeg can drop
    assert _count_decoded(clip, "NONREF") < _count_decoded(clip, "DEFAULT") == 90


@pytest.mark.parametrize("num_frames", [1, 2, 7, 32, 45, None])
@pytest.mark.parametrize("threads", [1, None])
def test_skipping_keeps_the_same_frames(clip, num_frames, threads):
    full = sample_frames(clip, num_frames=num_frames, skip_nonref=False, threads=threads)
    fast = sample_frames(clip, num_frames=num_frames, threads=threads)
    _assert_same(full, fast)


@pytest.mark.parametrize(("every", "per_second"), [(4, None), (None, 3.0)])
def test_skipping_keeps_the_same_frames_for_every_and_per_second(clip, every, per_second):
    full = sample_frames(clip, every=every, per_second=per_second, skip_nonref=False)
    _assert_same(full, sample_frames(clip, every=every, per_second=per_second))


def test_iter_frames_equals_sample_frames(clip):
    _assert_same(list(iter_frames(clip, num_frames=10)), sample_frames(clip, num_frames=10))


def test_keyframes_mode_is_opt_in_and_gives_keyframes(clip):
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        packets = sorted((p.pts, p.is_keyframe) for p in c.demux(s) if p.size)
    keys = [i for i, (_, k) in enumerate(packets) if k]
    assert len(keys) == 3  # gop 30 over 90 frames
    assert [f.index for f in sample_frames(clip, num_frames=32)] != keys  # the default is not keyframes
    got = sample_frames(clip, num_frames=32, keyframes=True)
    assert [f.index for f in got] == keys
    full = {f.index: f for f in sample_frames(clip, num_frames=None, skip_nonref=False)}
    for f in got:  # a keyframe decodes to the same pixels as in a full decode
        np.testing.assert_array_equal(f.image, full[f.index].image)
    assert [f.index for f in sample_frames(clip, num_frames=2, keyframes=True)] == [keys[0], keys[-1]]
    with pytest.raises(ValueError, match="keyframes"):
        sample_frames(clip, every=3, keyframes=True)


def test_dev_videos_same_frames_with_skipping(dev_videos):
    for video in dev_videos:
        full = sample_frames(video, num_frames=32, skip_nonref=False)
        _assert_same(full, sample_frames(video, num_frames=32))
