"""Self-blending and the built-in demo data."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from fakescope.data.synth import ASTRONAUT_FACE_BOX, BlendConfig, face_mask, self_blend


def _face(astronaut: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in ASTRONAUT_FACE_BOX)
    side = int((x2 - x1) * 1.6)
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    top = max(0, cy - side // 2)
    return np.ascontiguousarray(astronaut[top : top + side, cx - side // 2 : cx + side // 2])


def test_self_blend_is_deterministic_and_changes_only_the_masked_face(astronaut: np.ndarray) -> None:
    face = _face(astronaut)
    fake, mask = self_blend(face, np.random.default_rng(7))
    again, mask_again = self_blend(face, np.random.default_rng(7))
    other, _ = self_blend(face, np.random.default_rng(8))
    assert fake.dtype == np.uint8 and fake.shape == face.shape
    assert mask.dtype == np.float32 and mask.shape == face.shape[:2]
    assert np.array_equal(fake, again) and np.array_equal(mask, mask_again)
    assert not np.array_equal(fake, other)
    assert mask.min() >= 0.0 and mask.max() <= 1.0 + 1e-6 and mask.max() >= 0.5
    diff = np.abs(fake.astype(int) - face.astype(int)).sum(-1)
    outside, inside = mask < 1e-3, mask > 0.4
    assert diff[outside].max() <= 1  # untouched (up to rounding) where the mask is zero
    assert diff[inside].mean() > 5  # visibly altered inside the face
    h, w = mask.shape
    assert mask[h // 2, w // 2] > 0.4 and mask[0, 0] < 1e-3 and mask[-1, -1] < 1e-3  # centred on the face


def test_face_mask_from_landmarks_follows_their_hull() -> None:
    pts = np.array([[30, 30], [70, 30], [70, 80], [30, 80]], np.float32)
    mask = face_mask((100, 100), np.random.default_rng(0), landmarks=pts, blur=(0.02, 0.02))
    assert mask[55, 50] > 0.9 and mask[5, 5] < 1e-3 and mask[95, 95] < 1e-3


def test_self_blend_rejects_non_rgb_uint8() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        self_blend(np.zeros((32, 32), np.uint8), np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8 RGB"):
        self_blend(np.zeros((32, 32, 3), np.float32), np.random.default_rng(0))


def test_blend_config_controls_strength(astronaut: np.ndarray) -> None:
    face = _face(astronaut)
    faint = BlendConfig(blend_ratios=(0.1,), hue=0, saturation=0, contrast=0, brightness=0, rgb_shift=2.0)
    weak, _ = self_blend(face, np.random.default_rng(1), config=faint)
    strong, _ = self_blend(face, np.random.default_rng(1))
    d = lambda a: np.abs(a.astype(int) - face.astype(int)).mean()  # noqa: E731
    assert d(weak) < d(strong)


def test_demo_media_layout(demo_media: Path) -> None:
    rows = list(csv.DictReader(demo_media.open()))
    assert {"path", "label", "group_id", "source_id"} <= set(rows[0])
    for row in rows:
        assert (demo_media.parent / row["path"]).is_file()
        assert row["path"].split("/")[0] == ("real" if row["label"] == "0" else "fake")
    fakes = [r for r in rows if r["label"] == "1"]
    reals = {r["source_id"]: r for r in rows if r["label"] == "0"}
    assert len(fakes) == len(reals) and len(rows) >= 200
    for fake in fakes:  # every fake has a real source in the same group
        assert reals[fake["source_id"]]["group_id"] == fake["group_id"]
    videos = [r for r in rows if r["path"].endswith(".mp4")]
    assert len(videos) >= 4 and {r["label"] for r in videos} == {"0", "1"}


def test_demo_videos_decode(demo_media: Path) -> None:
    import av

    video = next((demo_media.parent / "fake").glob("*.mp4"))
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        codec = stream.codec_context.name
    assert codec == "h264" and len(frames) >= 20 and 240 <= max(frames[0].shape[:2]) <= 480


def test_demo_media_is_deterministic(tmp_path: Path) -> None:
    from fakescope.data.synth import DemoSpec, build_demo_media

    spec = DemoSpec(groups=2, reals_per_group=1, image_size=64, videos=0)
    a = build_demo_media(tmp_path / "a", seed=3, spec=spec)
    b = build_demo_media(tmp_path / "b", seed=3, spec=spec)
    c = build_demo_media(tmp_path / "c", seed=4, spec=spec)
    assert a.read_text() == b.read_text()
    for rel in ("real/g000_0.png", "fake/g001_0.png"):
        assert (a.parent / rel).read_bytes() == (b.parent / rel).read_bytes()
        assert (a.parent / rel).read_bytes() != (c.parent / rel).read_bytes()


def test_demo_manifest_has_leak_free_splits_with_both_classes(demo_manifest: Path) -> None:
    from fakescope.data.manifest import find_leaks, read_manifest, resolve_crop_paths

    df = read_manifest(demo_manifest)
    assert find_leaks(df) == []
    for split in ("train", "val", "test"):
        labels = set(df.loc[df["split"] == split, "label"])
        assert labels == {0, 1}, split
    assert 200 <= len(df) <= 400
    videos = df[df["media_path"].str.endswith(".mp4")]
    assert videos["video_id"].nunique() >= 4  # the videos went through face detection
    assert all(p.is_file() for p in resolve_crop_paths(df.head(5), demo_manifest))
