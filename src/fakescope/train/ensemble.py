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
from fakescope.errors import CheckpointError, ManifestError
from fakescope.models import load_checkpoint
from fakescope.train.config import TrainConfig
from fakescope.train.dist import barrier, current_dist
from fakescope.utils.io import atomic_write_text

_logger = logging.getLogger(__name__)

ENSEMBLE_KIND = "fakescope-ensemble"


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


class EnsembleDetector(nn.Module):
    """Mean-probability ensemble of detectors sharing one input contract.

    ``forward`` returns the logit of the mean P(fake) of the members, so ``sigmoid(forward(x))`` is the
    ensemble's P(fake) like for any single detector.
    """

    def __init__(self, members: list[nn.Module], threshold: float = 0.5) -> None:
        super().__init__()
        if not members:
            raise CheckpointError("an ensemble needs at least one member")
        sizes = {m.cfg.input_size for m in members}
        if len(sizes) != 1:
            raise CheckpointError(f"ensemble members disagree on input size: {sorted(sizes)}")
        self.members = nn.ModuleList(members)
        self.cfg = members[0].cfg
        self.threshold = threshold
        self._widths = [int(m.num_features) for m in members]
        self.num_features = sum(self._widths)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated member features ``B,sum(F_k)``."""
        return torch.cat([m.forward_features(x) for m in self.members], dim=1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logit of the mean member probability ``B`` from concatenated features."""
        if pre_logits:
            return features
        parts = torch.split(features, self._widths, dim=1)
        probs = torch.stack([torch.sigmoid(m.forward_head(f)) for m, f in zip(self.members, parts, strict=True)])
        return torch.logit(probs.mean(0), eps=1e-7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logit ``B`` of the mean P(fake) of the members for [0, 1] images ``B,3,S,S``."""
        probs = torch.stack([torch.sigmoid(m(x)) for m in self.members])
        return torch.logit(probs.mean(0), eps=1e-7)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Mean P(fake) ``B``."""
        return torch.sigmoid(self(x))


def load_ensemble(path: str | Path, map_location: str | torch.device = "cpu") -> EnsembleDetector:
    """Load an ``ensemble.json`` descriptor (member checkpoints are relative to its folder).

    Raises:
        CheckpointError: not an ensemble descriptor, or a member checkpoint is missing/unreadable.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "ensemble.json"
    try:
        desc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable ensemble descriptor ({exc})") from exc
    if desc.get("kind") != ENSEMBLE_KIND:
        raise CheckpointError(f"{path}: not a fakescope ensemble descriptor (kind={desc.get('kind')!r})")
    members = [load_checkpoint(path.parent / m, map_location=map_location)[0] for m in desc["members"]]
    model = EnsembleDetector(members, threshold=float(desc.get("threshold", 0.5)))
    return model.to(map_location).eval()


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a single checkpoint (``.safetensors``) or an ensemble (``ensemble.json`` or its run folder).

    Returns ``(model, metadata)``; for ensembles the metadata is the descriptor (it has ``threshold`` too).
    """
    path = Path(path)
    if path.suffix == ".json" or (path.is_dir() and (path / "ensemble.json").is_file()):
        desc_path = path / "ensemble.json" if path.is_dir() else path
        model = load_ensemble(desc_path, map_location)
        return model, json.loads(desc_path.read_text(encoding="utf-8"))
    return load_checkpoint(path, map_location=map_location)


def fit_folds(
    config: TrainConfig,
    manifest_path: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    callback: Any | None = None,
) -> Any:
    """Train a ``config.folds``-fold ensemble (see the module docstring); returns a TrainResult."""
    from fakescope.train.engine import TrainResult, choose_threshold, fit_frames, predict_scores

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
