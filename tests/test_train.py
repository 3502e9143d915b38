"""Training: learning on demo data, model selection by AUC, resume, configs, k-fold ensembles, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from fakescope.data.manifest import read_manifest, write_manifest
from fakescope.models import load_checkpoint, read_checkpoint_metadata
from fakescope.train import (
    ConfigError,
    TrainConfig,
    fit,
    load_ensemble,
    load_model,
    load_train_config,
    predict_scores,
)
from fakescope.train.engine import select_best_epoch
from fakescope.train.state import STATE_NAME

REPO = Path(__file__).resolve().parents[1]

FAST = {
    "model": "meso4",
    "batch_size": 8,
    "max_steps_per_epoch": 2,
    "precise_bn_batches": 2,
    "augment": False,
    "device": "cpu",
    "patience": 0,
    "cache_images": "true",
}


@pytest.fixture(scope="module")
def small_manifest(demo_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 train + 12 val + 4 test rows of the demo manifest (group-disjoint, absolute crop paths)."""
    df = read_manifest(demo_manifest)
    root = Path(demo_manifest).parent
    parts = []
    for split, n in (("train", 12), ("val", 6), ("test", 2)):
        for label in (0, 1):
            parts.append(df[(df["split"] == split) & (df["label"] == label)].head(n))
    small = pd.concat(parts).reset_index(drop=True)
    small["crop_path"] = [str(root / p) for p in small["crop_path"]]
    return write_manifest(small, tmp_path_factory.mktemp("small") / "manifest.parquet")


# ------------------------------------------------------------------------------------------------ learning


def test_meso4_learns_demo_data(demo_run, demo_manifest: Path) -> None:
    assert demo_run.best_val_auc >= 0.9, demo_run.history
    model, meta = load_checkpoint(demo_run.best_checkpoint)
    df = read_manifest(demo_manifest)
    val = df[df["split"] == "val"].reset_index(drop=True)
    probs = predict_scores(model, val, demo_manifest)
    # the checkpoint reproduces the AUC it was selected for, computed independently with scikit-learn
    assert roc_auc_score(val["label"], probs) == pytest.approx(demo_run.best_val_auc, abs=1e-6)
    assert 0.0 < meta["threshold"] < 1.0 and meta["threshold"] == pytest.approx(demo_run.threshold)
    assert meta["cfg"]["input_size"] == 256 and meta["fakescope_version"]
    # held-out test rows: still clearly above chance
    test = df[df["split"] == "test"].reset_index(drop=True)
    assert roc_auc_score(test["label"], predict_scores(model, test, demo_manifest)) > 0.75
    run = demo_run.run_dir
    for name in ("config.yaml", "run.json", "metrics.csv", "steps.csv", "train.log", "result.json", STATE_NAME):
        assert (run / name).is_file(), name
    assert len(pd.read_csv(run / "metrics.csv")) == len(demo_run.history)
    assert "class balancing: weighted sampling" in (run / "train.log").read_text()


def test_best_checkpoint_is_chosen_by_validation_auc(demo_run) -> None:
    best = select_best_epoch(demo_run.history)
    assert read_checkpoint_metadata(demo_run.best_checkpoint)["epoch"] == demo_run.history[best]["epoch"]
    assert demo_run.best_val_auc == max(h["val_auc"] for h in demo_run.history)
    # selection ignores loss and accuracy: epoch 1 has the best loss/accuracy, epoch 2 the best AUC
    crafted = [
        {"val_auc": 0.70, "val_loss": 0.60, "val_acc": 0.80},
        {"val_auc": 0.75, "val_loss": 0.20, "val_acc": 0.90},
        {"val_auc": 0.90, "val_loss": 0.50, "val_acc": 0.55},
        {"val_auc": float("nan"), "val_loss": 0.10, "val_acc": 0.99},
    ]
    assert select_best_epoch(crafted) == 2


def test_imbalanced_training_is_balanced_and_reported(small_manifest: Path, tmp_path: Path) -> None:
    df = read_manifest(small_manifest)
    drop = df.index[(df["split"] == "train") & (df["label"] == 1)][3:]  # 12 real vs 3 fake in train
    imb = write_manifest(df.drop(index=drop), tmp_path / "imb" / "manifest.parquet")
    events: list[tuple[str, dict]] = []
    cfg = TrainConfig(**{**FAST, "epochs": 1, "max_steps_per_epoch": 1})
    fit(cfg, imb, tmp_path / "run", callback=lambda e, i: events.append((e, i)))
    start = next(i for e, i in events if e == "start")
    assert start["class_balance"]["counts"] == {"real": 12, "fake": 3}
    assert start["class_balance"]["weights"]["fake"] / start["class_balance"]["weights"]["real"] == pytest.approx(4)
    assert "12 real, 3 fake" in (tmp_path / "run" / "train.log").read_text()
    run_cfg = (tmp_path / "run" / "config.yaml").read_text()
    assert "balance: sampler" in run_cfg


