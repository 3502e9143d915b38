"""The training loop: ``fit(config, manifest, out_dir)`` and its pieces.

One epoch = :func:`train_one_epoch` over the ``train`` split, then :func:`evaluate` on the ``val`` split. The
best checkpoint is the one with the highest validation AUC (never loss or accuracy, which a one-class predictor
can game); its decision threshold is chosen on validation by maximising balanced accuracy (Youden's J) and stored
in the checkpoint metadata. Training stops early after ``patience`` epochs without a better AUC.

Distributed training uses plain ``torch.nn.parallel.DistributedDataParallel`` with a process group set up by the
launcher (``torchrun``; see :mod:`fakescope.train.dist`). Every process trains on its shard of each global batch;
only rank 0 writes files. Mixed precision uses ``torch.autocast`` on CUDA (bf16 where supported, else fp16 with a
gradient scaler).

Run directory layout::

    config.yaml  run.json          resolved config and provenance
    train.log                      human-readable log (class balance, per-epoch metrics, stopping)
    metrics.csv  steps.csv         per-epoch metrics; per-step training loss (the global-batch mean)
    best.safetensors (+ .json)     best checkpoint by validation AUC, with "threshold"
    last.safetensors (+ .json)     weights after the latest epoch
    last_state.safetensors         resumable state (optimiser, scheduler, epoch, history), no pickle
    result.json                    summary (best epoch, AUC, threshold, class balance)
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from fakescope.data.datasets import ClassBalance, FaceDataset, class_balance, create_loader
from fakescope.data.manifest import read_manifest
from fakescope.errors import ManifestError
from fakescope.eval.metrics import binary_metrics, choose_threshold
from fakescope.eval.scoring import score_loader
from fakescope.models import create_detector, save_checkpoint
from fakescope.models.inference import autocast
from fakescope.train.config import ConfigError, TrainConfig
from fakescope.train.dist import DistInfo, all_gather_objects, all_reduce_mean, barrier, current_dist
from fakescope.train.optim import PER_STEP_SCHEDULERS, create_optimizer, create_scheduler
from fakescope.train.state import STATE_NAME, load_train_state, save_train_state
from fakescope.utils.io import atomic_write_text
from fakescope.utils.runinfo import write_run_info

_logger = logging.getLogger(__name__)

#: ``callback(event, info)``; events: ``start``, ``epoch_start``, ``step``, ``epoch_end``, ``fold_start``, ``end``.
Callback = Callable[[str, dict[str, Any]], None]

METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_auc",
    "val_ap",
    "val_acc",
    "val_balanced_acc",
    "val_balanced_acc_at_threshold",
    "threshold",
    "lr",
    "frozen",
    "seconds",
)


@dataclass
class TrainResult:
    """Outcome of :func:`fit`.

    Attributes:
        run_dir: the run directory.
        best_checkpoint: best checkpoint by validation AUC (for ``folds > 1``: the ensemble descriptor JSON).
        history: one dict per epoch (the rows of ``metrics.csv``; with folds, a ``fold`` key is added).
        best_val_auc: validation AUC of the best checkpoint (folds: out-of-fold AUC of the fold models).
        best_epoch: epoch of the best checkpoint (-1 for ensembles).
        threshold: decision threshold chosen on validation.
        balance: class counts and weights reported at start.
        stopped_early: training ended by early stopping.
        robustness: after adversarial training, the best checkpoint's validation metrics clean and under PGD at
            ``adv_eps`` (also ``robustness.json``); empty otherwise.
    """

    run_dir: Path
    best_checkpoint: Path
    history: list[dict[str, Any]]
    best_val_auc: float
    best_epoch: int = -1
    threshold: float = 0.5
    balance: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    robustness: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# metrics


def validation_metrics(y_true: np.ndarray, y_prob: np.ndarray) -> dict[str, float]:
    """AUC, AP, log-loss, accuracy and balanced accuracy at 0.5, and at the threshold chosen on these scores.

    Computed by :func:`fakescope.eval.metrics.binary_metrics` (the one metrics module) with the threshold of
    :func:`fakescope.eval.metrics.choose_threshold`.
    """
    thr = choose_threshold(y_true, y_prob)
    half, chosen = binary_metrics(y_true, y_prob, 0.5), binary_metrics(y_true, y_prob, thr)
    return {
        "val_loss": half["log_loss"],
        "val_auc": half["auc"],
        "val_ap": half["ap"],
        "val_acc": half["accuracy"],
        "val_balanced_acc": half["balanced_accuracy"],
        "val_balanced_acc_at_threshold": chosen["balanced_accuracy"],
        "threshold": thr,
    }


def select_best_epoch(history: list[dict[str, Any]]) -> int:
    """Index of the epoch with the highest validation AUC (first one on ties); -1 when none is finite."""
    aucs = [h.get("val_auc", float("nan")) for h in history]
    finite = [(a, -i) for i, a in enumerate(aucs) if a is not None and math.isfinite(a)]
    return -max(finite)[1] if finite else -1


# --------------------------------------------------------------------------------------------------------------
# steps


def _resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device(f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} requested but CUDA is not available")
    return device


def train_one_epoch(
    net: nn.Module,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    device: torch.device,
    *,
    dist_info: DistInfo | None = None,
    amp: bool = False,
    scaler: Any | None = None,
    attack: Any | None = None,
    adv_ratio: float = 0.5,
    grad_clip: float | None = None,
    max_steps: int | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
) -> list[float]:
    """Train ``net`` for one pass over ``loader``; return the per-step loss (mean over the global batch).

    Args:
        net: the model (possibly wrapped in DistributedDataParallel).
        loader: batches of ``(x, y, index)``.
        optimizer: the optimiser.
        loss_fn: ``BCEWithLogitsLoss`` (with ``pos_weight`` when balancing through the loss).
        device: where to compute.
        dist_info: rank and world size (the logged loss is averaged over processes).
        amp: autocast on CUDA.
        scaler: a ``torch.amp.GradScaler`` for fp16 autocast (or None).
        attack: adversarial training attack (``attack(x, y) -> x_adv``); the loss becomes
            ``(1 - adv_ratio) * clean + adv_ratio * adversarial``.
        adv_ratio: weight of the adversarial loss.
        grad_clip: max gradient norm.
        max_steps: stop after this many steps.
        on_step: ``on_step(step, total_steps, loss)`` after each step.
    """
    info = dist_info or DistInfo()
    module = getattr(net, "module", net)
    net.train()
    total = len(loader) if max_steps is None else min(len(loader), max_steps)
    losses: list[float] = []
    for step, (x, y, _idx) in enumerate(loader):
        if step >= total:
            break
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        x_adv = None
        if attack is not None and adv_ratio > 0:
            module.eval()
            x_adv = attack(x, y).detach()
            net.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            if x_adv is None:
                loss = loss_fn(net(x).float(), y)
            else:
                logits = net(torch.cat([x, x_adv])).float()
                clean, adv = logits[: len(x)], logits[len(x) :]
                loss = (1 - adv_ratio) * loss_fn(clean, y) + adv_ratio * loss_fn(adv, y)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            if grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
            optimizer.step()
        value = float(all_reduce_mean(loss.detach(), info))
        losses.append(value)
        if on_step is not None:
            on_step(step + 1, total, value)
    return losses


@torch.no_grad()
def precise_bn(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    num_batches: int,
    device: torch.device,
    dist_info: DistInfo | None = None,
) -> None:
    """Recompute BatchNorm running statistics as an exact average over ``num_batches`` batches of ``loader``.

    "Precise BN" (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021): the running statistics that evaluation
    uses then match the current weights. Under distributed training the statistics are averaged over processes.
    Does nothing for models without BatchNorm.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns or num_batches <= 0:
        return
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
    was_training = model.training
    model.train()
    for i, (x, _y, _idx) in enumerate(loader):
        if i >= num_batches:
            break
        model(x.to(device, non_blocking=True))
    for bn, momentum in zip(bns, momenta, strict=True):
        bn.momentum = momentum
        if dist_info is not None and dist_info.distributed:
            bn.running_mean.copy_(all_reduce_mean(bn.running_mean, dist_info))
            bn.running_var.copy_(all_reduce_mean(bn.running_var, dist_info))
    model.train(was_training)


