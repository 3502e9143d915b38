"""The video pipeline of predict: same crops as before, bounded and stoppable; the torch-free ONNX path."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakescope import DEFAULT_DETECTOR
from fakescope.data.faces import extract_faces
from fakescope.data.media import sample_frames, write_h264
from fakescope.predict import Predictor, contract_from_cfg_dict, onnx_cache_path


@pytest.fixture(scope="module")
def face_video(tmp_path_factory, astronaut: np.ndarray) -> Path:
    """40 frames (H.264, B-frames) of the astronaut drifting across a grey 480x360 canvas."""
    face = np.asarray(Image.fromarray(astronaut).resize((320, 320)))
    frames = []
    for i in range(40):
        img = np.full((360, 480, 3), 90, np.uint8)
        x = 10 + 3 * i
        img[20:340, x : x + 320] = face
        frames.append(img)
    return write_h264(tmp_path_factory.mktemp("pipe") / "face.mp4", frames, fps=25, crf=18)


@pytest.fixture(scope="module")
def haar_predictor() -> Predictor:
    with Predictor(DEFAULT_DETECTOR, detector="haar", num_frames=12) as p:
        yield p


def _reference_crops(pred: Predictor, video: Path, **sampling) -> list:
    """What predict cut before the pipeline: all frames decoded in full, then extract_faces, then resized."""
    c = pred.contract
    frames = sample_frames(video, num_frames=pred.num_frames, skip_nonref=False, **sampling)
    crops = extract_faces(
        frames, pred.face_detector, size=c.cut_size, margin=c.margin, align=c.align, interpolation=c.interpolation
    )
    for crop in crops:
        crop.image = c.model_input(crop.image)
    return crops


def _assert_same_crops(got: list, ref: list) -> None:
    assert len(got) == len(ref) > 0
    for a, b in zip(got, ref, strict=True):
        assert (a.frame_index, a.track_id, a.timestamp) == (b.frame_index, b.track_id, b.timestamp)
        assert a.box == pytest.approx(b.box)
        np.testing.assert_array_equal(a.image, b.image)


def test_pipeline_crops_identical(haar_predictor: Predictor, face_video: Path) -> None:
    _assert_same_crops(haar_predictor.face_inputs(face_video), _reference_crops(haar_predictor, face_video))


def test_pipeline_scores_and_stage_timings(haar_predictor: Predictor, face_video: Path) -> None:
    r = haar_predictor.analyze(face_video)
    assert r.verdict in ("fake", "real"), r.error
    assert r.n_frames == 12
    ref = _reference_crops(haar_predictor, face_video)
    probs = haar_predictor.score_crops(np.stack([c.image for c in ref]))
    assert [f.fake_prob for f in r.frames] == pytest.approx(probs.tolist(), abs=1e-5)
    assert {"decode", "detect", "infer", "total"} <= set(r.timings)


def test_dev_videos_same_crops(dev_videos: list[Path], blazeface_detector) -> None:
    with Predictor(DEFAULT_DETECTOR, detector=blazeface_detector, num_frames=32) as pred:
        for video in dev_videos:
            _assert_same_crops(pred.face_inputs(video), _reference_crops(pred, video))


def test_keyframes_sampling_is_opt_in(face_video: Path) -> None:
    with Predictor(DEFAULT_DETECTOR, detector="haar", num_frames=12, sampling="keyframes") as pred:
        r = pred.analyze(face_video)
        assert r.verdict in ("fake", "real"), r.error
        keys = [f.index for f in sample_frames(face_video, num_frames=12, keyframes=True)]
        assert sorted({f.frame_index for f in r.frames}) == keys
        _assert_same_crops(pred.face_inputs(face_video), _reference_crops(pred, face_video, keyframes=True))
    with pytest.raises(ValueError, match="sampling"):
        Predictor(DEFAULT_DETECTOR, detector="haar", sampling="sometimes")


class _FailingDetector:
    """Finds a face in the first two frames, then fails."""

    name = "failing"

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: np.ndarray) -> list:
        from fakescope.data.faces import Face

        self.calls += 1
        if self.calls > 2:
            raise RuntimeError("detector broke")
        return [Face(box=(10.0, 10.0, 60.0, 60.0), score=0.9)]


def test_a_failing_stage_stops_the_decoder(face_video: Path) -> None:
    with Predictor(DEFAULT_DETECTOR, detector=_FailingDetector(), num_frames=40) as pred:
        r = pred.analyze(face_video)
    assert r.verdict == "error"
    assert "detector broke" in r.error
    assert not [t for t in threading.enumerate() if t.name == "fakescope-decode"]


def test_a_bad_video_is_an_error_row(haar_predictor: Predictor, tmp_path: Path, face_video: Path) -> None:
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(face_video.read_bytes()[:2000])
    r = haar_predictor.analyze(bad)
    assert r.verdict == "error"
    assert r.error
    assert not [t for t in threading.enumerate() if t.name == "fakescope-decode"]


def test_contract_from_cfg_dict_matches_detector_cfg() -> None:
    from fakescope.data.contract import CropContract
    from fakescope.models import DetectorCfg, get_detector_cfg

    for name in ("mobilenet_v2.dfdc", "mesoinception4.mesonet_df"):
        cfg = get_detector_cfg(name)
        assert contract_from_cfg_dict(cfg.to_dict()) == CropContract.from_cfg(cfg)
    bare = DetectorCfg(arch="x")  # defaults on both sides agree
    assert contract_from_cfg_dict({}) == CropContract.from_cfg(bare)


_NO_TORCH = """
import json, sys
from fakescope.predict import Predictor
with Predictor(sys.argv[1], runtime="onnx", detector="haar", cache_dir=sys.argv[3]) as p:
    r = p.analyze(sys.argv[2])
