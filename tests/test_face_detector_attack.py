"""The white-box face-detector attack: the PyTorch port of BlazeFace, its preprocessing, and PGD through it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fakescope.data._blazeface import SPECS, BlazeFaceModel
from fakescope.data.media import sample_frames


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the port's small convolutions run many times slower with threads on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def dev_frames(dev_videos: list[Path]) -> list[np.ndarray]:
    """One frame of each dev video (two 1080p DFDC frames, two 480p FF++ frames)."""
    return [sample_frames(v, num_frames=4)[1].image for v in dev_videos]


@pytest.fixture(scope="module")
def full_port(mediapipe_dir: Path):
    from fakescope.attacks.blazeface_torch import BlazeFaceTorch

    return BlazeFaceTorch(mediapipe_dir / SPECS["full"].filename).eval()


def _tflite_raw(model: BlazeFaceModel, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model._interp.set_tensor(model._input, x)
    model._interp.invoke()
    return model._interp.get_tensor(model._out_boxes), model._interp.get_tensor(model._out_scores)


@pytest.mark.parametrize("variant", ["full", "short"])
def test_port_equals_tflite_on_dev_frames(variant: str, mediapipe_dir: Path, dev_frames) -> None:
    """Raw box regressions and score logits of the port equal the TFLite runtime's on real frames."""
    import cv2

    from fakescope.attacks.blazeface_torch import BlazeFaceTorch

    spec = SPECS[variant]
    path = mediapipe_dir / spec.filename
    port = BlazeFaceTorch(path).eval()
    ref = BlazeFaceModel(path, spec)
    s = spec.input_size
    assert port.input_size == s
    for frame in dev_frames:
        h, w = frame.shape[:2]
        tile = cv2.resize(frame[:, (w - h) // 2 : (w + h) // 2], (s, s), interpolation=cv2.INTER_AREA)
        x = tile.astype(np.float32)[None] * (2.0 / 255.0) - 1.0
        boxes_ref, logits_ref = _tflite_raw(ref, x)
        with torch.no_grad():
            boxes, logits = port(torch.from_numpy(x).permute(0, 3, 1, 2))
        np.testing.assert_allclose(logits.numpy(), logits_ref.reshape(logits.shape), atol=2e-3)
        np.testing.assert_allclose(boxes.numpy(), boxes_ref.reshape(boxes.shape), atol=2e-2)
        assert 1 / (1 + np.exp(-logits_ref.max())) > 0.5  # a face is found: the comparison covers a detection
    ref.close()


def test_port_gradients_are_nonzero(full_port) -> None:
    """The face score has finite, non-zero gradients with respect to the input pixels."""
    x = (torch.rand(1, 3, 192, 192, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_(True)
    _, logits = full_port(x)
    (grad,) = torch.autograd.grad(logits.max(), x)
    assert torch.isfinite(grad).all()
    assert float(grad.abs().sum()) > 0
    assert float((grad != 0).float().mean()) > 0.01


def test_detector_inputs_match_the_pipeline(blazeface_detector, dev_frames) -> None:
    """The torch preprocessing builds the detector's own model inputs (whole frame and tiles) to within 1 level."""
    from fakescope.attacks.face_detector import _DetectorInputs, _region
    from fakescope.data.faces import _stretch_contrast

    det = blazeface_detector
    for frame in dev_frames:
        region = _region(frame, det.detect(frame)[0].box, 0.5)
        inputs = _DetectorInputs(det, frame, region)
        delta = torch.zeros(3, region[3] - region[1], region[2] - region[0])
        mine = ((inputs(delta) + 1) * 127.5).permute(0, 2, 3, 1).numpy()
        _, whole, tiles = det._inputs(frame)
        ref = np.stack([_stretch_contrast(t) for t, *_ in whole + tiles]).astype(np.float32)
        assert mine.shape == ref.shape
        assert np.abs(mine - ref).max() <= 1.01
        assert np.abs(mine - ref).mean() <= 0.25


def test_pgd_lowers_the_real_face_score(blazeface_detector, dev_frames, full_port) -> None:
    """A few PGD steps through the port lower the face score of the real TFLite pipeline, within 8/255 in 8 bits."""
    from fakescope.attacks.face_detector import hide_face

    det = blazeface_detector
    frame = dev_frames[3]
    faces = det.detect(frame)
    adv, info = hide_face(det, frame, faces[0].box, eps=8 / 255, steps=6, restarts=1, check_every=3, port=full_port)
    assert np.abs(adv.astype(int) - frame.astype(int)).max() <= 8
    assert info["score_adv"] < info["score_clean"] - 0.05
    assert info["score_adv"] == pytest.approx(det.max_score(adv))


def test_pgd_hides_the_face_on_a_dev_frame(blazeface_detector, dev_frames, full_port) -> None:
    """PGD at 8/255 through the port pushes the real TFLite face score below the threshold; detect() finds none."""
    from fakescope.attacks.face_detector import hide_face

    det = blazeface_detector
    frame = dev_frames[3]  # FF++ real, 640x480: the cheapest frame
    faces = det.detect(frame)
    assert faces
    adv, info = hide_face(
        det, frame, faces[0].box, eps=8 / 255, steps=40, restarts=1, target_score=0.4, check_every=5, port=full_port
    )
    assert np.abs(adv.astype(int) - frame.astype(int)).max() <= 8
    assert info["score_clean"] >= det.min_score
    assert info["score_adv"] < det.min_score
    assert info["hidden"]
    assert det.detect(adv) == []


def test_unknown_method_is_refused() -> None:
    from fakescope.attacks.face_detector import face_attack_videos, hide_face

    with pytest.raises(ValueError, match="unknown face attack method"):
        hide_face(object(), np.zeros((64, 64, 3), np.uint8), (0, 0, 10, 10), method="nes")
    with pytest.raises(ValueError, match="unknown face attack method"):
        face_attack_videos([], method="nes")