# --------------------------------------------------------------------------------------------------------------
# run directory (rank 0 only)


class _RunWriter:
    """Everything a run writes, in one place; only rank 0 gets one."""

    def __init__(self, run_dir: Path, config: TrainConfig, extra: dict[str, Any], resume: bool) -> None:
        self.run_dir = run_dir
        self.config = config
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_info(run_dir, {**config.to_dict(), "_run": extra})
        self.log_path = run_dir / "train.log"
        if not resume:
            for name in ("train.log", "metrics.csv", "steps.csv"):
                (run_dir / name).unlink(missing_ok=True)

    def log(self, message: str) -> None:
        _logger.info(message)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {message}\n")

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        self._write_csv("metrics.csv", METRIC_COLUMNS, history)

    def write_steps(self, steps: list[dict[str, Any]]) -> None:
        self._write_csv("steps.csv", ("step", "epoch", "loss", "lr"), steps)

    def _write_csv(self, name: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(self.run_dir / name, buf.getvalue())

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        atomic_write_text(self.run_dir / name, json.dumps(data, indent=2, default=_json_default))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


# --------------------------------------------------------------------------------------------------------------
# fit


def _split_rows(df: pd.DataFrame, split: str, manifest_path: Path) -> pd.DataFrame:
    rows = df[df["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise ManifestError(
            f"{manifest_path}: no rows in split {split!r} (splits present: {sorted(set(df['split']))}); "
            "prepare the data with a train/val/test split, or train with --folds K"
        )
    return rows


def fit(
    config: TrainConfig,
    manifest_path: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    callback: Callback | None = None,
) -> TrainResult:
    """Train ``config.model`` on a manifest's ``train`` split, selecting by AUC on its ``val`` split.

    With ``config.folds > 1`` trains a K-fold ensemble instead (see :func:`fakescope.train.ensemble.fit_folds`).
    Under an initialised ``torch.distributed`` process group the run is data-parallel; only rank 0 writes.

    Args:
        config: the resolved training config.
        manifest_path: the manifest (Parquet file or its folder); crops are relative to its folder.
        out_dir: the run directory (created).
        resume: continue from ``out_dir/last_state.safetensors`` (the epoch after the last finished one).
        callback: progress callback ``callback(event, info)`` (rank 0 only).

    Raises:
        ManifestError: missing splits, or a split without both classes.
        CheckpointError: ``resume`` without a readable state in ``out_dir``.
    """
    if config.folds > 1:
        from fakescope.train.ensemble import fit_folds

        return fit_folds(config, manifest_path, out_dir, resume=resume, callback=callback)
    manifest_path = Path(manifest_path)
    df = read_manifest(manifest_path)
    train_df = _split_rows(df, config.train_split, manifest_path)
    val_df = _split_rows(df, config.val_split, manifest_path)
    root = manifest_path if manifest_path.is_dir() else manifest_path.parent
    return fit_frames(config, train_df, val_df, root, out_dir, resume=resume, callback=callback)


def _training_rows(
    config: TrainConfig, train_df: pd.DataFrame, val_df: pd.DataFrame
) -> tuple[pd.DataFrame, ClassBalance]:
    """The rows training uses (reals only for ``real_only``) and their class balance; checks validation has both."""
    val_labels = val_df["label"].to_numpy()
    if len(np.unique(val_labels)) < 2:
        raise ManifestError(
            f"the validation rows hold only one class ({int((val_labels == 0).sum())} real, "
            f"{int((val_labels == 1).sum())} fake); AUC-based model selection needs both"
        )
    if not config.real_only:
        return train_df, class_balance(train_df["label"].to_numpy())
    train_df = train_df[train_df["label"] == 0].reset_index(drop=True)
    if train_df.empty:
        raise ManifestError("real_only: the training rows contain no real crops")
    n = len(train_df)
    return train_df, ClassBalance(counts={0: n, 1: 0}, weights={0: 1.0, 1: 0.0}, pos_weight=1.0)


def _build_model(config: TrainConfig, root: str | Path, device: torch.device) -> nn.Module:
    """The seeded model on ``device``, carrying the crop contract of the data it trains on."""
    torch.manual_seed(config.seed)
    model = create_detector(
        config.model,
        pretrained=config.pretrained,
        checkpoint_path=config.init_checkpoint,
        weights_dir=config.pretrained_dir,
        **config.model_kwargs,
    ).to(device)
    model.set_cfg(_data_contract(model.cfg, root, config))
    if config.input_size:
        _check_input_size(model, model.cfg.input_size, device)
    return model


def _loaders(
    config: TrainConfig,
    model: nn.Module,
    rows: tuple[pd.DataFrame, pd.DataFrame],
    root: str | Path,
    device: torch.device,
    info: DistInfo,
) -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    """Training loader (shuffled or class-balanced, augmented) and validation loader, sharded per process."""
    common = {
        "num_workers": config.num_workers,
        "rank": info.rank,
        "world_size": info.world_size,
        "cache": {"auto": "auto", "true": True, "false": False}[config.cache_images],
        "pin_memory": device.type == "cuda",
        "interpolation": model.cfg.interpolation,
    }
    size = model.cfg.input_size
    train = create_loader(
        rows[0],
        root,
        size,
        config.batch_size,
        train=True,
        seed=config.seed,
        balance=config.balance == "sampler",
        augment=config.augment,
        **common,
    )
    val = create_loader(rows[1], root, size, config.eval_batch_size or 2 * config.batch_size, train=False, **common)
    return train, val


@dataclass
class _Setup:
    """What one training run steps with: loss, optimiser, schedule, mixed precision and the adversarial attack."""

    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    per_step: bool
    use_amp: bool
    scaler: Any
    attack: Any
    lr: float
    steps_per_epoch: int

    @classmethod
    def create(
        cls,
        config: TrainConfig,
        model: nn.Module,
        balance: ClassBalance,
        n_batches: int,
        device: torch.device,
        world: int,
    ) -> _Setup:
        pos_weight = torch.tensor(balance.pos_weight, device=device) if config.balance == "loss" else None
        lr = config.lr * (world if config.scale_lr else 1)
        optimizer = create_optimizer(model, config.optimizer, lr, config.weight_decay, config.momentum)
        steps_per_epoch = min(n_batches, config.max_steps_per_epoch or n_batches)
        scheduler = create_scheduler(
            optimizer,
            config.scheduler,
            config.epochs,
            config.step_size,
            config.gamma,
            config.min_lr,
            steps_per_epoch=steps_per_epoch,
            warmup_steps=config.warmup_steps,
        )
        use_amp = config.amp and device.type == "cuda"
        fp16 = use_amp and not torch.cuda.is_bf16_supported()
        return cls(
            loss_fn=nn.BCEWithLogitsLoss(pos_weight=pos_weight),
            optimizer=optimizer,
            scheduler=scheduler,
            per_step=scheduler is not None and config.scheduler in PER_STEP_SCHEDULERS,
            use_amp=use_amp,
            scaler=torch.amp.GradScaler("cuda", enabled=fp16) if device.type == "cuda" else None,
            attack=_create_attack(config, model) if config.adv else None,
            lr=lr,
            steps_per_epoch=steps_per_epoch,
        )


@dataclass
class _Progress:
    """Epoch history, step log and model selection (best validation AUC, patience); what a resume restores."""

    history: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    best_auc: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    threshold: float = 0.5
    start_epoch: int = 0

    @classmethod
    def from_state(cls, saved: dict[str, Any]) -> _Progress:
        return cls(
            history=saved.get("history", []),
            steps=saved.get("steps", []),
            best_auc=float(saved.get("best_val_auc", -math.inf)),
            best_epoch=int(saved.get("best_epoch", -1)),
            bad_epochs=int(saved.get("bad_epochs", 0)),
            threshold=float(saved.get("threshold", 0.5)),
            start_epoch=int(saved["epoch"]) + 1,
        )

    def record(self, row: dict[str, Any]) -> bool:
        """Add an epoch's row; True when its validation AUC is the best so far."""
        self.history.append(row)
        improved = math.isfinite(row["val_auc"]) and row["val_auc"] > self.best_auc
        if improved:
            self.best_auc, self.best_epoch, self.bad_epochs, self.threshold = (
                row["val_auc"],
                row["epoch"],
                0,
                row["threshold"],
            )
        else:
            self.bad_epochs += 1
        return improved

    def state(self, epoch: int, config: TrainConfig) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "history": self.history,
            "steps": self.steps,
            "best_val_auc": self.best_auc,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "threshold": self.threshold,
            "config": config.to_dict(),
        }


def _run_epoch(
    epoch: int,
    net: nn.Module,
    model: nn.Module,
    loaders: tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader],
    setup: _Setup,
    progress: _Progress,
    config: TrainConfig,
    device: torch.device,
    info: DistInfo,
    emit: Callable[..., Any],
) -> dict[str, Any]:
    """Train one epoch, validate, step an epoch schedule; the epoch's metrics row."""
    t0 = time.perf_counter()
    train_loader, val_loader = loaders
    torch.manual_seed(config.seed * 1_000_003 + epoch * 1009 + info.rank)
    for loader in loaders:
        loader.sampler.set_epoch(epoch)
        loader.dataset.set_epoch(epoch)
    emit("epoch_start", {"epoch": epoch, "epochs": config.epochs})
    current_lr = setup.optimizer.param_groups[0]["lr"]

    def on_step(step: int, total: int, loss: float) -> None:
        lr_ = current_lr
        if setup.per_step:
            lr_ = setup.optimizer.param_groups[0]["lr"]
            setup.scheduler.step()
        progress.steps.append({"step": len(progress.steps) + 1, "epoch": epoch, "loss": loss, "lr": lr_})
        emit("step", {"epoch": epoch, "step": step, "steps": total, "loss": loss})

    losses = train_one_epoch(
        net,
        train_loader,
        setup.optimizer,
        setup.loss_fn,
        device,
        dist_info=info,
        amp=setup.use_amp,
        scaler=setup.scaler,
        attack=setup.attack,
        adv_ratio=config.adv_ratio,
        grad_clip=config.grad_clip,
        max_steps=config.max_steps_per_epoch,
        on_step=on_step,
    )
    if config.precise_bn_batches > 0:
        precise_bn(model, train_loader, config.precise_bn_batches, device, info)
    probs, labels = _evaluate_all(model, val_loader, device, setup.use_amp, info)
    if setup.scheduler is not None and not setup.per_step:
        setup.scheduler.step()
    return {
        "epoch": epoch,
        "train_loss": float(np.mean(losses)) if losses else float("nan"),
        **validation_metrics(labels, probs),
        "lr": current_lr,
        "frozen": epoch < config.freeze_backbone_epochs,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _save_epoch(
    writer: _RunWriter,
    model: nn.Module,
    setup: _Setup,
    progress: _Progress,
    row: dict[str, Any],
    improved: bool,
    run_extra: dict[str, Any],
) -> None:
    """Checkpoints (best when improved, last always), the resumable state, the CSVs and the log line."""
    meta = _checkpoint_meta(writer.config, row, run_extra)
    if improved:
        save_checkpoint(model, writer.run_dir / "best.safetensors", **meta)
    save_checkpoint(model, writer.run_dir / "last.safetensors", **meta)
    state = progress.state(row["epoch"], writer.config)
    save_train_state(writer.run_dir / STATE_NAME, model, setup.optimizer, setup.scheduler, setup.scaler, state)
    writer.write_metrics(progress.history)
    writer.write_steps(progress.steps)
    writer.log(
        f"epoch {row['epoch']}: train_loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} "
        f"val_auc {row['val_auc']:.4f} val_bal_acc {row['val_balanced_acc']:.4f} "
        f"threshold {row['threshold']:.3f}{' (best)' if improved else ''}"
    )


def _finish(
    writer: _RunWriter,
    result: TrainResult,
    config: TrainConfig,
    val_df: pd.DataFrame,
    root: str | Path,
    device: torch.device,
    run_extra: dict[str, Any],
) -> None:
    """After training (rank 0): the clean-versus-robust report of adversarial training, ``result.json``."""
    if config.adv and config.adv_eval_images > 0 and result.best_epoch >= 0:
        from fakescope.models import load_checkpoint

        best, _ = load_checkpoint(result.best_checkpoint, map_location=device)
        result.robustness = robustness_summary(
            best, val_df, Path(root), config.adv_eps, result.threshold, config.adv_eval_images, config.seed
        )
        writer.write_json("robustness.json", result.robustness)
        c, r = result.robustness["clean"], result.robustness["attacked"]
        writer.log(
            f"clean vs robust ({result.robustness['n_images']} val images, {result.robustness['attack']}): "
            f"balanced accuracy {c['balanced_accuracy']:.4f} -> {r['balanced_accuracy']:.4f}, "
            f"AUC {c['auc']:.4f} -> {r['auc']:.4f}, fake recall {c['fake_recall']:.4f} -> {r['fake_recall']:.4f}"
        )
    summary = {
        "best_checkpoint": result.best_checkpoint.name,
        "best_epoch": result.best_epoch,
        "best_val_auc": result.best_val_auc,
        "threshold": result.threshold,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        **run_extra,
    }
    writer.write_json("result.json", summary)
    writer.log(
        f"done: best epoch {result.best_epoch}, val AUC {result.best_val_auc:.4f}, threshold {result.threshold:.3f}"
    )


def _announce(
    writer: _RunWriter | None,
    emit: Callable[..., Any],
    config: TrainConfig,
    balance: ClassBalance,
    run_extra: dict[str, Any],
    start: dict[str, Any],
) -> None:
    """The run's first log lines and its ``start`` event (``start``: input_size, start_epoch, steps_per_epoch)."""
    message = _balance_message(balance, config.balance, run_extra["n_val"])
    if writer is not None:
        writer.log(message)
        writer.log(
            f"model {config.model} (input {start['input_size']}px), {run_extra['world_size']} process(es), "
            f"per-process batch {config.batch_size}, global batch {run_extra['global_batch_size']}, "
            f"lr {run_extra['effective_lr']:g}, device {run_extra['device']}"
            + (f", resuming at epoch {start['start_epoch']}" if start["start_epoch"] else "")
        )
    event = {
        **run_extra,
        "model": config.model,
        "epochs": config.epochs,
        "start_epoch": start["start_epoch"],
        "steps_per_epoch": start["steps_per_epoch"],
        "balance_message": message,
    }
    emit("start", event)


def _run_extra(
    config: TrainConfig,
    setup: _Setup,
    device: torch.device,
    info: DistInfo,
    n_rows: tuple[int, int],
    balance: ClassBalance,
) -> dict[str, Any]:
    """What a run records besides its config: world size, global batch, effective lr, device, rows, balance."""
    return {
        "world_size": info.world_size,
        "global_batch_size": config.batch_size * info.world_size,
        "effective_lr": setup.lr,
        "device": str(device),
        "amp": setup.use_amp,
        "n_train": n_rows[0],
        "n_val": n_rows[1],
        "class_balance": balance.to_dict(),
        "balance": config.balance,
    }


def fit_frames(
    config: TrainConfig,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    root: str | Path,
    out_dir: str | Path,
    *,
    resume: bool = False,
    callback: Callback | None = None,
) -> TrainResult:
    """:func:`fit` on explicit training and validation rows (crops relative to ``root``)."""
    info = current_dist()
    out_dir = Path(out_dir)
    device = _resolve_device(config.device)
    train_df, balance = _training_rows(config, train_df, val_df)
    model = _build_model(config, root, device)
    loaders = _loaders(config, model, (train_df, val_df), root, device, info)
    setup = _Setup.create(config, model, balance, len(loaders[0]), device, info.world_size)
    progress = _Progress()
    if resume:
        saved = load_train_state(out_dir / STATE_NAME, model, setup.optimizer, setup.scheduler, setup.scaler)
        progress = _Progress.from_state(saved)
    run_extra = _run_extra(config, setup, device, info, (len(train_df), len(val_df)), balance)
    writer = _RunWriter(out_dir, config, run_extra, resume) if info.is_main else None
    emit = callback if (callback is not None and info.is_main) else (lambda *_: None)
    start = {
        "input_size": model.cfg.input_size,
        "start_epoch": progress.start_epoch,
        "steps_per_epoch": setup.steps_per_epoch,
    }
    _announce(writer, emit, config, balance, run_extra, start)

    net: nn.Module = model
    frozen_state: bool | None = None
    stopped_early = progress.start_epoch > 0 and progress.bad_epochs >= config.patience > 0
    for epoch in range(config.epochs if stopped_early else progress.start_epoch, config.epochs):
        frozen = epoch < config.freeze_backbone_epochs
        if frozen != frozen_state:
            if hasattr(model, "freeze_backbone"):
                model.freeze_backbone(frozen)
            net = _wrap_ddp(model, device, info)  # DDP registers hooks for trainable parameters only
            frozen_state = frozen
        row = _run_epoch(epoch, net, model, loaders, setup, progress, config, device, info, emit)
        improved = progress.record(row)
        if writer is not None:
            _save_epoch(writer, model, setup, progress, row, improved, run_extra)
        emit("epoch_end", {**row, "improved": improved, "best_val_auc": progress.best_auc, "epochs": config.epochs})
        if config.patience > 0 and progress.bad_epochs >= config.patience:
            stopped_early = True
            if writer is not None:
                writer.log(f"early stopping: no better validation AUC for {progress.bad_epochs} epochs")
            break

    barrier(info)
    result = TrainResult(
        run_dir=out_dir,
        best_checkpoint=out_dir / "best.safetensors",
        history=progress.history,
        best_val_auc=progress.best_auc if math.isfinite(progress.best_auc) else float("nan"),
        best_epoch=progress.best_epoch,
        threshold=progress.threshold,
        balance=balance.to_dict(),
        stopped_early=stopped_early,
    )
    if writer is not None:
        _finish(writer, result, config, val_df, root, device, run_extra)
    emit("end", {"result": result})
    return result


def robustness_summary(
    model: nn.Module,
    rows: pd.DataFrame,
    root: Path,
    eps: float,
    threshold: float,
    max_images: int = 200,
    seed: int = 0,
    steps: int = 10,
) -> dict[str, Any]:
    """Clean-versus-robust metrics of ``model`` on (a seeded sample of) ``rows``: clean, and under PGD L-inf.

    Every image is attacked towards the wrong class (fakes towards real, reals towards fake), so the numbers are
    the model's worst case within ``eps``, whatever attack it was trained with.

    Returns:
        ``{"attack", "eps", "steps", "n_images", "threshold", "clean": stats, "attacked": stats}`` with AUC,
        balanced accuracy, accuracy and per-class recall (``fakescope.attacks.evaluate.classification_stats``).
    """
    from fakescope.attacks.evaluate import classification_stats, load_rows, predict_proba, run_attack

    x, y, _ = load_rows(rows, root, model.cfg.input_size, max_images, seed)
    x_adv = run_attack(model, x, y, "pgd_linf", eps, seed=seed, steps=steps)
    return {
        "attack": f"pgd_linf eps {eps:.5f}, {steps} steps",
        "eps": float(eps),
        "steps": steps,
        "n_images": len(y),
        "threshold": float(threshold),
        "clean": classification_stats(y, predict_proba(model, x), threshold),
        "attacked": classification_stats(y, predict_proba(model, x_adv), threshold),
    }


def _balance_message(balance: ClassBalance, mode: str, n_val: int) -> str:
    c, w = balance.counts, balance.weights
    head = f"training rows: {c[0]} real, {c[1]} fake; validation rows: {n_val}. "
    if mode == "sampler":
        return head + f"class balancing: weighted sampling (per-row weight real {w[0]:.3f}, fake {w[1]:.3f})"
    if mode == "loss":
        return head + f"class balancing: BCE pos_weight {balance.pos_weight:.3f} on fakes"
    return head + "class balancing: off"


def _checkpoint_meta(config: TrainConfig, row: dict[str, Any], run_extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "detector": config.model,
        "model_kwargs": dict(config.model_kwargs),
        "threshold": row["threshold"],
        "threshold_rule": "max balanced accuracy (Youden J) on validation",
        "epoch": row["epoch"],
        "val_metrics": {k: v for k, v in row.items() if k.startswith("val_")},
        "config": config.to_dict(),
        "train": {k: run_extra[k] for k in ("world_size", "global_batch_size", "n_train", "n_val", "class_balance")},
    }


def _evaluate_all(
    model: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device, amp: bool, info: DistInfo
) -> tuple[np.ndarray, np.ndarray]:
    probs, labels, rows = score_loader(model, loader, device, amp)
    parts = all_gather_objects((probs, labels, rows), info)
    n = len(loader.dataset)
    all_probs, all_labels = np.empty(n), np.empty(n)
    for p, y, r in parts:
        all_probs[r], all_labels[r] = p, y
    return all_probs, all_labels


def _wrap_ddp(model: nn.Module, device: torch.device, info: DistInfo) -> nn.Module:
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _create_attack(config: TrainConfig, model: nn.Module) -> Any:
    try:
        from fakescope.attacks import create_attack
    except ImportError as exc:  # pragma: no cover - the attacks package ships with fakescope
        raise ConfigError(f"adversarial training needs fakescope.attacks ({exc})") from exc
    return create_attack(config.adv, model, eps=config.adv_eps, seed=config.seed, steps=config.adv_steps)


def _check_input_size(model: nn.Module, size: int, device: torch.device) -> None:
    """Fail before training when the architecture cannot take ``size`` px input (a head sized for another one)."""
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, size, size, device=device))
    except RuntimeError as exc:
        raise ConfigError(
            f"{model.cfg.arch} does not take {size} px input ({str(exc).splitlines()[0]}); leave input_size unset"
        ) from exc


def _data_contract(cfg: Any, root: str | Path, config: TrainConfig) -> Any:
    """The detector's cfg with the crop contract of the training data (and ``config.input_size``) recorded.

    The manifest's crops were made by ``prepare`` (its ``config.yaml``: crop size, margin, alignment); storing
    that in the model's cfg, and so in every checkpoint, lets ``predict`` cut the same crops from new media.
    """
    from fakescope.data.contract import manifest_contract

    changes: dict[str, Any] = dict(manifest_contract(root) or {})
    if not changes:
        _logger.warning("%s: no prepare config.yaml beside the manifest; the crop contract stays the model's", root)
    if config.input_size:
        changes["input_size"] = int(config.input_size)
    return cfg.with_(**changes) if changes else cfg


def build_eval_dataset(df: pd.DataFrame, root: str | Path, input_size: int, interpolation: str = "area") -> FaceDataset:
    """A non-augmented :class:`FaceDataset` (helper for evaluation code)."""
    return FaceDataset(df, root, input_size, augment=False, interpolation=interpolation)