print(json.dumps({"torch": "torch" in sys.modules, "prob": r.fake_prob, "verdict": r.verdict, "model": r.model}))
"""


def _run_no_torch(model: str, image: Path, cache: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, model, str(image), str(cache)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_onnx_runtime_path_does_not_import_torch(tmp_path: Path, astronaut: np.ndarray) -> None:
    image = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(image)
    cache = tmp_path / "cache"
    with Predictor(DEFAULT_DETECTOR, runtime="onnx", detector="haar", cache_dir=cache) as pred:
        first = pred.analyze(image)  # exports once (torch), keeps the export in the cache
    cached = onnx_cache_path(DEFAULT_DETECTOR, cache)
    assert cached is not None and cached.is_file()
    again = _run_no_torch(DEFAULT_DETECTOR, image, cache)
    assert again["torch"] is False
    assert again["model"] == DEFAULT_DETECTOR
    assert again["verdict"] == first.verdict
    assert again["prob"] == pytest.approx(first.fake_prob, abs=1e-5)
    with Predictor(DEFAULT_DETECTOR, runtime="torch", detector="haar") as pred:  # same scores as eager PyTorch
        assert pred.analyze(image).fake_prob == pytest.approx(first.fake_prob, abs=1e-4)


def test_onnx_cache_key_follows_the_weights(tmp_path: Path) -> None:
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    assert onnx_cache_path(a, tmp_path) != onnx_cache_path(b, tmp_path)
    before = onnx_cache_path(a, tmp_path)
    a.write_bytes(b"three")  # retrained in place: a new key, never the stale export
    assert onnx_cache_path(a, tmp_path) != before
    assert onnx_cache_path("meso4", tmp_path) is None  # not identifiable without torch: exported in memory


def test_onnx_cache_key_follows_the_code_that_shapes_the_export(tmp_path: Path, monkeypatch) -> None:
    """A named panel's export is keyed by the models' code too: a changed member list or threshold (code, not
    a weights file) never serves the stale export."""
    import fakescope.predict as predict_mod

    before = onnx_cache_path("panel.dfdc_f2f", tmp_path)
    assert before is not None and before == onnx_cache_path("panel.dfdc_f2f", tmp_path)
    monkeypatch.setattr(predict_mod, "_export_code_digest", lambda: "edited")
    assert onnx_cache_path("panel.dfdc_f2f", tmp_path) != before


def test_one_thread_budget_decodes_inline_with_the_same_results(
    haar_predictor: Predictor, face_video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``threads=1`` (each of ``predict --workers N`` on N cores) decodes in the caller's thread: same crops and
    scores as the threaded pipeline, and no decoder thread is started."""
    ref = haar_predictor.analyze(face_video)
    started: list[str] = []
    real_start = threading.Thread.start

    def spy(self: threading.Thread) -> None:
        started.append(self.name)
        real_start(self)

    with Predictor(DEFAULT_DETECTOR, detector="haar", num_frames=12, threads=1) as pred:
        monkeypatch.setattr(threading.Thread, "start", spy)
        r = pred.analyze(face_video)
        monkeypatch.undo()
    assert "fakescope-decode" not in started
    assert r.n_frames == ref.n_frames == 12
    assert [f.fake_prob for f in r.frames] == pytest.approx([f.fake_prob for f in ref.frames], abs=1e-6)
    assert r.timings["decode"] > 0
