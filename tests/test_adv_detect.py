"""Adversarial-input detection: feature squeezing and the learned feature detector on the demo model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fakescope.defenses import FeatureDetector, FeatureSqueezing
from fakescope.defenses.squeezing import median_filter, reduce_bit_depth


def test_squeezers_basic() -> None:
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    q = reduce_bit_depth(x, 1)
    assert set(torch.unique(q.detach()).tolist()) <= {0.0, 1.0}
    q.sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))  # straight-through
    const = torch.full((1, 1, 5, 5), 0.3)
    const[0, 0, 2, 2] = 1.0  # a lone outlier disappears under a 3x3 median
    assert torch.allclose(median_filter(const, 3), torch.full_like(const, 0.3))


@pytest.mark.parametrize("size", [2, 3, 4, 5])
def test_median_filter_is_scipys(size: int) -> None:
    """The median squeezer equals the paper's reference, ``scipy.ndimage.median_filter(mode="reflect")``."""
    from scipy import ndimage

    rng = np.random.default_rng(size)
    x = rng.random((2, 3, 7, 9)).astype(np.float32)
    x[0, 0, :2, :2] = 0.5  # ties
    ref = ndimage.median_filter(x, size=(1, 1, size, size), mode="reflect")
    np.testing.assert_array_equal(median_filter(torch.from_numpy(x), size).numpy(), ref)


@pytest.fixture(scope="module")
def demo_split_images(demo_checkpoint):
    from fakescope.attacks.evaluate import load_images
    from fakescope.models import load_checkpoint

    ckpt, manifest = demo_checkpoint
    model, meta = load_checkpoint(ckpt)
    x_val, y_val, _ = load_images(manifest, model.cfg.input_size, "val", max_images=40, seed=0)
    x_test, y_test, _ = load_images(manifest, model.cfg.input_size, "test", max_images=40, seed=1)
    return model, meta, x_val, y_val, x_test, y_test


def test_feature_squeezing_detects_pgd8(demo_split_images, tmp_path) -> None:
    from sklearn.metrics import roc_auc_score

    from fakescope.attacks.evaluate import run_attack

    model, _, x_val, _, x_test, y_test = demo_split_images
    fs = FeatureSqueezing(model).fit(x_val)
    assert fs.threshold is not None
    assert (fs.score(x_val) > fs.threshold).mean() <= 0.05 + 0.05  # fitted at 5 % FPR on these (measured 0.05)
    fakes = x_test[y_test == 1]
    x_adv = run_attack(model, fakes, np.ones(len(fakes), int), "pgd_linf", 8 / 255, seed=0)
    clean, adv = fs.score(x_test), fs.score(x_adv)
    auroc = roc_auc_score(np.r_[np.zeros(len(clean)), np.ones(len(adv))], np.r_[clean, adv])
    assert auroc >= 0.8  # 0.88-1.0 over demo models; a non-adaptive attack, which squeezing is meant to catch
    # JSON round trip gives the same scores
    loaded = FeatureSqueezing.load(model, fs.save(tmp_path / "fs.json"))
    assert loaded.threshold == pytest.approx(fs.threshold)
    np.testing.assert_allclose(loaded.score(x_adv[:4]), adv[:4], atol=1e-6)


@pytest.mark.slow  # trains the learned detector on PGD crops; reproducible since the demo clips are (CI runs it)
def test_learned_detector_and_json(demo_split_images) -> None:
    from fakescope.attacks.evaluate import run_attack

    model, _, x_val, y_val, x_test, y_test = demo_split_images
    # every image attacked away from its true class (reals pushed to fake too): twice the adversarial examples
    # of attacking the fakes alone, so the fit and the AUROC do not hang on a score or two
    adv_val = run_attack(model, x_val, np.asarray(y_val, int), "pgd_linf", 8 / 255)
    det = FeatureDetector(model).fit(x_val, adv_val)
    adv_test = run_attack(model, x_test, np.asarray(y_test, int), "pgd_linf", 8 / 255, seed=5)
    from sklearn.metrics import roc_auc_score

    s_clean, s_adv = det.score(x_test), det.score(adv_test)
    auroc = roc_auc_score(np.r_[np.zeros(len(s_clean)), np.ones(len(s_adv))], np.r_[s_clean, s_adv])
    assert auroc > 0.7
    again = FeatureDetector.from_dict(model, json.loads(json.dumps(det.to_dict())))
    np.testing.assert_allclose(again.score(adv_test), s_adv, atol=1e-6)
    # the torch head used by the adaptive attacker matches the NumPy logistic regression
    with torch.no_grad():
        f = model.forward_features(adv_test[:4])
        z = det.torch_head()(f).reshape(-1).numpy()
    np.testing.assert_allclose(z, det.logits(f.numpy()), rtol=1e-4, atol=1e-4)


