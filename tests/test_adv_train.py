"""Adversarial training makes the demo model more accurate under PGD 4/255 than the undefended one."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch


def _robust_accuracy(model, x, y, thr: float, seed: int = 0) -> float:
    from fakescope.attacks.evaluate import predict_proba, run_attack

    x_adv = run_attack(model, x, y, "pgd_linf", 4 / 255, seed=seed)
    return float(((predict_proba(model, x_adv) >= thr).astype(int) == y).mean())


@pytest.fixture(scope="module")
def demo_train_test(demo_checkpoint):
    from fakescope.attacks.evaluate import load_images
    from fakescope.models import load_checkpoint

    ckpt, manifest = demo_checkpoint
    model, meta = load_checkpoint(ckpt)
    x_tr, y_tr, _ = load_images(manifest, model.cfg.input_size, "train", max_images=96, seed=0)
    x_te, y_te, _ = load_images(manifest, model.cfg.input_size, "test", max_images=40, seed=1)
    return model, meta, x_tr, y_tr, x_te, y_te


def test_fast_fgsm_finetuning_raises_pgd4_accuracy(demo_train_test) -> None:
    """Fast variant: fine-tune the demo model for a few epochs with fast-FGSM batches via the training engine."""
    from fakescope.attacks import create_attack
    from fakescope.train.engine import train_one_epoch

    model, _meta, x_tr, y_tr, x_te, y_te = demo_train_test
    thr = 0.5
    before = _robust_accuracy(model, x_te, y_te, thr)
    robust = copy.deepcopy(model)
    attack = create_attack("fgsm_rs", robust, eps=4 / 255, seed=0)
    opt = torch.optim.Adam(robust.parameters(), lr=1e-3)
    ds = torch.utils.data.TensorDataset(x_tr, torch.as_tensor(y_tr, dtype=torch.float32), torch.arange(len(y_tr)))
    loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    for _ in range(4):
        train_one_epoch(
            robust, loader, opt, torch.nn.BCEWithLogitsLoss(), torch.device("cpu"), attack=attack, adv_ratio=0.5
        )
    robust.eval()
    after = _robust_accuracy(robust, x_te, y_te, thr)
    assert after > before + 0.1, (before, after)


@pytest.mark.slow
def test_fit_with_adv_pgd_beats_undefended(demo_checkpoint, tmp_path) -> None:
    """Full recipe: ``fit`` with ``adv=pgd_linf, adv_eps=4/255`` against the undefended demo model."""
    from fakescope.attacks.evaluate import load_images
    from fakescope.models import load_checkpoint
    from fakescope.train import fit, load_train_config

    ckpt, manifest = demo_checkpoint
    demo_config = Path(__file__).resolve().parents[1] / "configs" / "demo" / "meso4.yaml"
    cfg = load_train_config(demo_config, device="cpu", num_workers=0, adv="pgd_linf", adv_eps=4 / 255, adv_steps=3)
    result = fit(cfg, manifest, tmp_path / "adv")
    plain, _ = load_checkpoint(ckpt)
    robust, _ = load_checkpoint(result.best_checkpoint)
    x, y, _ = load_images(manifest, plain.cfg.input_size, "test", max_images=60, seed=1)
    assert _robust_accuracy(robust, x, y, 0.5) > _robust_accuracy(plain, x, y, 0.5)
    assert np.isfinite(result.best_val_auc)
