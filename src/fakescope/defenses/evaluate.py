"""Fit adversarial-input detectors on held-out clean data and measure them per attack and epsilon.

The detectors file (``adv-detect fit --out DET.json``) holds both detectors::

    {"format": "fakescope-adv-detect/1", "model": ..., "squeezing": {...}, "learned": {...}, "fit": {...}}

Detection is measured on fakes attacked fake -> real (the threat model) against clean images of both classes,
on a split the detectors never saw: AUROC and TPR at 5 % FPR on all attacked fakes and on the successful ones
only, plus the false-positive rate of the fitted threshold. Adaptive attackers know the detector: PGD through the
squeezers (BPDA, :class:`~fakescope.defenses.SqueezeEnsemble`) and PGD on the joint model + feature-detector
loss (:class:`~fakescope.defenses.JointModel`).
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

from fakescope.attacks._base import TwoLogit, format_eps
from fakescope.attacks.evaluate import load_images, predict_proba, run_attack
from fakescope.attacks.gradient import PGDAttack
from fakescope.defenses.learned import FeatureDetector, JointModel
from fakescope.defenses.squeezing import FeatureSqueezing, SqueezeEnsemble
from fakescope.eval.report import json_safe, markdown_table
from fakescope.utils.io import atomic_write_text

_logger = logging.getLogger(__name__)
FORMAT = "fakescope-adv-detect/1"


class AdaptivePGD(PGDAttack):
    """L-inf PGD (ART) against a module that includes a defence (``target``: ``B`` logits)."""

    def __init__(self, target: nn.Module, model: nn.Module, eps: float, seed: int = 0, steps: int = 10) -> None:
        super().__init__(model, eps, seed, norm="linf", steps=steps)
        self.target = target
        self.name = "adaptive_pgd_linf"

    def wrapped(self) -> nn.Module:
        """The defended function."""
        return TwoLogit(self.target)


def tpr_at_fpr(y: np.ndarray, score: np.ndarray, fpr: float = 0.05) -> float:
    """Largest true-positive rate whose false-positive rate is at most ``fpr`` (ROC on ``y``, ``score``)."""
    from sklearn.metrics import roc_curve

    f, t, _ = roc_curve(y, score)
    ok = f <= fpr + 1e-12
    return float(t[ok].max()) if ok.any() else 0.0


def detection_stats(clean: np.ndarray, adv: np.ndarray, threshold: float | None) -> dict[str, float]:
    """AUROC, TPR at 5 % FPR, and TPR/FPR of the fitted threshold for clean vs adversarial scores."""
    from sklearn.metrics import roc_auc_score

    if len(adv) == 0 or len(clean) == 0:
        return {"auroc": float("nan"), "tpr_at_5fpr": float("nan"), "tpr_at_threshold": float("nan")}
    y = np.r_[np.zeros(len(clean)), np.ones(len(adv))]
    s = np.r_[clean, adv]
    out = {"auroc": float(roc_auc_score(y, s)), "tpr_at_5fpr": tpr_at_fpr(y, s, 0.05)}
    if threshold is not None:
        out["tpr_at_threshold"] = float((adv > threshold).mean())
    return out


def fit_detectors(
    model: nn.Module,
    x: torch.Tensor,
    y: np.ndarray,
    attack: str = "pgd_linf",
    eps_list: Sequence[float] = (4 / 255, 8 / 255),
    fpr: float = 0.05,
    seed: int = 0,
    steps: int = 10,
    squeeze_kwargs: dict[str, Any] | None = None,
) -> tuple[FeatureSqueezing, FeatureDetector]:
    """Fit feature squeezing (threshold on clean ``x``) and the feature detector (clean ``x`` vs fakes attacked).

    Args:
        model: the detector.
        x: clean held-out images (not the test set) ``N,3,S,S``.
        y: their labels.
        attack: attack that makes the learned detector's adversarial training examples.
        eps_list: budgets of those examples (one attacked copy of every fake per budget).
        fpr: false-positive rate on clean data at which both thresholds are set.
        seed: attack seed.
        steps: attack steps (gradient attacks).
        squeeze_kwargs: options of :class:`FeatureSqueezing`.
    """
    squeezing = FeatureSqueezing(model, **(squeeze_kwargs or {})).fit(x, fpr=fpr)
    fakes = x[y == 1]
    adv = [
        run_attack(model, fakes, np.ones(len(fakes), int), attack, e, seed=seed + k, **_steps(attack, steps))
        for k, e in enumerate(eps_list)
    ]
    learned = FeatureDetector(model).fit(x, torch.cat(adv), fpr=fpr)
    return squeezing, learned


def _steps(attack: str, steps: int | None) -> dict[str, Any]:
    return {"steps": steps} if steps is not None and attack not in ("fgsm", "fgsm_rs") else {}


def detection_report(
    model: nn.Module,
    squeezing: FeatureSqueezing,
    learned: FeatureDetector,
    x: torch.Tensor,
    y: np.ndarray,
    attacks: Sequence[str] = ("fgsm", "pgd_linf"),
    eps_list: Sequence[float] = (4 / 255, 8 / 255),
    threshold: float = 0.5,
    seed: int = 1000,
    steps: int = 10,
    adaptive: bool = True,
) -> dict[str, Any]:
    """Detection AUROC / TPR per attack, epsilon and detector on held-out ``x`` (see module docstring)."""
    clean = {"feature_squeezing": squeezing.score(x), "feature_logreg": learned.score(x)}
    fpr = {
        "feature_squeezing": float((clean["feature_squeezing"] > squeezing.threshold).mean()),
        "feature_logreg": float((clean["feature_logreg"] > learned.threshold).mean()),
    }
    thresholds = {"feature_squeezing": squeezing.threshold, "feature_logreg": learned.threshold}
    fakes = x[y == 1]
    ones = np.ones(len(fakes), int)
    rows: list[dict[str, Any]] = []

    def measure(name: str, eps: float, x_adv: torch.Tensor, detectors: Sequence[str]) -> None:
        prob = predict_proba(model, x_adv)
        success = prob < threshold
        for det in detectors:
            fn = squeezing.score if det == "feature_squeezing" else learned.score
            s = fn(x_adv)
            all_stats = detection_stats(clean[det], s, thresholds[det])
            ok_stats = detection_stats(clean[det], s[success], thresholds[det])
            rows.append(
                {
                    "attack": name,
                    "eps": float(eps),
                    "eps_label": format_eps(eps),
                    "detector": det,
                    "n_adv": len(s),
                    "attack_success_rate": float(success.mean()) if len(s) else float("nan"),
                    **all_stats,
                    "auroc_successful": ok_stats["auroc"],
                    "tpr_at_5fpr_successful": ok_stats["tpr_at_5fpr"],
                    "fpr_at_threshold_clean": fpr[det],
                }
            )

    for k, attack in enumerate(attacks):
        for j, eps in enumerate(eps_list):
            x_adv = run_attack(model, fakes, ones, attack, eps, seed=seed + 100 * k + j, **_steps(attack, steps))
            measure(attack, eps, x_adv, ("feature_squeezing", "feature_logreg"))
    if adaptive:
        for j, eps in enumerate(eps_list):
            atk = AdaptivePGD(SqueezeEnsemble(squeezing), model, eps, seed=seed + 777 + j, steps=steps)
            measure("adaptive_pgd_linf(squeezing)", eps, _batched(atk, fakes), ("feature_squeezing",))
            atk = AdaptivePGD(JointModel(model, learned), model, eps, seed=seed + 888 + j, steps=steps)
            measure("adaptive_pgd_linf(joint)", eps, _batched(atk, fakes), ("feature_logreg",))
    return {
        "n_clean": len(x),
        "n_fake_attacked": len(fakes),
        "thresholds": thresholds,
        "fpr_at_threshold_clean": fpr,
        "results": rows,
    }


def _batched(attack: PGDAttack, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    ones = torch.ones(len(x))
    parts = [attack(x[i : i + batch_size], ones[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(parts) if parts else x.clone()


def detection_markdown(report: dict[str, Any]) -> str:
    """The detection report as Markdown."""
    lines = [
        "# Adversarial-input detection",
        "",
        f"Held-out split: {report['n_clean']} clean images, {report['n_fake_attacked']} fakes attacked fake -> real. "
        f"Thresholds set at 5 % FPR on the fit split; measured clean FPR: "
        + ", ".join(f"{k} {v:.3f}" for k, v in report["fpr_at_threshold_clean"].items())
        + ".",
        "",
    ]
    columns = {  # header: result key, all written with 3 decimals
        "attack success": "attack_success_rate",
        "AUROC": "auroc",
        "TPR@5%FPR": "tpr_at_5fpr",
        "TPR@threshold": "tpr_at_threshold",
        "AUROC (successful)": "auroc_successful",
    }
    rows = [
        [r["attack"], r["eps_label"], r["detector"], *(f"{r.get(k, float('nan')):.3f}" for k in columns.values())]
        for r in report["results"]
    ]
    return "\n".join(lines + markdown_table(["attack", "eps", "detector", *columns], rows)) + "\n"


def save_detectors(path: str | Path, squeezing: FeatureSqueezing, learned: FeatureDetector, **meta: Any) -> Path:
    """Write both detectors (and ``meta``) as one JSON file."""
    data = {"format": FORMAT, **meta, "squeezing": squeezing.to_dict(), "learned": learned.to_dict()}
    atomic_write_text(path, json.dumps(json_safe(data), indent=2))
    return Path(path)


def load_detectors(path: str | Path, model: nn.Module) -> tuple[FeatureSqueezing, FeatureDetector | None, dict]:
    """Read a detectors file; returns ``(squeezing, learned or None, raw dict)``.

    Raises:
        FakescopeError: the file is missing or is not a fakescope adv-detect file.
    """
    from fakescope.errors import FakescopeError

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FakescopeError(f"{path}: cannot read detectors file ({exc})") from exc
    if data.get("format") != FORMAT and data.get("kind") != "feature_squeezing":
        raise FakescopeError(f"{path}: not a fakescope adv-detect file (no format {FORMAT!r})")
    squeezing = FeatureSqueezing.from_dict(model, data.get("squeezing", data))
    learned = FeatureDetector.from_dict(model, data["learned"]) if data.get("learned") else None
    return squeezing, learned, data


def fit_from_manifest(
    checkpoint: str | Path,
    manifest_path: str | Path,
    out_path: str | Path,
    fit_split: str = "val",
    test_split: str = "test",
    max_images: int | None = 200,
    attack: str = "pgd_linf",
    eval_attacks: Sequence[str] = ("fgsm", "pgd_linf"),
    eps_list: Sequence[float] = (4 / 255, 8 / 255),
    steps: int = 10,
    adaptive: bool = True,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Fit both detectors on ``fit_split``, evaluate them on ``test_split``, write DET.json and a report beside it.

    Returns:
        The detection report (also ``<out>.report.json`` and ``<out>.report.md``).
    """
    from fakescope.models import load_model
    from fakescope.utils.runinfo import run_metadata

    model, meta = load_model(checkpoint, map_location=device)
    size = model.cfg.input_size
    x_fit, y_fit, _ = load_images(manifest_path, size, fit_split, max_images, seed)
    squeezing, learned = fit_detectors(model, x_fit, y_fit, attack, eps_list, seed=seed, steps=steps)
    out_path = Path(out_path)
    fit_info = {"split": fit_split, "n_images": len(y_fit), "attack": attack, "eps": list(eps_list), "steps": steps}
    save_detectors(out_path, squeezing, learned, model=meta.get("model"), checkpoint=str(checkpoint), fit=fit_info)
    x_test, y_test, _ = load_images(manifest_path, size, test_split, max_images, seed + 1)
    report = detection_report(
        model,
        squeezing,
        learned,
        x_test,
        y_test,
        eval_attacks,
        eps_list,
        float(meta.get("threshold", 0.5)),
        seed=seed + 1000,
        steps=steps,
        adaptive=adaptive,
    )
    report.update(detectors=str(out_path), test_split=test_split, fit=fit_info, **run_metadata())
    stem = out_path.with_suffix("")
    atomic_write_text(stem.with_name(stem.name + ".report.json"), json.dumps(json_safe(report), indent=2))
    atomic_write_text(stem.with_name(stem.name + ".report.md"), detection_markdown(report))
    return report