def test_adv_detect_cli_fit_and_score(demo_checkpoint, tmp_path) -> None:
    from typer.testing import CliRunner

    from fakescope.cli.main import app

    ckpt, manifest = demo_checkpoint
    det = tmp_path / "det.json"
    res = CliRunner().invoke(
        app,
        [
            "adv-detect",
            "fit",
            str(ckpt),
            str(manifest),
            "--out",
            str(det),
            "--max-images",
            "12",
            "--eps",
            "8/255",
            "--eval-attacks",
            "pgd_linf",
            "--steps",
            "3",
            "--attackers",
            "adaptive_mean,adaptive_penalty,adaptive_both",
            "--adaptive-steps",
            "5",
            "--adaptive-restarts",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(det.read_text())
    assert data["squeezing"]["threshold"] is not None and len(data["learned"]["coef"]) > 0
    report = json.loads((tmp_path / "det.report.json").read_text())
    kinds = {(r["attack"], r["detector"]) for r in report["results"]}
    for name in ("pgd_linf", "adaptive_mean", "adaptive_penalty", "adaptive_both"):  # every attacker, both detectors
        assert {(name, "feature_squeezing"), (name, "feature_logreg")} <= kinds
    assert all(0 <= r["auroc"] <= 1 for r in report["results"])
    assert all(r["success_undetected"] <= r["attack_success_rate"] for r in report["results"])
    out_csv = tmp_path / "scores.csv"
    res = CliRunner().invoke(
        app, ["adv-detect", "score", str(det), str(ckpt), str(manifest), "--max-images", "8", "--out", str(out_csv)]
    )
    assert res.exit_code == 0, res.output
    import pandas as pd

    df = pd.read_csv(out_csv)
    assert len(df) == 8 and df["squeeze_score"].between(0, 2).all()


def test_bpda_gradient_through_every_squeezer_is_nonzero(demo_split_images) -> None:
    """Tramer et al.'s gradient-masking check: the adaptive attacker gets a gradient through every branch."""
    from fakescope.defenses.adaptive import squeezer_gradients

    model, _, _, _, x_test, _ = demo_split_images
    fs = FeatureSqueezing(model)
    grads = squeezer_gradients(fs, x_test[:4])
    assert set(grads) == {"identity", "bit_depth_5", "median_2x2", "jpeg_75"}
    assert all(g > 0 for g in grads.values()), grads
    # the check can fail: a squeezer without the straight-through estimator masks the gradient completely
    fs.squeezers = lambda: {"round_no_bpda": lambda x: torch.round(x * 31) / 31}
    assert squeezer_gradients(fs, x_test[:4])["round_no_bpda"] == 0.0


def test_all_branch_attack_beats_the_mean_attack(demo_split_images) -> None:
    """On the same fakes and budget, every-branch + penalty evades squeezing at least as often as the mean attack."""
    from fakescope.attacks.evaluate import predict_proba
    from fakescope.defenses.evaluate import AdaptiveConfig, make_attacker

    model, meta, x_val, _, x_test, y_test = demo_split_images
    thr = float(meta.get("threshold", 0.5))
    fs = FeatureSqueezing(model).fit(x_val)
    fakes = x_test[y_test == 1]
    cfg = AdaptiveConfig(steps=20, restarts=2)
    won = {}
    for name in ("adaptive_mean", "adaptive_penalty"):
        atk = make_attacker(name, model, fs, None, 4 / 255, thr, seed=3, steps=10, cfg=cfg)
        x_adv = atk(fakes, torch.ones(len(fakes)))
        assert (x_adv - fakes).abs().max() <= 4 / 255 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        won[name] = float(((predict_proba(model, x_adv) < thr) & ~fs.predict(x_adv)).mean())
    assert won["adaptive_penalty"] >= won["adaptive_mean"], won


def test_adaptive_loop_on_the_undefended_model_matches_pgd(demo_split_images) -> None:
    """With no detector targeted, the adaptive loop is plain PGD: its success matches ART's PGD on the same fakes."""
    from fakescope.attacks.evaluate import predict_proba, run_attack
    from fakescope.defenses.adaptive import AdaptiveAttack

    model, meta, _, _, x_test, y_test = demo_split_images
    thr = float(meta.get("threshold", 0.5))
    fakes = x_test[y_test == 1]
    caught = predict_proba(model, fakes) >= thr
    fakes = fakes[caught]
    eps = 0.5 / 255  # small enough that neither attack wins every image
    ours = AdaptiveAttack(model, eps, threshold=thr, steps=20, restarts=1, seed=0)
    s_ours = float((predict_proba(model, ours(fakes)) < thr).mean())
    art = run_attack(model, fakes, np.ones(len(fakes), int), "pgd_linf", eps, seed=0, steps=20)
    s_art = float((predict_proba(model, art) < thr).mean())
    assert abs(s_ours - s_art) <= 0.15, (s_ours, s_art)
    assert s_ours >= s_art - 1 / len(fakes)
    # the trace gives monotone curves that end at the measured success
    by_step = ours.trace.success_by_step(20)
    assert by_step == sorted(by_step) and by_step[-1] == pytest.approx(s_ours)
