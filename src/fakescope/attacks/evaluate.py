"""Robustness evaluation: attack a detector at several budgets and report what survives.

For every epsilon: attack success rate on fakes (fake -> real among fakes the model caught), fake recall, AUC and
balanced accuracy under attack (both classes attacked against their true label, the worst case), and the mean
L-inf, L2 and SSIM of the perturbations. :func:`evaluate_robustness` adds the files: ``report.json``,
``report.md``, ``robustness_curve.png`` and, on request, the adversarial examples as PNG.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from fakescope.attacks._base import format_eps
from fakescope.attacks._registry import create_attack
from fakescope.eval.report import json_safe, markdown_table
from fakescope.models.inference import predict_proba as predict_proba  # the one batched P(fake)
from fakescope.utils.io import atomic_path, atomic_write_text, save_png

_logger = logging.getLogger(__name__)


def sample_rows(df: pd.DataFrame, max_images: int | None, seed: int = 0) -> pd.DataFrame:
    """Up to ``max_images`` rows, half real and half fake where possible, chosen with ``seed``."""
    if max_images is None or len(df) <= max_images:
        return df
    rng = np.random.default_rng(seed)
    fakes, reals = np.flatnonzero(df["label"].to_numpy() == 1), np.flatnonzero(df["label"].to_numpy() == 0)
    n_fake = min(len(fakes), max(max_images - len(reals), max_images // 2))
    n_real = min(len(reals), max_images - n_fake)
    pick = np.concatenate([rng.choice(fakes, n_fake, replace=False), rng.choice(reals, n_real, replace=False)])
    return df.iloc[np.sort(pick)]


def load_images(
    manifest_path: str | Path, input_size: int, split: str | None = "test", max_images: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, np.ndarray, pd.DataFrame]:
    """Face crops of one split of a manifest as ``(x N,3,S,S in [0, 1], y N, rows)``.

    Raises:
        ManifestError: the manifest is unreadable or the split is empty.
    """
    from fakescope.data.manifest import read_manifest
    from fakescope.errors import ManifestError

    df = read_manifest(manifest_path)
    if split:
        df = df[df["split"] == split]
    if df.empty:
        raise ManifestError(f"{manifest_path}: no rows in split {split!r}")
    root = Path(manifest_path)
    return load_rows(df, root if root.is_dir() else root.parent, input_size, max_images, seed)


def load_rows(
    df: pd.DataFrame, root: str | Path, input_size: int, max_images: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, np.ndarray, pd.DataFrame]:
    """Face crops of manifest rows (crop paths relative to ``root``), balanced-sampled with :func:`sample_rows`,
    as ``(x N,3,S,S in [0, 1], y N, rows)``."""
    from fakescope.data.datasets import FaceDataset

    df = sample_rows(df, max_images, seed).reset_index(drop=True)
    ds = FaceDataset(df, Path(root), input_size)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    return x, df["label"].to_numpy().astype(int), df


def run_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: np.ndarray,
    attack: str,
    eps: float,
    seed: int = 0,
    batch_size: int = 64,
    **attack_kwargs: Any,
) -> torch.Tensor:
    """Attack ``x`` against labels ``y`` in batches (one attack object, so batch ``k`` uses seed ``seed + k``)."""
    atk = create_attack(attack, model, eps=eps, seed=seed, **attack_kwargs)
    device = next(model.parameters()).device
    yt = torch.as_tensor(y, dtype=torch.float32)
    parts = [atk(x[i : i + batch_size].to(device), yt[i : i + batch_size]).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(parts) if parts else x.clone()


def perturbation_stats(x: torch.Tensor, x_adv: torch.Tensor) -> dict[str, float]:
    """Mean and max L-inf, mean L2 (whole crop, [0, 1] units) and mean SSIM between clean and adversarial images."""
    from skimage.metrics import structural_similarity

    delta = (x_adv - x).flatten(1)
    linf, l2 = delta.abs().amax(dim=1), delta.norm(dim=1)
    a, b = x.permute(0, 2, 3, 1).numpy(), x_adv.permute(0, 2, 3, 1).numpy()
    ssim = [structural_similarity(a[i], b[i], channel_axis=2, data_range=1.0) for i in range(len(a))]
    return {
        "linf_mean": float(linf.mean()) if len(linf) else 0.0,
        "linf_max": float(linf.max()) if len(linf) else 0.0,
        "l2_mean": float(l2.mean()) if len(l2) else 0.0,
        "ssim_mean": float(np.mean(ssim)) if ssim else 1.0,
    }


def classification_stats(y: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, float]:
    """AUC, balanced accuracy, accuracy and recall per class at ``threshold`` (NaN AUC with one class only)."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    pred = (prob >= threshold).astype(int)
    two = len(np.unique(y)) == 2
    return {
        "auc": float(roc_auc_score(y, prob)) if two else float("nan"),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)) if two else float((pred == y).mean()),
        "accuracy": float((pred == y).mean()),
        "fake_recall": float(pred[y == 1].mean()) if (y == 1).any() else float("nan"),
        "real_recall": float(1 - pred[y == 0].mean()) if (y == 0).any() else float("nan"),
    }


