"""Pinned behaviour of the named detectors on the shared dev media (the numbers the docs publish, +-0.05).

A change to weight import, crops, frame sampling, face detection or aggregation that moves a published score
fails here. The crop matrix is the one in ``docs/detectors.md`` (computed there exactly as below); the video
scores are ``fakescope predict``'s with its defaults (32 frames, BlazeFace, mean per track), as in
``docs/predict-and-serve.md`` and ``benchmarks/results/quality.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakescope.models import create_detector
from fakescope.predict import Predictor

TOL = 0.05
CROPS = [
    "fake/mesonet_df00204.jpg",
    "fake/mesonet_df01254.jpg",
    "real/mesonet_real00240.jpg",
    "real/mesonet_real00772.jpg",
]
CROP_SCORES = {
    "meso4.mesonet_df": [0.9478, 0.9797, 0.0103, 0.0034],
    "mesoinception4.mesonet_df": [0.9782, 0.9993, 0.0, 0.0],
    "meso4.mesonet_f2f": [0.164, 0.313, 0.119, 0.0564],
    "mesoinception4.mesonet_f2f": [0.0012, 0.0, 0.0, 0.0009],
}
VIDEO_SCORES = {
    "mesoinception4.mesonet_df": {
        "dfdc_abofeumbvv.mp4": 0.6853,
        "dfdc_abqwwspghj.mp4": 0.0078,
        "ffpp_cyshih_fake.mp4": 0.0266,
        "ffpp_cyshih_real.mp4": 0.0574,
    },
    "panel.dfdc_f2f": {  # the default: both DFDC fakes and the FF++ (Face2Face-like) fake caught, the real kept
        "dfdc_abofeumbvv.mp4": 0.989,
        "dfdc_abqwwspghj.mp4": 0.998,
        "ffpp_cyshih_fake.mp4": 0.769,
        "ffpp_cyshih_real.mp4": 0.446,
    },
    "mobilenet_v2.dfdc": {
        "dfdc_abofeumbvv.mp4": 0.9927,
        "dfdc_abqwwspghj.mp4": 0.9961,
        "ffpp_cyshih_fake.mp4": 0.1677,
        "ffpp_cyshih_real.mp4": 0.4525,
    },
}


@pytest.mark.parametrize("name", sorted(CROP_SCORES))
def test_mesonet_scores_on_the_authors_crops(name: str, shared_data: Path) -> None:
    files = [shared_data / "dev" / "images" / f for f in CROPS]
    imgs = [np.asarray(Image.open(f).convert("RGB").resize((256, 256), Image.BILINEAR)) for f in files]
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255
    model = create_detector(name, weights_dir=shared_data / "weights" / "mesonet").eval()
    with torch.no_grad():
        got = model.predict_proba(x).numpy()
    np.testing.assert_allclose(got, CROP_SCORES[name], atol=TOL)


@pytest.mark.parametrize("name", sorted(VIDEO_SCORES))
def test_video_verdicts_of_predict(name: str, shared_data: Path, dev_videos: list[Path]) -> None:
    weights = shared_data / "weights"
    with Predictor(name, weights_dir=weights / "mesonet", detector_weights_dir=weights / "mediapipe") as pred:
        got = {v.name: pred.analyze(v) for v in dev_videos}
    assert set(got) == set(VIDEO_SCORES[name])
    for video, expected in VIDEO_SCORES[name].items():
        r = got[video]
        assert r.n_faces == 32, (video, r.error)
        assert r.fake_prob == pytest.approx(expected, abs=TOL), video
        assert r.verdict == ("fake" if expected >= r.threshold else "real"), video