# ------------------------------------------------------------------------------------------------ resume


def test_resume_after_interruption_matches_uninterrupted_run(small_manifest: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(**{**FAST, "epochs": 3, "scheduler": "step", "step_size": 1, "gamma": 0.5, "optimizer": "adamw"})
    full = fit(cfg, small_manifest, tmp_path / "full")

    def interrupt(event: str, info: dict) -> None:
        if event == "epoch_end" and info["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(cfg, small_manifest, tmp_path / "cut", callback=interrupt)
    assert len(pd.read_csv(tmp_path / "cut" / "metrics.csv")) == 2
    resumed = fit(cfg, small_manifest, tmp_path / "cut", resume=True)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    for a, b in zip(full.history, resumed.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4, abs=1e-5)
        assert a["val_auc"] == pytest.approx(b["val_auc"], abs=1e-6)
        assert a["lr"] == pytest.approx(b["lr"])
    m_full, _ = load_checkpoint(tmp_path / "full" / "last.safetensors")
    m_cut, _ = load_checkpoint(tmp_path / "cut" / "last.safetensors")
    for (k, p), q in zip(m_full.state_dict().items(), m_cut.state_dict().values(), strict=True):
        assert torch.allclose(p.float(), q.float(), atol=1e-5), k


def test_resume_without_state_is_an_actionable_error(small_manifest: Path, tmp_path: Path) -> None:
    from fakescope.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no training state"):
        fit(TrainConfig(**FAST, epochs=1), small_manifest, tmp_path / "new", resume=True)


# ------------------------------------------------------------------------------------------------ configs


def test_yaml_overrides_and_flags_resolve(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: cnn\nepochs: 20\nlr: 0.01\naugment:\n  flip: 0.2\n  self_blend: 0.1\n")
    cfg = load_train_config(path, ["epochs=3", "lr=1e-3", "augment.jpeg_p=0", "model_kwargs.drop_rate=0"], seed=7)
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.seed) == ("cnn", 3, 1e-3, 7)
    assert (cfg.augment.flip, cfg.augment.self_blend, cfg.augment.jpeg_p) == (0.2, 0.1, 0.0)
    assert cfg.augment.enabled and cfg.model_kwargs == {"drop_rate": 0}
    assert load_train_config(None, ["augment=false"]).augment.enabled is False
    with pytest.raises(ConfigError, match="valid keys"):
        load_train_config(None, ["epocs=3"])
    with pytest.raises(ConfigError, match="adam"):
        load_train_config(None, ["optimizer=lbfgs"])
    with pytest.raises(ConfigError, match="epochs"):
        load_train_config(None, ["epochs=many"])


def test_study_and_demo_configs_load() -> None:
    names = {p.stem for p in (REPO / "configs" / "study").glob("*.yaml")}
    assert {"cnn-adam", "cnn-rmsprop", "resnet50", "xception", "mesoinception4-ensemble", "vit"} <= names
    for path in sorted((REPO / "configs").rglob("*.yaml")):
        cfg = load_train_config(path)
        assert cfg.epochs >= 1, path
    assert load_train_config(REPO / "configs/study/mesoinception4-ensemble.yaml").folds == 5
    assert load_train_config(REPO / "configs/study/cnn-rmsprop.yaml").optimizer == "rmsprop"


# ------------------------------------------------------------------------------------------------ k-fold


def test_kfold_ensemble(small_manifest: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(**{**FAST, "epochs": 1, "folds": 2})
    res = fit(cfg, small_manifest, tmp_path / "ens")
    desc = json.loads(res.best_checkpoint.read_text())
    assert res.best_checkpoint.name == "ensemble.json" and len(desc["members"]) == 2
    assert all((tmp_path / "ens" / m).is_file() for m in desc["members"])
    folds = pd.read_csv(tmp_path / "ens" / "folds.csv")
    assert folds.groupby("group_id")["fold"].nunique().max() == 1  # groups never cross folds
    ens = load_ensemble(res.best_checkpoint)
    x = torch.rand(3, 3, 256, 256)
    members = [load_checkpoint(tmp_path / "ens" / m)[0] for m in desc["members"]]
    with torch.no_grad():
        mean_p = torch.stack([torch.sigmoid(m(x)) for m in members]).mean(0)
        assert torch.allclose(torch.sigmoid(ens(x)), mean_p, atol=1e-5)
        assert torch.allclose(ens.forward_head(ens.forward_features(x)), ens(x), atol=1e-5)
    model, meta = load_model(res.best_checkpoint)
    assert meta["threshold"] == pytest.approx(res.threshold) and math.isfinite(res.best_val_auc)
    df = read_manifest(small_manifest)
    assert predict_scores(model, df, small_manifest).shape == (len(df),)


# ------------------------------------------------------------------------------------------------ CLI, hooks


def test_cli_train_runs_and_rejects_bad_config(small_manifest: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fakescope.cli.main import app

    out = tmp_path / "cli"
    args = ["train", "--manifest", str(small_manifest), "--out", str(out), "--model", "meso4", "--epochs", "1"]
    args += ["--batch-size", "8", "--set", "max_steps_per_epoch=1", "--set", "augment=false", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "best.safetensors").is_file() and "validation AUC" in result.output
    bad = CliRunner().invoke(app, ["train", "--manifest", str(small_manifest), "--out", str(out), "--set", "lr=-1"])
    assert bad.exit_code != 0


def test_adversarial_training_hook_calls_the_attack(small_manifest: Path, tmp_path: Path) -> None:
    import fakescope.attacks as attacks

    calls = []
    real_create = attacks.create_attack

    def spy(*args, **kwargs):
        attack = real_create(*args, **kwargs)

        def wrapped(x, y):
            calls.append(x.shape[0])
            out = attack(x, y)
            assert (out - x).abs().max() <= kwargs["eps"] + 1e-6
            return out

        return wrapped

    attacks.create_attack = spy
    try:
        cfg = TrainConfig(**{**FAST, "epochs": 1, "max_steps_per_epoch": 1, "adv": "fgsm_rs", "adv_eps": 4 / 255})
        res = fit(cfg, small_manifest, tmp_path / "adv")
    finally:
        attacks.create_attack = real_create
    assert calls == [8] and np.isfinite(res.history[0]["train_loss"])
    # the run reports its clean-versus-robust trade-off on the validation split
    report = json.loads((tmp_path / "adv" / "robustness.json").read_text())
    assert report == res.robustness
    assert report["n_images"] == 12 and report["eps"] == pytest.approx(4 / 255)
    assert set(report["clean"]) == set(report["attacked"]) >= {"auc", "balanced_accuracy", "fake_recall"}
    assert "clean vs robust" in (tmp_path / "adv" / "train.log").read_text()


def test_robustness_summary_shows_the_attack_hurts(demo_run, demo_manifest: Path) -> None:
    from fakescope.models import load_checkpoint
    from fakescope.train.engine import robustness_summary

    model, meta = load_checkpoint(demo_run.best_checkpoint)
    df = read_manifest(demo_manifest)
    val = df[df["split"] == "val"]
    report = robustness_summary(model, val, Path(demo_manifest).parent, 8 / 255, meta["threshold"], max_images=32)
    assert report["n_images"] == 32
    assert report["clean"]["balanced_accuracy"] > 0.8  # the demo model is good on clean crops...
    assert report["attacked"]["balanced_accuracy"] < report["clean"]["balanced_accuracy"] - 0.3  # ...not under PGD


# ------------------------------------------------------------------------------------------------ recipes


def test_warmup_cosine_steps_the_rate_every_step(small_manifest: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(
        **{**FAST, "epochs": 2, "max_steps_per_epoch": 3},
        scheduler="warmup_cosine",
        warmup_steps=2,
        lr=1e-3,
        min_lr=1e-5,
    )
    fit(cfg, small_manifest, tmp_path / "run")
    lrs = pd.read_csv(tmp_path / "run" / "steps.csv")["lr"].to_numpy()
    assert len(lrs) == 6
    assert lrs[0] < lrs[1] < lrs[2] == pytest.approx(1e-3)  # linear warm-up, then the peak
    assert np.all(np.diff(lrs[2:]) < 0) and lrs[-1] < 3e-4  # cosine decay, step by step


def test_checkpoint_records_the_crop_contract_of_its_data(
    demo_manifest: Path, small_manifest: Path, tmp_path: Path
) -> None:
    """The manifest's prepare options (crop size, margin, alignment) and input_size land in the checkpoint."""
    import shutil

    import yaml

    shutil.copy(Path(demo_manifest).parent / "config.yaml", small_manifest.parent / "config.yaml")
    try:
        prep = yaml.safe_load((small_manifest.parent / "config.yaml").read_text())
        res = fit(TrainConfig(**{**FAST, "model": "mobilenet_v2"}, input_size=96), small_manifest, tmp_path / "run")
    finally:
        (small_manifest.parent / "config.yaml").unlink()
    model, _ = load_checkpoint(res.best_checkpoint)
    assert model.cfg.input_size == 96
    assert model.cfg.crop_size == prep["size"] and model.cfg.crop_margin == prep["margin"]
    assert model.cfg.crop_align == prep["align"]


def test_real_only_trains_on_self_blended_fakes(small_manifest: Path, tmp_path: Path) -> None:
    from fakescope.train.config import ConfigError

    with pytest.raises(ConfigError, match="self_blend"):
        TrainConfig(**{**FAST, "real_only": True, "balance": "none"})
    cfg = TrainConfig(**{**FAST, "augment": {"self_blend": 0.5, "flip": 0.0}, "real_only": True, "balance": "none"})
    res = fit(cfg, small_manifest, tmp_path / "run")
    assert res.best_checkpoint.is_file()
    meta = read_checkpoint_metadata(res.best_checkpoint)
    assert meta["train"]["class_balance"]["counts"] == {"real": 12, "fake": 0}


def test_input_size_a_model_cannot_take_is_a_clear_error(small_manifest: Path, tmp_path: Path) -> None:
    from fakescope.train.config import ConfigError

    with pytest.raises(ConfigError, match="does not take 128 px"):
        fit(TrainConfig(**FAST, input_size=128), small_manifest, tmp_path / "run")


# ------------------------------------------------------------------------------------------------ options
# Each test fails when its option is ignored (issue 15, item 3). "Frozen" runs use plain SGD at lr 1e-30: the
# weights cannot move by more than float32 rounding, so such a run's checkpoint is its starting point.

STILL = {"optimizer": "sgd", "momentum": 0.0, "lr": 1e-30}


def _params(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The trainable parameters (not the BatchNorm buffers) of a checkpoint."""
    model, _ = load_checkpoint(checkpoint)
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], names) -> bool:
    return all(torch.allclose(a[n], b[n], rtol=0, atol=1e-9) for n in names)


def test_patience_stops_training_early(demo_checkpoint, small_manifest: Path, tmp_path: Path) -> None:
    # from the trained demo model at lr 1e-30 the validation AUC cannot improve: patience 1 stops after epoch 2
    start = {**FAST, **STILL, "init_checkpoint": str(demo_checkpoint[0])}
    res = fit(TrainConfig(**{**start, "epochs": 5, "patience": 1}), small_manifest, tmp_path / "a")
    assert len(res.history) == 2 and res.stopped_early
    res = fit(TrainConfig(**{**start, "epochs": 3, "patience": 0}), small_manifest, tmp_path / "b")
    assert len(res.history) == 3 and not res.stopped_early


def test_balance_loss_weights_the_minority_class(demo_manifest: Path, tmp_path: Path) -> None:
    """With fakes the minority, ``balance: loss`` multiplies every fake's BCE term by n_real / n_fake = 3."""
    df = read_manifest(demo_manifest)
    root = Path(demo_manifest).parent
    pick = [("train", 0, 18), ("train", 1, 6), ("val", 0, 4), ("val", 1, 4)]
    small = pd.concat([df[(df.split == s) & (df.label == lab)].head(n) for s, lab, n in pick]).reset_index(drop=True)
    small["crop_path"] = [str(root / p) for p in small["crop_path"]]
    manifest = write_manifest(small, tmp_path / "imbalanced.parquet")
    losses = {}
    for balance in ("none", "loss"):
        res = fit(TrainConfig(**{**FAST, **STILL, "epochs": 1, "balance": balance}), manifest, tmp_path / balance)
        losses[balance] = pd.read_csv(res.run_dir / "steps.csv")["loss"].to_numpy()
    assert res.balance["pos_weight"] == pytest.approx(3.0)
    # same weights, same batches: the weighted loss is at least the plain one, and larger where a fake is present
    assert np.all(losses["loss"] >= losses["none"] - 1e-6) and losses["loss"].sum() > losses["none"].sum() + 1e-3


def test_frozen_backbone_epochs_train_only_the_head(small_manifest: Path, tmp_path: Path) -> None:
    start = _params(fit(TrainConfig(**{**FAST, **STILL, "epochs": 1}), small_manifest, tmp_path / "a").best_checkpoint)
    cfg = TrainConfig(**{**FAST, "epochs": 1, "lr": 1e-2, "freeze_backbone_epochs": 1})
    after = _params(fit(cfg, small_manifest, tmp_path / "b").best_checkpoint)
    backbone = [n for n in start if n.startswith("backbone.")]
    head = [n for n in start if not n.startswith("backbone.")]
    assert backbone and head
    assert _same(start, after, backbone)
    assert not _same(start, after, head)


def test_cosine_schedule_follows_the_formula_per_epoch(small_manifest: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(**{**FAST, "epochs": 4, "scheduler": "cosine", "lr": 1e-3, "min_lr": 1e-5})
    lrs = [h["lr"] for h in fit(cfg, small_manifest, tmp_path / "run").history]
    expected = [1e-5 + (1e-3 - 1e-5) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert lrs == pytest.approx(expected, rel=1e-6)


def test_grad_clip_bounds_each_step(small_manifest: Path, tmp_path: Path) -> None:
    """Plain SGD at lr 1 with the gradient norm clipped to 1e-4: two steps move the weights by at most 2e-4."""
    base = {**FAST, **STILL, "epochs": 1}
    start = _params(fit(TrainConfig(**base), small_manifest, tmp_path / "a").best_checkpoint)
    moved = {}
    for clip in (1e-4, None):
        cfg = TrainConfig(**{**base, "lr": 1.0, "grad_clip": clip})
        after = _params(fit(cfg, small_manifest, tmp_path / f"clip{clip}").best_checkpoint)
        moved[clip] = torch.sqrt(sum(((after[n] - start[n]) ** 2).sum() for n in start)).item()
    assert 0 < moved[1e-4] <= 2e-4 * 1.01
    assert moved[None] > 100 * moved[1e-4]


def test_init_checkpoint_is_the_starting_point(demo_checkpoint, small_manifest: Path, tmp_path: Path) -> None:
    ckpt, _ = demo_checkpoint
    cfg = TrainConfig(**{**FAST, **STILL, "epochs": 1, "init_checkpoint": str(ckpt)})
    start, after = _params(ckpt), _params(fit(cfg, small_manifest, tmp_path / "run").best_checkpoint)
    assert start.keys() == after.keys() and _same(start, after, start)
    fresh = _params(
        fit(TrainConfig(**{**FAST, **STILL, "epochs": 1}), small_manifest, tmp_path / "fresh").best_checkpoint
    )
    assert not _same(start, fresh, start)


def test_kfold_out_of_fold_scores_equal_an_independent_recomputation(small_manifest: Path, tmp_path: Path) -> None:
    """Fold k's rows scored by member k (crops read with Pillow): the OOF AUC equals scikit-learn's on them, the
    threshold reaches the brute-force best balanced accuracy, and no member trained on its own fold's rows."""
    from PIL import Image
    from sklearn.metrics import balanced_accuracy_score

    res = fit(TrainConfig(**{**FAST, "epochs": 1, "folds": 3}), small_manifest, tmp_path / "ens")
    desc = json.loads(res.best_checkpoint.read_text())
    folds = pd.read_csv(tmp_path / "ens" / "folds.csv").set_index("video_id")["fold"]
    df = read_manifest(small_manifest)
    pool = df[df["split"].isin(["train", "val"])].reset_index(drop=True)
    fold_of = pool["video_id"].map(folds).to_numpy()
    oof = np.full(len(pool), np.nan)
    for k, member in enumerate(desc["members"]):
        model, meta = load_checkpoint(tmp_path / "ens" / member)
        rows = pool[fold_of == k]
        counts = meta["train"]["class_balance"]["counts"]
        others = pool[fold_of != k]["label"].value_counts()
        assert counts == {"real": int(others.get(0, 0)), "fake": int(others.get(1, 0))}  # trained on the others
        x = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in rows["crop_path"]])
        with torch.no_grad():
            logits = model.eval()(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255)
        oof[fold_of == k] = torch.sigmoid(logits).reshape(-1).numpy()
    assert not np.isnan(oof).any()
    y = pool["label"].to_numpy()
    assert res.best_val_auc == pytest.approx(roc_auc_score(y, oof), abs=1e-6)
    best = max(balanced_accuracy_score(y, oof >= t) for t in np.unique(oof))
    assert balanced_accuracy_score(y, oof >= res.threshold) == pytest.approx(best)
