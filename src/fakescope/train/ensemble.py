"""K-fold ensembles: K detectors trained on group-disjoint folds of train+val, combined by mean probability.

``fit_folds`` pools the manifest's ``train`` and ``val`` rows (``test`` is never touched), assigns every
``group_id`` to one of K folds (stratified by label, seeded), and trains fold ``k`` on the other K-1 folds with
fold ``k`` as its validation set (model selection and early stopping per fold). The run directory holds
``fold_<k>/`` (a normal run each), ``folds.csv`` (group -> fold) and ``ensemble.json``, the descriptor that
:func:`load_ensemble` turns into one detector: ``P(fake) = mean_k sigmoid(logit_k)``, returned as a logit. The
ensemble's threshold is chosen on the out-of-fold predictions (each row scored by the model that did not see it).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from fakescope.data.manifest import read_manifest
from fakescope.errors import ManifestError
from fakescope.models.checkpoint import load_checkpoint
from fakescope.models.ensemble import ENSEMBLE_KIND as ENSEMBLE_KIND
from fakescope.models.ensemble import EnsembleDetector as EnsembleDetector
from fakescope.models.ensemble import load_ensemble as load_ensemble
from fakescope.models.loading import load_model as _load_model
from fakescope.train.config import TrainConfig
from fakescope.train.dist import barrier, current_dist
from fakescope.utils.io import atomic_write_text

_logger = logging.getLogger(__name__)


def assign_folds(df: pd.DataFrame, k: int, seed: int = 0) -> np.ndarray:
    """Fold number (0..k-1) of every row; all rows of a ``group_id`` share a fold; labels are stratified.

    Raises:
        ManifestError: fewer groups than folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    groups = df["group_id"].astype(str).to_numpy()
    if len(np.unique(groups)) < k:
        raise ManifestError(f"{k} folds need at least {k} groups; the pooled train+val rows have {len(set(groups))}")
    folds = np.full(len(df), -1, dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for fold, (_, idx) in enumerate(splitter.split(np.zeros(len(df)), df["label"].to_numpy(), groups)):
        folds[idx] = fold
    return folds


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """A checkpoint or an ensemble; kept for old imports, see :func:`fakescope.models.load_model`."""
    return _load_model(path, map_location=map_location)


def fit_folds(
    config: TrainConfig,
    manifest_path: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    callback: Any | None = None,
) -> Any:
    """Train a ``config.folds``-fold ensemble (see the module docstring); returns a TrainResult."""
    from fakescope.eval.metrics import choose_threshold
    from fakescope.eval.scoring import predict_scores
    from fakescope.train.engine import TrainResult, fit_frames

    info = current_dist()
    manifest_path = Path(manifest_path)
    out_dir = Path(out_dir)
    root = manifest_path if manifest_path.is_dir() else manifest_path.parent
    df = read_manifest(manifest_path)
    pool = df[df["split"].isin([config.train_split, config.val_split])].reset_index(drop=True)
    if pool.empty:
        raise ManifestError(f"{manifest_path}: no {config.train_split}/{config.val_split} rows to build folds from")
    k = config.folds
    folds = assign_folds(pool, k, config.seed)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        table = pool[["group_id", "video_id", "label"]].assign(fold=folds).drop_duplicates("video_id")
        atomic_write_text(out_dir / "folds.csv", table.to_csv(index=False))
    oof = np.full(len(pool), np.nan)
    history: list[dict[str, Any]] = []
    members: list[str] = []
    fold_aucs: list[float] = []
    for fold in range(k):
        fold_dir = out_dir / f"fold_{fold}"
        done = fold_dir / "result.json"
        fold_cfg = config.replace(folds=1, seed=config.seed + fold)
        train_rows = pool[folds != fold].reset_index(drop=True)
        val_rows = pool[folds == fold].reset_index(drop=True)
        if callback is not None and info.is_main:
            callback("fold_start", {"fold": fold, "folds": k, "n_train": len(train_rows), "n_val": len(val_rows)})
        if resume and done.is_file():
            summary = json.loads(done.read_text(encoding="utf-8"))
            fold_hist = _read_history(fold_dir / "metrics.csv")
            best_auc = float(summary["best_val_auc"])
        else:
            fold_resume = resume and (fold_dir / "last_state.safetensors").is_file()
            res = fit_frames(fold_cfg, train_rows, val_rows, root, fold_dir, resume=fold_resume, callback=callback)
            fold_hist, best_auc = res.history, res.best_val_auc
        history.extend({**h, "fold": fold} for h in fold_hist)
        fold_aucs.append(best_auc)
        members.append(f"fold_{fold}/best.safetensors")
        model, _ = load_checkpoint(fold_dir / "best.safetensors")
        oof[folds == fold] = predict_scores(model, val_rows, root, batch_size=2 * config.batch_size)
    y = pool["label"].to_numpy()
    from sklearn.metrics import roc_auc_score

    oof_auc = float(roc_auc_score(y, oof))
    threshold = choose_threshold(y, oof)
    desc_path = out_dir / "ensemble.json"
    if info.is_main:
        _write_descriptor(desc_path, config, members, threshold, oof_auc, fold_aucs)
    barrier(info)
    return TrainResult(
        run_dir=out_dir,
        best_checkpoint=desc_path,
        history=history,
        best_val_auc=oof_auc,
        best_epoch=-1,
        threshold=threshold,
    )


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return pd.read_csv(path).to_dict("records")


def _write_descriptor(
    desc_path: Path, config: Any, members: list[str], threshold: float, oof_auc: float, fold_aucs: list[float]
) -> None:
    """``ensemble.json``: the members, the OOF-chosen threshold and AUC, the config and the fakescope version."""
    out_dir = desc_path.parent
    k = len(members)
    from fakescope import __version__

    first = json.loads((out_dir / "fold_0" / "best.json").read_text(encoding="utf-8"))
    desc = {
        "kind": ENSEMBLE_KIND,
        "combine": "mean_probability",
        "model": config.model,
        "members": members,
        "folds": k,
        "cfg": first.get("cfg"),
        "threshold": threshold,
        "threshold_rule": "max balanced accuracy (Youden J) on out-of-fold predictions",
        "oof_auc": oof_auc,
        "fold_val_auc": fold_aucs,
        "config": config.to_dict(),
        "fakescope_version": __version__,
    }
    atomic_write_text(desc_path, json.dumps(desc, indent=2, default=str))
