"""The crop contract: what training sees is what predict scores, pixel for pixel."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fakescope.data.contract import (
    CropContract,
    crop_whole,
    cut_face,
    eye_angle,
    face_in_crop,
    manifest_contract,
    resize_square,
)
from fakescope.data.datasets import FaceDataset
from fakescope.data.faces import Face
from fakescope.data.manifest import read_manifest
from fakescope.data.prepare import prepare_dataset
from fakescope.models import create_detector, load_checkpoint, save_checkpoint
from fakescope.predict import Predictor


def _rotated(image: np.ndarray, angle: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 8) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="module")
def tilted_media(tmp_path_factory, astronaut) -> Path:
    """A real/ fake/ folder: a tilted-face video and a tilted-face photo (tilt 20 degrees)."""
    root = tmp_path_factory.mktemp("contract_media")
    (root / "real").mkdir()
    (root / "fake").mkdir()
    tilted = _rotated(astronaut, 20)
    frames = []
    for k in range(6):
        canvas = np.zeros((480, 640, 3), np.uint8)
        canvas[:] = (40, 60, 80)
        canvas[:, 60 + 4 * k : 60 + 4 * k + 512] = tilted[32:]
        frames.append(canvas)
    _write_video(root / "real" / "clip.mp4", frames)
    cv2.imwrite(str(root / "fake" / "photo.png"), cv2.cvtColor(tilted, cv2.COLOR_RGB2BGR))
    # a face-crop picture (the face fills it, as in face datasets): 150 x 130 around the tilted face
    cv2.imwrite(str(root / "fake" / "crop.jpg"), cv2.cvtColor(tilted[40:190, 160:290], cv2.COLOR_RGB2BGR))
    return root


def test_eye_angle_and_levelling(astronaut):
    lm = np.array([[10, 10], [30, 30], [20, 25], [12, 35], [28, 35]], np.float32)
    assert eye_angle(lm) == pytest.approx(45.0)
    assert eye_angle(lm[[1, 0, 2, 3, 4]]) == pytest.approx(45.0)  # order of the eyes does not matter
    assert eye_angle(None) == 0.0
    face = Face(box=(180.0, 60.0, 300.0, 200.0), score=0.9, landmarks=None)
    plain = cut_face(astronaut, face, CropContract(size=64, margin=0.3, align=True))
    ref = cut_face(astronaut, face, CropContract(size=64, margin=0.3, align=False))
    np.testing.assert_array_equal(plain, ref)  # no keypoints: no rotation


def test_alignment_levels_a_tilted_face(blazeface_detector, astronaut):
    """After alignment, the detector finds the eyes of a 20-degree tilted face level (within 5 degrees)."""
    tilted = _rotated(astronaut, 20)
    face = blazeface_detector.detect(tilted)[0]
    assert abs(eye_angle(face.landmarks)) > 12
    crop = cut_face(tilted, face, CropContract(size=192, margin=0.6, align=True))
    again = face_in_crop(crop, blazeface_detector)
    assert again is not None
    assert abs(eye_angle(again.landmarks)) < 5


@pytest.mark.parametrize("pictures", ["whole", "cut"])
def test_train_and_predict_crops_are_identical(tilted_media, tmp_path, mediapipe_dir, blazeface_detector, pictures):
    """Video frames, a photo and a face-crop picture: prepare's crops are exactly what predict scores."""
    out = tmp_path / "prep"
    prepare_dataset(
        "folder",
        tilted_media,
        out,
        size=96,
        margin=0.2,
        align=True,
        pictures=pictures,
        num_frames=4,
        weights_dir=mediapipe_dir,
        split_ratios=(1.0, 0.0, 0.0),
    )
    df = read_manifest(out)
    assert set(df["media_path"].map(lambda p: Path(p).name)) == {"clip.mp4", "photo.png", "crop.jpg"}
    contract = manifest_contract(out)
    assert contract == {
        "crop_size": 96,
        "crop_margin": 0.2,
        "crop_align": True,
        "interpolation": "area",
        "crop_pictures": pictures,
    }
    model = create_detector("meso4")
    model.set_cfg(model.cfg.with_(**contract, input_size=64))
    ckpt = save_checkpoint(model, tmp_path / "m.safetensors")
    loaded, _ = load_checkpoint(ckpt)
    assert loaded.cfg.crop_size == 96 and loaded.cfg.crop_align and loaded.cfg.crop_pictures == pictures
    ds = FaceDataset(df, out, 64, interpolation="area")
    with Predictor(ckpt, detector=blazeface_detector, num_frames=4) as pred:
        for media in sorted(set(df["media_path"])):
            rows = df.index[df["media_path"] == media]
            crops = pred.face_inputs(media)
            by_key = {(c.frame_index, c.track_id): c.image for c in crops}
            assert len(by_key) == len(rows) > 0
            for i in rows:
                key = (int(df.loc[i, "frame_index"]), int(df.loc[i, "track_id"]))
                x, _, _ = ds[int(i)]
                train_pixels = np.round(x.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
                np.testing.assert_array_equal(train_pixels, by_key[key], err_msg=f"{media} {key}")


def test_face_crop_pictures_follow_one_rule(blazeface_detector, astronaut):
    """A picture that is a face crop is scored whole by predict, and prepare makes the same crop of it."""
    from fakescope.data.contract import square_box

    face = blazeface_detector.detect(astronaut)[0]
    x1, y1, x2, y2 = (max(0, int(v)) for v in square_box(face.box, 0.3))
    crop_pic = np.ascontiguousarray(astronaut[y1:y2, x1:x2])
    found = face_in_crop(crop_pic, blazeface_detector)
    assert found is not None
    c = CropContract(size=48, crop_size=80)
    whole = crop_whole(crop_pic, found, c)
    assert whole.shape == (80, 80, 3)
    np.testing.assert_array_equal(whole, resize_square(crop_pic, 80))
    assert face_in_crop(astronaut, blazeface_detector) is None  # 512 px with a small face: not a crop


def test_contract_rejects_bad_values():
    with pytest.raises(ValueError, match="interpolation"):
        CropContract(size=64, interpolation="nearest")
    with pytest.raises(ValueError, match="margin"):
        CropContract(size=64, margin=-0.1)


def test_evaluate_scores_a_video_as_predict_does(tilted_media, tmp_path, mediapipe_dir, blazeface_detector):
    """Same checkpoint, same video: evaluate's per-video score equals predict's (crops, model, aggregation)."""
    from fakescope.eval.report import evaluate_checkpoint

    out = tmp_path / "prep"
    prepare_dataset(
        "folder",
        tilted_media,
        out,
        size=80,
        margin=0.3,
        num_frames=6,
        weights_dir=mediapipe_dir,
        split_ratios=(1.0, 0.0, 0.0),
    )
    import torch

    torch.manual_seed(3)
    model = create_detector("meso4")
    model.set_cfg(model.cfg.with_(**manifest_contract(out)))  # 80 px crops, 256 px input
    ckpt = save_checkpoint(model, tmp_path / "m.safetensors")
    report = evaluate_checkpoint(ckpt, out, split="all", out_dir=tmp_path / "eval", aggregation="confident_mean")
    import pandas as pd

    videos = pd.read_csv(tmp_path / "eval" / "video_scores.csv")
    clip = videos[videos["video_id"].str.endswith("clip")]
    assert report["n_videos"] == 3 and len(clip) == 1
    with Predictor(ckpt, detector=blazeface_detector, num_frames=6, aggregation="confident_mean") as pred:
        res = pred.analyze(tilted_media / "real" / "clip.mp4")
    assert res.fake_prob == pytest.approx(float(clip["fake_prob"].iloc[0]), abs=1e-6)
