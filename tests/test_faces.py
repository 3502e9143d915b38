"""Face detection (BlazeFace and Haar), model files, crops, alignment and tracks."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from fakescope.data._blazeface import SPECS, generate_anchors
from fakescope.data.faces import (
    ARCFACE_TEMPLATE_112,
    Face,
    _five_points,
    align_face,
    create_face_detector,
    crop_face,
    extract_faces,
    link_tracks,
    list_face_detectors,
    square_box,
)
from fakescope.data.media import Frame, sample_frames
from fakescope.errors import DownloadError

ASTRONAUT_FACE = (172.0, 66.0, 278.0, 172.0)  # hand-checked box of the face in skimage's astronaut()


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def weights_dir(shared_data) -> Path:
    return shared_data / "weights" / "mediapipe"


@pytest.fixture(scope="module")
def blazeface(weights_dir):
    det = create_face_detector("blazeface", weights_dir=weights_dir)
    yield det
    det.close()


@pytest.fixture(scope="module")
def haar():
    return create_face_detector("haar")


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


# ------------------------------------------------------------------------------------------------------------
# Registry, model files, anchors
# ------------------------------------------------------------------------------------------------------------


def test_registry():
    assert list_face_detectors()[0] == "blazeface"
    assert "haar" in list_face_detectors()
    with pytest.raises(ValueError, match="blazeface"):
        create_face_detector("nope")


@pytest.mark.parametrize("variant", ["short", "full"])
def test_anchor_counts_match_models(variant):
    n = {"short": 896, "full": 2304}[variant]
    anchors = generate_anchors(SPECS[variant])
    assert anchors.shape == (n, 2)
    assert anchors.min() > 0
    assert anchors.max() < 1


def test_wrong_checksum_refused(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    (tmp_path / SPECS["full"].filename).write_bytes(b"not the model")
    with pytest.raises(DownloadError, match="SHA-256"):
        create_face_detector("blazeface", weights_dir=tmp_path)
    # a corrupt file in the cache is not used either: it triggers a download, which fails offline
    with pytest.raises(DownloadError, match="--from"):
        create_face_detector("blazeface", cache_dir=tmp_path)


def test_missing_offline_file(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    with pytest.raises(DownloadError, match="not found"):
        create_face_detector("blazeface", weights_dir=tmp_path)


def test_offline_route_and_cache_never_download(weights_dir, tmp_path, monkeypatch):
    _no_network(monkeypatch)
    cache = tmp_path / "cache"
    det = create_face_detector("blazeface", weights_dir=weights_dir, cache_dir=cache)
    det.close()
    assert not cache.exists()  # the offline folder is used in place
    cache.mkdir()
    for spec in SPECS.values():
        shutil.copy(weights_dir / spec.filename, cache / spec.filename)
    for variant in SPECS:
        create_face_detector("blazeface", cache_dir=cache, variant=variant).close()


# ------------------------------------------------------------------------------------------------------------
# Detection
# ------------------------------------------------------------------------------------------------------------


def test_blazeface_finds_astronaut(blazeface, astronaut):
    faces = blazeface.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.7
    assert _iou(face.box, ASTRONAUT_FACE) > 0.6
    lm = face.landmarks
    assert lm.shape == (5, 2)
    x1, y1, x2, y2 = face.box
    assert ((lm[:, 0] > x1) & (lm[:, 0] < x2) & (lm[:, 1] > y1) & (lm[:, 1] < y2)).all()
    assert lm[0, 0] < lm[1, 0]  # eye on the image's left first
    assert lm[:2, 1].max() < lm[2, 1] < lm[3:, 1].min()  # eyes above nose above mouth
    assert lm[3, 0] < lm[4, 0]


@pytest.mark.parametrize(
    ("variant", "height", "width"),
    [("full", 720, 1280), ("full", 1080, 1920), ("short", 720, 1280)],  # short range misses ~100 px faces at 1080p
)
def test_blazeface_in_large_frame(weights_dir, astronaut, variant, height, width):
    canvas = np.zeros((height, width, 3), np.uint8)
    oy, ox = height - 560, width - 620
    canvas[oy : oy + 512, ox : ox + 512] = astronaut
    det = create_face_detector("blazeface", weights_dir=weights_dir, variant=variant)
    faces = det.detect(canvas)
    det.close()
    expected = (ASTRONAUT_FACE[0] + ox, ASTRONAUT_FACE[1] + oy, ASTRONAUT_FACE[2] + ox, ASTRONAUT_FACE[3] + oy)
    assert faces, "no face found"
    assert _iou(faces[0].box, expected) > 0.6  # box in full-resolution pixels


def test_blazeface_empty_frame(blazeface):
    assert blazeface.detect(np.zeros((480, 640, 3), np.uint8)) == []
    with pytest.raises(ValueError, match="RGB"):
        blazeface.detect(np.zeros((480, 640), np.uint8))


def test_haar_finds_astronaut(haar, astronaut):
    faces = haar.detect(astronaut)
    assert faces
    assert _iou(faces[0].box, ASTRONAUT_FACE) > 0.6
    assert faces[0].landmarks is None
    assert 0.5 <= faces[0].score <= 1.0


def test_dev_videos_detection_rate(shared_data, blazeface):
    videos = sorted((shared_data / "dev" / "videos").rglob("*.mp4"))
    assert len(videos) == 4
    for video in videos:
        frames = sample_frames(video, num_frames=16)
        hits = sum(bool(blazeface.detect(f.image)) for f in frames)
        assert hits / len(frames) >= 0.95, f"{video.name}: face in {hits}/{len(frames)} frames"


def test_five_points_from_mediapipe_keypoints():
    kp6 = np.array([[60, 40], [40, 40], [50, 50], [50, 60], [30, 45], [70, 45]], np.float32)
    five = _five_points(kp6)
    np.testing.assert_allclose(five[0], [40, 40])  # image-left eye first, whatever the input order
    np.testing.assert_allclose(five[1], [60, 40])
    np.testing.assert_allclose(five[2], [50, 50])
    assert five[3, 0] < 50 < five[4, 0]
    np.testing.assert_allclose(five[3:, 1], [60, 60])


# ------------------------------------------------------------------------------------------------------------
# Crops and alignment
# ------------------------------------------------------------------------------------------------------------


def test_square_box():
    assert square_box((10, 20, 30, 60), margin=0.5) == pytest.approx((-10.0, 10.0, 50.0, 70.0))


def test_crop_geometry_margin_and_size():
    img = np.zeros((400, 400, 3), np.uint8)
    img[150:250, 150:250] = 255  # a 100 px "face"
    crop = crop_face(img, (150, 150, 250, 250), size=130, margin=0.3)
    assert crop.shape == (130, 130, 3)
    # 130 px square around a 100 px face, at scale 1: 15 px border on each side
    white = np.argwhere(crop[..., 0] > 127)
    assert white.min(0).tolist() == [15, 15]
    assert white.max(0).tolist() == [114, 114]
    tight = crop_face(img, (150, 150, 250, 250), size=64, margin=0.0)
    assert tight.shape == (64, 64, 3)
    assert tight.min() == 255


def test_crop_non_square_box_uses_longer_side():
    img = np.full((300, 300, 3), 100, np.uint8)
    crop = crop_face(img, (100, 50, 150, 250), size=100, margin=0.0)  # 50 x 200 box -> 200 px square
    assert crop.shape == (100, 100, 3)
    assert (crop == 100).all()  # square (25..225, 50..250) lies inside the frame


def test_crop_clipped_at_border_is_padded_black():
    img = np.full((200, 300, 3), 200, np.uint8)
    crop = crop_face(img, (0, 0, 60, 60), size=120, margin=1.0)  # square (-30,-30)-(90,90) at scale 1
    assert crop.shape == (120, 120, 3)
    assert (crop[:30] == 0).all()
    assert (crop[:, :30] == 0).all()
    assert (crop[30:, 30:] == 200).all()  # the face stays centred, not shifted


def test_align_face_maps_landmarks_to_template():
    size, margin = 128, 0.3
    src = np.array([[210, 120], [260, 118], [236, 150], [215, 175], [257, 174]], np.float32)
    img = np.zeros((400, 500, 3), np.uint8)
    for i, (x, y) in enumerate(src.astype(int)):
        img[y - 2 : y + 3, x - 2 : x + 3] = 50 * (i + 1)
    out = align_face(img, src, size=size, margin=margin)
    assert out.shape == (size, size, 3)
    dst = (ARCFACE_TEMPLATE_112 / 112.0 - 0.5) / (1.0 + margin) * size + size / 2.0
    for i, (x, y) in enumerate(dst):
        patch = out[int(y) - 4 : int(y) + 5, int(x) - 4 : int(x) + 5, 0]
        assert patch.max() > 0, f"landmark {i} not near its template position"


def test_extract_faces_crops_from_full_resolution(blazeface, astronaut):
    frames = [Frame(0, 0.0, astronaut)]
    crops = extract_faces(frames, blazeface, size=96, margin=0.3)
    assert len(crops) == 1
    c = crops[0]
    assert (c.frame_index, c.timestamp, c.track_id) == (0, 0.0, 0)
    assert c.image.shape == (96, 96, 3)
    np.testing.assert_array_equal(c.image, crop_face(astronaut, c.box, 96, 0.3))
    aligned = extract_faces(frames, blazeface, size=96, align=True)
    assert aligned[0].image.shape == (96, 96, 3)
    assert not np.array_equal(aligned[0].image, c.image)


def test_extract_faces_by_backend_name(astronaut):
    crops = extract_faces([Frame(0, 0.0, astronaut)], "haar", size=64)
    assert len(crops) == 1
    assert crops[0].image.shape == (64, 64, 3)


# ------------------------------------------------------------------------------------------------------------
# Tracks
# ------------------------------------------------------------------------------------------------------------


def test_two_people_give_two_tracks(blazeface, astronaut):
    two = np.concatenate([astronaut, astronaut], axis=1)  # the same face twice, side by side
    frames = [Frame(i, i / 25, np.roll(two, 6 * i, axis=1)) for i in range(4)]
    crops = extract_faces(frames, blazeface, size=64)
    assert len(crops) == 8
    by_track: dict[int, list] = {}
    for c in crops:
        by_track.setdefault(c.track_id, []).append(c)
    assert sorted(by_track) == [0, 1]
    for track in by_track.values():
        assert [c.frame_index for c in track] == [0, 1, 2, 3]
        sides = {c.box[0] > 512 for c in track}
        assert len(sides) == 1  # a track stays with one person
    one = extract_faces(frames, blazeface, size=64, max_faces=1)
    assert [c.frame_index for c in one] == [0, 1, 2, 3]


def test_link_tracks_moving_face_and_newcomer():
    frames = [
        [(100, 100, 200, 200)],
        [(140, 110, 240, 210)],  # moved 40 px: same person
        [(180, 120, 280, 220), (600, 100, 700, 200)],  # a second person appears
        [(620, 100, 720, 200), (220, 120, 320, 220)],  # order swapped in the detector output
        [],
        [(240, 120, 340, 220)],
    ]
    assert link_tracks(frames) == [[0], [0], [0, 1], [1, 0], [], [0]]


def test_face_dataclass_defaults():
    f = Face(box=(0, 0, 1, 1), score=0.5)
    assert f.landmarks is None