def robustness_evaluation(
    model: nn.Module,
    x: torch.Tensor,
    y: np.ndarray,
    attack: str = "pgd_linf",
    eps_list: Sequence[float] = (2 / 255, 4 / 255, 8 / 255, 16 / 255),
    threshold: float = 0.5,
    seed: int = 0,
    batch_size: int = 64,
    examples_dir: str | Path | None = None,
    names: Sequence[str] | None = None,
    **attack_kwargs: Any,
) -> dict[str, Any]:
    """Attack ``x`` (labels ``y``) at each budget and measure the damage.

    Args:
        model: the detector.
        x: clean images ``N,3,S,S`` in [0, 1].
        y: labels ``N`` (0 real, 1 fake).
        attack: registered attack name.
        eps_list: budgets.
        threshold: decision threshold on P(fake) (the checkpoint's).
        seed: attack seed.
        batch_size: images per attack call.
        examples_dir: when given, every adversarial image is written there as PNG (``eps_<k>-255/<name>.png``).
        names: file stems for the examples (default the row number).
        **attack_kwargs: passed to :func:`fakescope.attacks.create_attack` (``steps``...).

    Returns:
        ``{"attack", "threshold", "n_images", "n_fake", "clean": {...}, "results": [per-eps dicts]}``.
    """
    clean_prob = predict_proba(model, x, batch_size)
    caught = (y == 1) & (clean_prob >= threshold)
    report: dict[str, Any] = {
        "attack": attack,
        "attack_params": {k: v for k, v in attack_kwargs.items() if v is not None},
        "threshold": float(threshold),
        "seed": seed,
        "n_images": len(y),
        "n_fake": int((y == 1).sum()),
        "n_fake_detected_clean": int(caught.sum()),
        "clean": classification_stats(y, clean_prob, threshold),
        "results": [],
    }
    for eps in eps_list:
        x_adv = run_attack(model, x, y, attack, eps, seed=seed, batch_size=batch_size, **attack_kwargs)
        prob = predict_proba(model, x_adv, batch_size)
        flipped = caught & (prob < threshold)
        row = {
            "eps": float(eps),
            "eps_label": format_eps(eps),
            "attack_success_rate": float(flipped.sum() / caught.sum()) if caught.any() else float("nan"),
            "mean_fake_prob_fakes": float(prob[y == 1].mean()) if (y == 1).any() else float("nan"),
            **classification_stats(y, prob, threshold),
            **perturbation_stats(x, x_adv),
        }
        report["results"].append(row)
        _logger.info(
            "%s eps=%s: success %.3f auc %.3f", attack, row["eps_label"], row["attack_success_rate"], row["auc"]
        )
        if examples_dir is not None:
            save_examples(x_adv, Path(examples_dir) / f"eps_{row['eps_label'].replace('/', '-')}", names)
    return report


def save_examples(x: torch.Tensor, folder: Path, names: Sequence[str] | None = None) -> list[Path]:
    """Write images ``N,3,S,S`` in [0, 1] as 8-bit PNGs (rounding can undo part of a very small perturbation)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    arr = (x.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    paths = []
    for i, img in enumerate(arr):
        path = folder / f"{names[i] if names is not None else f'{i:05d}'}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(img).save(tmp)
        paths.append(path)
    return paths


def plot_robustness_curve(report: dict[str, Any], path: str | Path) -> Path:
    """Fake recall, AUC, balanced accuracy and attack success rate against epsilon (x 255), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = [0.0] + [r["eps"] * 255 for r in report["results"]]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for key, label in (("auc", "AUC"), ("balanced_accuracy", "balanced accuracy"), ("fake_recall", "fake recall")):
        ax.plot(eps, [report["clean"][key]] + [r[key] for r in report["results"]], marker="o", label=label)
    ax.plot(
        eps,
        [0.0] + [r["attack_success_rate"] for r in report["results"]],
        marker="s",
        ls="--",
        label="attack success (fakes)",
    )
    ax.set_xlabel("epsilon (x 1/255)" if report.get("norm", "linf") == "linf" else "epsilon (x 1/255, L2)")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{report.get('model', 'detector')} under {report['attack']}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    path = save_png(fig, path)
    plt.close(fig)
    return path