def score_inputs(
    detectors_path: str | Path,
    checkpoint: str | Path,
    inputs: Sequence[str | Path],
    split: str | None = "test",
    max_images: int | None = None,
    device: str = "cpu",
) -> pd.DataFrame:
    """Adversarial-suspicion scores of a manifest split or of image files (whole image resized to the model input).

    Returns:
        One row per image: ``path``, ``label`` (manifests only), ``fake_prob``, ``squeeze_score``,
        ``squeeze_flag``, ``learned_score``, ``learned_flag``, ``error``. Unreadable images are recorded and skipped.
    """
    from fakescope.models import load_model

    model, _ = load_model(checkpoint, map_location=device)
    squeezing, learned, _ = load_detectors(detectors_path, model)
    size = model.cfg.input_size
    inputs = [Path(p) for p in inputs]
    if len(inputs) == 1 and (inputs[0].suffix in (".parquet", ".csv") or (inputs[0] / "manifest.parquet").is_file()):
        x, y, df = load_images(inputs[0], size, split, max_images)
        base = pd.DataFrame({"path": df["crop_path"].astype(str), "label": y, "error": ""})
    else:
        x, base = _read_images(inputs, size)
    out = base.copy()
    ok = (out["error"] == "").to_numpy()
    for col in ("fake_prob", "squeeze_score", "learned_score"):
        out[col] = np.nan
    out["squeeze_flag"] = False
    out["learned_flag"] = False
    if len(x):
        s = squeezing.score(x)
        out.loc[ok, "fake_prob"] = predict_proba(model, x)
        out.loc[ok, "squeeze_score"] = s
        out.loc[ok, "squeeze_flag"] = s > (squeezing.threshold if squeezing.threshold is not None else np.inf)
        if learned is not None:
            ls = learned.score(x)
            out.loc[ok, "learned_score"] = ls
            out.loc[ok, "learned_flag"] = ls > learned.threshold
    return out


def _read_images(paths: Sequence[Path], size: int) -> tuple[torch.Tensor, pd.DataFrame]:
    import cv2

    from fakescope.data.media import iter_media, read_image
    from fakescope.errors import MediaError

    files = iter_media(paths)
    tensors, rows = [], []
    for p in files:
        try:
            img = read_image(p)
        except MediaError as exc:
            rows.append({"path": str(p), "error": exc.reason})
            continue
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        tensors.append(torch.from_numpy(img).permute(2, 0, 1).float() / 255.0)
        rows.append({"path": str(p), "error": ""})
    x = torch.stack(tensors) if tensors else torch.zeros(0, 3, size, size)
    return x, pd.DataFrame(rows, columns=["path", "error"])
