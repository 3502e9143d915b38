"""Attacks: registry, threat-model bounds, determinism, and real damage to the trained demo model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from fakescope.attacks import create_attack, list_attacks, parse_eps
from fakescope.models._cfg import DetectorCfg
from fakescope.models.base import Detector

ALL = ["fgsm", "fgsm_rs", "pgd_l2", "pgd_linf", "robust_eot", "square"]
FAST = {
    "robust_eot": {"steps": 2, "nb_samples": 2},
    "square": {"steps": 20},
    "pgd_linf": {"steps": 3},
    "pgd_l2": {"steps": 3},
}


def tiny_detector(seed: int = 0) -> Detector:
    """A random-init 32 px Detector (bounds and determinism do not need a trained model)."""
    torch.manual_seed(seed)
    cfg = DetectorCfg(arch="tiny", input_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())
    return Detector(backbone, nn.Linear(128, 1), cfg, num_features=128).eval()


@pytest.fixture(scope="module")
def tiny() -> tuple[Detector, torch.Tensor, torch.Tensor]:
    model = tiny_detector()
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = (model(x) > 0).float()  # attack correctly classified inputs so every attack has work to do
    return model, x, y


def test_registry_names_and_errors() -> None:
    assert set(ALL) <= set(list_attacks())
    with pytest.raises(ValueError, match="pgd_linf"):
        create_attack("nope", tiny_detector(), eps=0.1)
    with pytest.raises(ValueError, match="does not take"):
        create_attack("fgsm", tiny_detector(), eps=0.1, nb_samples=3)
    assert create_attack("pgd", tiny_detector(), eps=0.1).name == "pgd_linf"


def test_parse_eps() -> None:
    assert parse_eps("2/255, 8/255,0.5") == pytest.approx([2 / 255, 8 / 255, 0.5])
    with pytest.raises(ValueError, match="8/255"):
        parse_eps("eight")


@pytest.mark.parametrize("name", ALL)
def test_attack_respects_bound_and_range(tiny, name: str) -> None:
    model, x, y = tiny
    eps = 0.5 if name == "pgd_l2" else 8 / 255
    x_adv = create_attack(name, model, eps=eps, seed=3, **FAST.get(name, {}))(x, y)
    delta = x_adv - x
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    if name == "pgd_l2":
        assert float(delta.flatten(1).norm(dim=1).max()) <= eps + 1e-5
    else:
        assert float(delta.abs().max()) <= eps + 1e-6
    assert float(delta.abs().max()) > 0  # it did something
    assert not model.training


@pytest.mark.parametrize("name", ALL)
def test_attack_is_deterministic_with_seed(tiny, name: str) -> None:
    model, x, y = tiny
    eps = 0.5 if name == "pgd_l2" else 8 / 255
    a = create_attack(name, model, eps=eps, seed=7, **FAST.get(name, {}))(x, y)
    b = create_attack(name, model, eps=eps, seed=7, **FAST.get(name, {}))(x, y)
    assert torch.equal(a, b)


def test_attack_restores_train_mode(tiny) -> None:
    model, x, y = tiny
    model.train()
    try:
        create_attack("fgsm", model, eps=4 / 255)(x, y)
        assert model.training
    finally:
        model.eval()


@pytest.fixture(scope="module")
def demo_test_images(demo_checkpoint):
    from fakescope.attacks.evaluate import load_images
    from fakescope.models import load_checkpoint

    ckpt, manifest = demo_checkpoint
    model, meta = load_checkpoint(ckpt)
    x, y, _ = load_images(manifest, model.cfg.input_size, "test", max_images=48, seed=0)
    return model, meta, x, y


def test_pgd_8_drives_demo_fake_recall_below_20_percent(demo_test_images) -> None:
    from fakescope.attacks.evaluate import predict_proba, run_attack

    model, meta, x, y = demo_test_images
    thr = float(meta.get("threshold", 0.5))
    fakes = x[y == 1]
    clean_recall = float((predict_proba(model, fakes) >= thr).mean())
    assert clean_recall >= 0.6, "the demo model should catch most fakes before the attack"
    x_adv = run_attack(model, fakes, np.ones(len(fakes), int), "pgd_linf", 8 / 255, seed=0)
    adv_recall = float((predict_proba(model, x_adv) >= thr).mean())
    assert adv_recall < 0.2


def test_attack_cli_writes_report(demo_checkpoint, tmp_path) -> None:
    from typer.testing import CliRunner

    from fakescope.cli.main import app

    ckpt, manifest = demo_checkpoint
    out = tmp_path / "rob"
    res = CliRunner().invoke(
        app,
        [
            "attack",
            str(ckpt),
            str(manifest),
            "--attack",
            "fgsm",
            "--eps",
            "4/255,8/255",
            "--max-images",
            "16",
            "--out",
            str(out),
            "--save-examples",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert [r["eps_label"] for r in report["results"]] == ["4/255", "8/255"]
    for r in report["results"]:
        assert r["linf_max"] <= r["eps"] + 1e-6
        assert 0 < r["ssim_mean"] <= 1
    assert report["results"][1]["attack_success_rate"] >= report["results"][0]["attack_success_rate"] - 0.1
    assert (out / "robustness_curve.png").stat().st_size > 1000
    assert "| 8/255 |" in (out / "report.md").read_text()
    assert len(list((out / "examples" / "eps_8-255").glob("*.png"))) == report["n_images"]
    bad = CliRunner().invoke(app, ["attack", str(ckpt), str(manifest), "--eps", "x/255"])
    assert bad.exit_code != 0


def test_video_attack_end_to_end(demo_checkpoint, demo_media, tmp_path) -> None:
    import pandas as pd

    from fakescope.data.media import probe_video
    from fakescope.video_attack import attack_video

    ckpt, _ = demo_checkpoint
    media = pd.read_csv(demo_media)
    fake_video = demo_media.parent / media[(media["kind"] == "video") & (media["label"] == 1)]["path"].iloc[0]
    report = attack_video(
        ckpt, fake_video, tmp_path, eps=8 / 255, attack="pgd_linf", crf=23, detector="haar", num_frames=8, steps=5
    )
    assert report["n_crops"] > 0
    assert report["crop"]["success_rate"] >= 0.5
    assert 0.0 <= report["crop"]["success_rate_after_paste"] <= 1.0
    for key in ("original", "reencoded_clean", "attacked"):
        assert report[key]["verdict"] in {"fake", "real", "no-face", "error"}
    assert isinstance(report["survives_reencoding"], bool)
    info = probe_video(report["attacked_video"])
    assert info.num_frames == report["n_frames"]
    assert json.loads((tmp_path / "video_attack.json").read_text())["crf"] == 23


def test_face_detector_attack_lowers_the_face_score(blazeface_detector, astronaut) -> None:
    """Square Attack on BlazeFace's face score lowers it within eps in 8 bits; success is the unchanged detect()."""
    import cv2

    from fakescope.attacks.face_detector import hide_face

    det = blazeface_detector
    frame = np.full((720, 1280, 3), 128, np.uint8)  # a small picture in a 720p frame, as in the DFDC dev videos
    frame[100:356, 500:756] = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    faces = det.detect(frame)
    assert faces and det.max_score(frame) >= det.min_score  # max_score agrees with detect on the clean frame
    adv, info = hide_face(det, frame, faces[0].box, eps=8 / 255, method="square", queries=100, seed=0)
    assert np.abs(adv.astype(int) - frame.astype(int)).max() <= 8
    assert info["score_adv"] < info["score_clean"]
    assert info["hidden"] == (len(det.detect(adv)) == 0)