def report_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    c = report["clean"]
    lines = [
        f"# Robustness of {report.get('model', 'detector')} under {report['attack']}",
        "",
        f"{report['n_images']} images ({report['n_fake']} fake, {report['n_fake_detected_clean']} of them detected "
        f"clean) from split `{report.get('split', '')}`; threshold {report['threshold']:.3f}; seed {report['seed']}.",
        f"Clean: AUC {c['auc']:.3f}, balanced accuracy {c['balanced_accuracy']:.3f}, "
        f"fake recall {c['fake_recall']:.3f}.",
        "",
    ]
    columns = {  # header: (result key, format)
        "success on fakes": ("attack_success_rate", ".3f"),
        "fake recall": ("fake_recall", ".3f"),
        "AUC": ("auc", ".3f"),
        "bal. acc.": ("balanced_accuracy", ".3f"),
        "mean L-inf": ("linf_mean", ".4f"),
        "mean L2": ("l2_mean", ".3f"),
        "mean SSIM": ("ssim_mean", ".4f"),
    }
    rows = [[r["eps_label"], *(format(r[k], spec) for k, spec in columns.values())] for r in report["results"]]
    return "\n".join(lines + markdown_table(["eps", *columns], rows)) + "\n"


def evaluate_robustness(
    checkpoint: str | Path,
    manifest_path: str | Path,
    attack: str = "pgd_linf",
    eps_list: Sequence[float] = (2 / 255, 4 / 255, 8 / 255, 16 / 255),
    split: str = "test",
    max_images: int | None = None,
    out_dir: str | Path | None = None,
    save_examples_png: bool = False,
    seed: int = 0,
    batch_size: int = 64,
    device: str = "cpu",
    **attack_kwargs: Any,
) -> dict[str, Any]:
    """Load a checkpoint and a manifest split, run :func:`robustness_evaluation`, and write the report files.

    Returns:
        The report dict (also ``report.json`` in ``out_dir``, with ``report.md`` and ``robustness_curve.png``).
    """
    from fakescope.attacks._registry import get_attack_info
    from fakescope.models import load_model
    from fakescope.utils.runinfo import write_run_info

    get_attack_info(attack)  # fail fast on a bad name
    model, meta = load_model(checkpoint, map_location=device)
    x, y, rows = load_images(manifest_path, model.cfg.input_size, split, max_images, seed)
    out = Path(out_dir) if out_dir is not None else None
    names = [f"{i:05d}_{'fake' if lab else 'real'}" for i, lab in enumerate(y)]
    report = robustness_evaluation(
        model,
        x,
        y,
        attack,
        eps_list,
        float(meta.get("threshold", 0.5)),
        seed,
        batch_size,
        examples_dir=(out / "examples") if (out is not None and save_examples_png) else None,
        names=names,
        **attack_kwargs,
    )
    report.update(
        model=meta.get("model", model.cfg.arch),
        checkpoint=str(checkpoint),
        manifest=str(manifest_path),
        split=split,
        norm=create_attack(attack, model, eps=0.0, **attack_kwargs).norm,
    )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "report.json", json.dumps(json_safe(report), indent=2))
        atomic_write_text(out / "report.md", report_markdown(report))
        plot_robustness_curve(report, out / "robustness_curve.png")
        if save_examples_png:
            rows.assign(example=names).to_csv(out / "examples" / "index.csv", index=False)
        write_run_info(
            out,
            {
                "command": "attack",
                "checkpoint": str(checkpoint),
                "manifest": str(manifest_path),
                "attack": attack,
                "eps": list(eps_list),
                "split": split,
                "max_images": max_images,
                "seed": seed,
                "attack_kwargs": attack_kwargs,
            },
        )
    return report
