"""Ensembles (k-fold ensemble.json files and named ensembles) in predict, serve and export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakescope.errors import CheckpointError
from fakescope.models import EnsembleDetector, create_detector, load_model, save_checkpoint
from fakescope.models.ensemble import ENSEMBLE_KIND, PanelDetector
from fakescope.predict import Predictor


@pytest.fixture(scope="module")
def kfold_dir(tmp_path_factory) -> Path:
    """An ensemble.json as ``train --folds 2`` writes it, over two seeded random Meso-4 members."""
    root = tmp_path_factory.mktemp("kfold")
    members = []
    for k in range(2):
        torch.manual_seed(k)
        (root / f"fold_{k}").mkdir()
        save_checkpoint(create_detector("meso4"), root / f"fold_{k}" / "best.safetensors", threshold=0.4)
        members.append(f"fold_{k}/best.safetensors")
    desc = {"kind": ENSEMBLE_KIND, "members": members, "threshold": 0.45, "model": "meso4"}
    (root / "ensemble.json").write_text(json.dumps(desc))
    return root


@pytest.fixture(scope="module")
def face_jpg(tmp_path_factory, astronaut) -> Path:
    path = tmp_path_factory.mktemp("img") / "astronaut.jpg"
    Image.fromarray(astronaut).save(path, quality=92)
    return path


def _member_mean(members: list[torch.nn.Module], crop: np.ndarray) -> float:
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        return float(torch.stack([m.predict_proba(x) for m in members]).mean())


def test_predict_scores_a_kfold_ensemble_as_the_mean_of_its_members(kfold_dir, face_jpg):
    members = [load_model(kfold_dir / f"fold_{k}" / "best.safetensors")[0] for k in range(2)]
    with Predictor(kfold_dir / "ensemble.json", detector="haar") as pred:
        assert pred.threshold == pytest.approx(0.45)  # the ensemble's own threshold, not a member's
        res = pred.analyze(face_jpg)
        crops = pred.face_inputs(face_jpg)
    assert res.verdict in ("fake", "real") and res.n_faces == len(crops) >= 1
    for fs, crop in zip(res.frames, crops, strict=True):
        assert fs.fake_prob == pytest.approx(_member_mean(members, crop.image), abs=1e-5)
    # the run folder works as well as the descriptor
    with Predictor(kfold_dir, detector="haar") as pred:
        assert pred.analyze(face_jpg).fake_prob == pytest.approx(res.fake_prob, abs=1e-6)


def test_export_and_onnx_predict_of_an_ensemble(kfold_dir, face_jpg, tmp_path):
    from typer.testing import CliRunner

    from fakescope.cli.main import app

    out = tmp_path / "ens.onnx"
    r = CliRunner().invoke(app, ["export", str(kfold_dir / "ensemble.json"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    with Predictor(kfold_dir / "ensemble.json", detector="haar") as torch_pred:
        ref = torch_pred.analyze(face_jpg).fake_prob
    with Predictor(out, detector="haar") as onnx_pred:
        assert onnx_pred.runtime == "onnx"
        assert onnx_pred.analyze(face_jpg).fake_prob == pytest.approx(ref, abs=1e-4)


def test_serve_runs_an_ensemble(kfold_dir, face_jpg, tmp_path):
    from fastapi.testclient import TestClient

    from fakescope.serve import Settings, create_app
    from test_serve import upload, wait_job

    settings = Settings(
        model=str(kfold_dir / "ensemble.json"), data_dir=tmp_path / "data", face_detector="haar", explain=False
    )
    with TestClient(create_app(settings)) as client:
        r = upload(client, face_jpg)
        job = r.json() if r.status_code == 200 else wait_job(client, r.headers["location"])
    with Predictor(kfold_dir / "ensemble.json", detector="haar") as pred:
        ref = pred.analyze(face_jpg)
    assert job["status"] == "done", job
    assert job["result"]["fake_prob"] == pytest.approx(ref.fake_prob, abs=1e-6)


def test_named_ensemble_is_the_mean_of_the_mesonet_files(shared_data, face_jpg):
    wdir = shared_data / "weights" / "mesonet"
    members = [
        create_detector(n, weights_dir=wdir).eval()
        for n in ("mesoinception4.mesonet_df", "mesoinception4.mesonet_f2f", "meso4.mesonet_df", "meso4.mesonet_f2f")
    ]
    with Predictor("mesonet_ensemble", weights_dir=wdir, detector="haar") as pred:
        res = pred.analyze(face_jpg)
        crop = pred.face_inputs(face_jpg)[0].image
    assert res.model == "mesonet_ensemble"
    assert res.frames[0].fake_prob == pytest.approx(_member_mean(members, crop), abs=1e-5)


def test_members_with_different_crop_contracts_are_refused():
    a = create_detector("meso4")
    b = create_detector("meso4")
    b.set_cfg(b.cfg.with_(crop_margin=0.0))
    with pytest.raises(CheckpointError, match="crop contract"):
        EnsembleDetector([a, b])


def test_not_an_ensemble_descriptor(tmp_path):
    bad = tmp_path / "ensemble.json"
    bad.write_text(json.dumps({"kind": "something-else"}))
    with pytest.raises(CheckpointError, match="not a fakescope ensemble"):
        load_model(bad)


# ----------------------------------------------------------------------------------------------------------- panels
def _mobile160() -> torch.nn.Module:
    torch.manual_seed(3)
    m = create_detector("mobilenet_v2")
    m.set_cfg(m.cfg.with_(input_size=160, crop_size=160, crop_margin=0.0, crop_align=True, crop_pictures="cut"))
    return m.eval()


def _meso() -> torch.nn.Module:
    torch.manual_seed(4)
    return create_detector("meso4").eval()


def _area(x: torch.Tensor, size: int) -> torch.Tensor:
    """OpenCV's INTER_AREA resize of ``B,3,S,S`` (the independent reference for the panel's shrinking)."""
    import cv2

    imgs = [cv2.resize(img.permute(1, 2, 0).numpy(), (size, size), interpolation=cv2.INTER_AREA) for img in x]
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)


def test_panel_is_fake_when_any_member_is_fake_at_its_own_threshold():
    a, b = _mobile160(), _meso()
    panel = PanelDetector([a, b], [0.7, 0.2], name="p").eval()
    # one crop at the finest member's scale (meso4: 256 px at margin 0.3); no alignment, as meso4 has none
    assert (panel.cfg.input_size, panel.cfg.crop_margin, panel.cfg.crop_align) == (256, 0.3, False)
    torch.manual_seed(0)
    x = torch.rand(6, 3, 256, 256)
    with torch.no_grad():
        pa = torch.sigmoid(a(_area(x[:, :, 29:227, 29:227], 160)))  # the centre at margin 0, shrunk to 160 px
        pb = torch.sigmoid(b(x))  # meso4's own crop
        p = panel.predict_proba(x)
    assert torch.equal(p >= 0.5, (pa >= 0.7) | (pb >= 0.2))
    expected = torch.maximum(torch.logit(pa) - np.log(0.7 / 0.3), torch.logit(pb) - np.log(0.2 / 0.8))
    assert torch.allclose(torch.logit(p), expected, atol=1e-4)
    # features -> head is the same function (adversarial feature detectors use the split)
    with torch.no_grad():
        assert torch.allclose(panel.forward_head(panel.forward_features(x)), panel(x), atol=1e-5)


def test_panel_of_one_member_is_that_member_at_its_threshold():
    m = _meso()
    panel = PanelDetector([m], name="solo").eval()
    assert panel.cfg.input_size == m.cfg.input_size and panel.cfg.crop_margin == m.cfg.crop_margin
    x = torch.rand(3, 3, 256, 256)
    with torch.no_grad():
        assert torch.allclose(panel(x), m(x), atol=1e-6)  # threshold 0.5: logit offset 0


def test_panel_members_see_their_own_crops(astronaut):
    from fakescope.data.contract import CropContract, cut_face
    from fakescope.data.faces import create_face_detector

    a, b = _mobile160(), _meso()
    panel = PanelDetector([a, b], name="p")
    face = create_face_detector("haar").detect(astronaut)[0]
    wide = cut_face(astronaut, face, CropContract.from_cfg(panel.cfg))
    # the finest member's own crop, pixel for pixel
    assert np.array_equal(wide, cut_face(astronaut, face, CropContract.from_cfg(b.cfg)))
    # the other's own crop (unaligned, as the panel cuts it) up to a sub-pixel shift of the cut
    own = cut_face(astronaut, face, CropContract.from_cfg(a.cfg.with_(crop_align=False))).astype(np.float32)
    x = torch.from_numpy(wide).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        seen = panel.views[0](x)[0].permute(1, 2, 0).numpy()
    assert seen.shape == own.shape
    assert np.abs(seen - own).mean() < 4.0


def test_named_panel_in_predict_and_onnx_export(face_jpg, tmp_path):
    from fakescope.export import OnnxDetector, export_onnx_bytes
    from fakescope.models.ensemble import NamedEnsemble, register_ensemble

    with pytest.raises(ValueError, match="combine rule"):
        NamedEnsemble("bad", ("meso4",), combine="vote")
    register_ensemble(NamedEnsemble("test_panel", ("meso4", "meso4"), combine="any", member_thresholds=(0.3, 0.6)))
    model, meta = load_model("test_panel")
    assert isinstance(model, PanelDetector) and meta["members"] == ["meso4", "meso4"]
    x = torch.rand(2, 3, 256, 256)
    onnx = OnnxDetector(export_onnx_bytes(model, model.cfg.input_size))
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.allclose(np.asarray(onnx(x.numpy())).reshape(-1), ref, atol=1e-4)
    with Predictor("test_panel", detector="haar") as pred:
        assert pred.contract.size == 256 and pred.threshold == 0.5
        res = pred.analyze(face_jpg)
        crop = pred.face_inputs(face_jpg)[0].image
        loaded = pred.loaded.torch_model  # bare meso4 members: random weights, drawn again at each load
    xc = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        assert res.frames[0].fake_prob == pytest.approx(float(loaded.predict_proba(xc)), abs=1e-5)


def test_panel_thresholds_are_checked_with_messages_that_name_the_member():
    from fakescope.models.ensemble import NamedEnsemble

    with pytest.raises(ValueError, match=r"member 0 \(meso4\).*\(0, 1\)"):
        PanelDetector([_meso()], [1.0])
    with pytest.raises(ValueError, match="2 members but 1 member_thresholds"):
        NamedEnsemble("x.p", ("meso4", "meso4"), combine="any", member_thresholds=(0.5,))
    with pytest.raises(ValueError, match=r"decides at 0\.5"):
        NamedEnsemble("x.q", ("meso4",), combine="any", threshold=0.8)
    # a member's own threshold: an ensemble's (not its first member's cfg)
    ens = EnsembleDetector([_meso(), _meso()], threshold=0.3)
    assert PanelDetector([ens], name="p").member_thresholds == [0.3]
