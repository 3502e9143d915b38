"""The bundled default detector: ships in the package, matches its SHA-256, loads offline, scores real media."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch

from fakescope import DEFAULT_DETECTOR
from fakescope.errors import CheckpointError
from fakescope.models import create_detector, get_detector_cfg
from fakescope.models._hub import bundled_file
from fakescope.utils.download import sha256_file

NAME = "mobilenet_v2.dfdc"


def test_bundled_file_ships_and_matches_its_hash():
    cfg = get_detector_cfg(NAME)
    path = Path(str(files("fakescope.models") / "weights" / cfg.filename))
    assert path.is_file() and path.stat().st_size < 8_000_000  # fp16, a few MB
    assert sha256_file(path) == cfg.sha256
    assert (path.parent / "MODEL_CARD.md").is_file()
    with pytest.raises(CheckpointError, match="SHA-256"):
        bundled_file(cfg.filename, "0" * 64)


def test_bundled_detector_needs_no_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cache, no network needed
    model = create_detector(NAME, cache_dir=tmp_path / "empty-cache").eval()
    cfg = model.cfg
    assert (cfg.input_size, cfg.crop_size, cfg.crop_margin, cfg.crop_align, cfg.crop_pictures) == (
        160,
        160,
        0.0,
        True,
        "cut",
    )
    assert 0.0 < cfg.extra["threshold"] < 1.0
    with torch.no_grad():
        p = model.predict_proba(torch.rand(2, 3, 160, 160))
    assert p.shape == (2,) and torch.all((p >= 0) & (p <= 1))


def test_default_is_a_panel_of_bundled_detectors_and_needs_no_download(tmp_path, monkeypatch):
    from fakescope.models import load_model
    from fakescope.models.ensemble import PanelDetector

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert DEFAULT_DETECTOR == "panel.dfdc_f2f"
    model, meta = load_model(DEFAULT_DETECTOR, cache_dir=tmp_path / "empty-cache")
    assert isinstance(model, PanelDetector)
    assert meta["members"] == [NAME, "mesoinception4.mesonet_f2f"]
    assert model.member_thresholds == [get_detector_cfg(NAME).extra["threshold"], 0.5]
    # one crop at MesoNet's scale and margin (256 px, 0.3); the DFDC member sees its centre shrunk to 160 px
    assert (model.cfg.input_size, model.cfg.crop_margin, model.cfg.crop_align, model.cfg.crop_pictures) == (
        256,
        0.3,
        False,
        "cut",
    )
    assert not (tmp_path / "empty-cache").exists() or not any((tmp_path / "empty-cache").rglob("*.h5"))


def test_bundled_detector_separates_the_dev_crops(shared_data):
    """On the 22 DFDC dev crops (another pipeline's crops of DFDC videos) it ranks fakes above reals."""
    from sklearn.metrics import roc_auc_score

    from fakescope.predict import Predictor

    images = sorted((shared_data / "dev" / "images").rglob("dfdc_face_*.png"))
    assert len(images) == 22
    with Predictor(NAME, detector_weights_dir=shared_data / "weights" / "mediapipe") as pred:
        results = [pred.analyze(p) for p in images]
    assert all(r.verdict in ("fake", "real") for r in results), [r.error for r in results]
    y = np.array([1 if "/fake/" in str(p) else 0 for p in images])
    auc = roc_auc_score(y, [r.fake_prob for r in results])
    assert auc > 0.6, auc
