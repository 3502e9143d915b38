"""Fit adversarial-input detectors on held-out clean data and measure them per attack and epsilon.

The detectors file (``adv-detect fit --out DET.json``) holds both detectors::

    {"format": "fakescope-adv-detect/1", "model": ..., "squeezing": {...}, "learned": {...}, "fit": {...}}

Detection is measured on fakes attacked fake -> real (the threat model) against clean images of both classes,
on a split the detectors never saw: AUROC and TPR at 5 % FPR on all attacked fakes and on the successful ones
only, plus the false-positive rate of the fitted threshold, and the share of attacked fakes that pass as real
*and* stay unflagged. Adaptive attackers know the detectors (:data:`ADAPTIVE_ATTACKERS`): the baselines drive the
mean logit over the squeezed branches (:class:`~fakescope.defenses.SqueezeEnsemble`) or a logsumexp of model and
feature-detector logits (:class:`~fakescope.defenses.JointModel`) with ART's PGD; the strong ones
(:class:`~fakescope.defenses.adaptive.AdaptiveAttack`) push every branch to "real" with a margin, penalise the
squeezing score, and stop at the fitted thresholds. :func:`strength_checks` tests that they are strong enough.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from fakescope.attacks._base import TwoLogit, format_eps
from fakescope.attacks.evaluate import load_images, predict_proba, run_attack
from fakescope.attacks.gradient import PGDAttack
from fakescope.defenses.adaptive import AdaptiveAttack, squeezer_gradients
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


# attacker name -> (what it targets, description); the non-adaptive ones are registered attacks (fgsm, pgd_linf)
ADAPTIVE_ATTACKERS: dict[str, str] = {
    "adaptive_mean": "squeezing baseline (before issue 14): ART PGD on the mean logit over the branches, BPDA",
    "adaptive_all_branches": "squeezing: hinge on every branch below the threshold minus a margin, BPDA, restarts",
    "adaptive_penalty": "squeezing: all branches plus the squeezing score (largest L1 distance) as a penalty",
    "adaptive_joint": "learned baseline (before issue 14): ART PGD on logsumexp(model logit, detector logit)",
    "adaptive_learned": "learned: hinge on the model logit and on the feature detector's logit, restarts",
    "adaptive_both": "both detectors: all branches, squeezing penalty and the learned detector's hinge",
}
DETECTORS = ("feature_squeezing", "feature_logreg")


@dataclass
class AdaptiveConfig:
    """Budget of the adaptive attackers (``adaptive_mean`` and ``adaptive_joint`` keep the plain ``steps``)."""

    steps: int = 100
    restarts: int = 5
    penalty: float = 5.0
    margin: float = 3.0
    eps_step: float | None = None
    attackers: tuple[str, ...] = tuple(ADAPTIVE_ATTACKERS)


def make_attacker(
    name: str,
    model: nn.Module,
    squeezing: FeatureSqueezing,
    learned: FeatureDetector,
    eps: float,
    threshold: float,
    seed: int,
    steps: int,
    cfg: AdaptiveConfig,
) -> Any:
    """The attacker ``name`` (one of :data:`ADAPTIVE_ATTACKERS`), callable as ``attacker(x, y) -> x_adv``.

    Raises:
        ValueError: unknown name.
    """
    if name == "adaptive_mean":
        return AdaptivePGD(SqueezeEnsemble(squeezing), model, eps, seed=seed, steps=steps)
    if name == "adaptive_joint":
        return AdaptivePGD(JointModel(model, learned), model, eps, seed=seed, steps=steps)
    targets = {
        "adaptive_all_branches": {"squeezing": squeezing},
        "adaptive_penalty": {"squeezing": squeezing, "penalty": cfg.penalty},
        "adaptive_learned": {"learned": learned},
        "adaptive_both": {"squeezing": squeezing, "learned": learned, "penalty": cfg.penalty},
    }
    if name not in targets:
        raise ValueError(f"unknown adaptive attacker {name!r}; choose one of {list(ADAPTIVE_ATTACKERS)}")
    return AdaptiveAttack(
        model,
        eps,
        threshold=threshold,
        steps=cfg.steps,
        restarts=cfg.restarts,
        margin=cfg.margin,
        eps_step=cfg.eps_step,
        seed=seed,
        **targets[name],
    )


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
    adaptive_cfg: AdaptiveConfig | None = None,
) -> dict[str, Any]:
    """Detection and evasion per attacker, epsilon and detector on held-out ``x`` (see module docstring).

    Every attacker (the non-adaptive ``attacks`` and, with ``adaptive``, the adaptive attackers of
    ``adaptive_cfg``) attacks the held-out fakes fake -> real, and is measured against both detectors: attack
    success (P(fake) below ``threshold``), AUROC and TPR at 5 % FPR against the clean held-out images, the
    detector's TPR at its fitted threshold, and ``success_undetected``: the share of attacked fakes that pass as
    real *and* stay under the fitted threshold (``success_undetected_both``: under both thresholds).
    """
    cfg = adaptive_cfg or AdaptiveConfig()
    dets = {"feature_squeezing": squeezing, "feature_logreg": learned}
    clean = {k: d.score(x) for k, d in dets.items()}
    thresholds = {k: d.threshold for k, d in dets.items()}
    fpr = {k: float((clean[k] > thresholds[k]).mean()) for k in dets}
    fakes = x[y == 1]
    caught = predict_proba(model, fakes) >= threshold
    rows: list[dict[str, Any]] = []
    plan = [(a, "non_adaptive") for a in attacks]
    plan += [(a, "adaptive") for a in cfg.attackers] if adaptive else []
    for k, (name, kind) in enumerate(plan):
        for j, eps in enumerate(eps_list):
            s = seed + 100 * k + j
            if kind == "non_adaptive":
                x_adv = run_attack(model, fakes, np.ones(len(fakes), int), name, eps, seed=s, **_steps(name, steps))
            else:
                atk = make_attacker(name, model, squeezing, learned, eps, threshold, s, steps, cfg)
                x_adv = _batched(atk, fakes)
            rows += _measure(model, dets, clean, x_adv, caught, threshold, name, kind, eps)
            _logger.info(
                "%s eps=%s: %s", name, format_eps(eps), {r["detector"]: r["success_undetected"] for r in rows[-2:]}
            )
    return {
        "n_clean": len(x),
        "n_fake_attacked": len(fakes),
        "n_fake_caught_clean": int(caught.sum()),
        "thresholds": thresholds,
        "model_threshold": float(threshold),
        "fpr_at_threshold_clean": fpr,
        "adaptive_config": asdict(cfg),
        "attackers": {**{a: "non-adaptive (registered attack)" for a in attacks}, **ADAPTIVE_ATTACKERS},
        "results": rows,
    }


def _measure(
    model: nn.Module,
    dets: dict[str, Any],
    clean: dict[str, np.ndarray],
    x_adv: torch.Tensor,
    caught: np.ndarray,
    threshold: float,
    name: str,
    kind: str,
    eps: float,
) -> list[dict[str, Any]]:
    """One row per detector for the adversarial fakes ``x_adv`` (see :func:`detection_report`)."""
    success = predict_proba(model, x_adv) < threshold
    scores = {k: d.score(x_adv) for k, d in dets.items()}
    unflagged = {k: scores[k] <= dets[k].threshold for k in dets}
    both = success & unflagged["feature_squeezing"] & unflagged["feature_logreg"]
    rows = []
    for det, s in scores.items():
        all_stats = detection_stats(clean[det], s, dets[det].threshold)
        ok_stats = detection_stats(clean[det], s[success], dets[det].threshold)
        won = success & unflagged[det]
        rows.append(
            {
                "attack": name,
                "kind": kind,
                "eps": float(eps),
                "eps_label": format_eps(eps),
                "detector": det,
                "n_adv": len(s),
                "attack_success_rate": _mean(success),
                **all_stats,
                "success_undetected": _mean(won),
                "success_undetected_caught": _mean(won[caught]),
                "success_undetected_both": _mean(both),
                "auroc_successful": ok_stats["auroc"],
                "tpr_at_5fpr_successful": ok_stats["tpr_at_5fpr"],
            }
        )
    return rows


def _mean(a: np.ndarray) -> float:
    return float(a.mean()) if len(a) else float("nan")


def _batched(attack: Any, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    ones = torch.ones(len(x))
    parts = [attack(x[i : i + batch_size], ones[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(parts) if parts else x.clone()


def strength_checks(
    model: nn.Module,
    squeezing: FeatureSqueezing,
    learned: FeatureDetector,
    fakes: torch.Tensor,
    threshold: float = 0.5,
    attacker: str = "adaptive_both",
    eps_list: Sequence[float] = (2 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255),
    curve_eps: float = 8 / 255,
    undefended_eps: Sequence[float] = (0.5 / 255, 1 / 255),
    seed: int = 5000,
    adaptive_cfg: AdaptiveConfig | None = None,
) -> dict[str, Any]:
    """Is the adaptive attack strong enough? The checks of Tramer et al. (NeurIPS 2020) on attacked ``fakes``.

    - ``eps_sweep``: success-and-undetected of ``attacker`` per budget; it should reach 1 as eps grows.
    - ``undefended``: the same loop with no detector targeted against ART's PGD (same steps, one restart) on the
      model alone; a correct loop matches plain PGD.
    - ``curve``: at ``curve_eps``, success after ``k`` steps of the first restart and after ``k`` restarts; more
      budget should stop helping (a plateau).
    - ``gradients``: mean absolute BPDA gradient through every squeezer (none may be zero).
    """
    cfg = adaptive_cfg or AdaptiveConfig()
    dets = {"feature_squeezing": squeezing, "feature_logreg": learned}
    out: dict[str, Any] = {"attacker": attacker, "n_fakes": len(fakes), "config": asdict(cfg), "eps_sweep": []}
    for j, eps in enumerate(sorted({*eps_list, curve_eps})):
        atk = make_attacker(attacker, model, squeezing, learned, eps, threshold, seed + j, cfg.steps, cfg)
        x_adv = _batched(atk, fakes)
        success = predict_proba(model, x_adv) < threshold
        unflagged = {k: d.score(x_adv) <= d.threshold for k, d in dets.items()}
        row = {"eps": float(eps), "eps_label": format_eps(eps), "attack_success_rate": _mean(success)}
        row.update({f"success_undetected_{k}": _mean(success & u) for k, u in unflagged.items()})
        row["success_undetected_both"] = _mean(success & unflagged["feature_squeezing"] & unflagged["feature_logreg"])
        out["eps_sweep"].append(row)
        if abs(eps - curve_eps) < 1e-12 and isinstance(atk, AdaptiveAttack):
            out["curve"] = {
                "eps": float(eps),
                "success_by_step": atk.trace.success_by_step(cfg.steps),
                "success_by_restart": atk.trace.success_by_restart(cfg.restarts),
            }
        _logger.info("strength %s eps=%s: %s", attacker, row["eps_label"], row)
    out["undefended"] = []
    ones = np.ones(len(fakes), int)
    for j, eps in enumerate(undefended_eps):
        ours = AdaptiveAttack(model, eps, threshold=threshold, steps=cfg.steps, restarts=1, seed=seed + 50 + j)
        art = run_attack(model, fakes, ones, "pgd_linf", eps, seed=seed + 50 + j, steps=cfg.steps)
        out["undefended"].append(
            {
                "eps": float(eps),
                "eps_label": format_eps(eps),
                "adaptive_loop_success": _mean(predict_proba(model, _batched(ours, fakes)) < threshold),
                "art_pgd_success": _mean(predict_proba(model, art) < threshold),
            }
        )
    out["gradients"] = squeezer_gradients(squeezing, fakes[:8])
    return out


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
        "success & undetected": "success_undetected",
        "... by both detectors": "success_undetected_both",
    }
    rows = [
        [r["attack"], r["eps_label"], r["detector"], *(f"{r.get(k, float('nan')):.3f}" for k in columns.values())]
        for r in report["results"]
    ]
    lines += [
        "`success & undetected`: share of the attacked fakes that the model calls real *and* the detector leaves "
        "under its fitted threshold (the attacker's real goal); `... by both detectors`: under both thresholds.",
        "",
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
    adaptive_cfg: AdaptiveConfig | None = None,
) -> dict[str, Any]:
    """Fit both detectors on ``fit_split``, evaluate them on ``test_split``, write DET.json and a report beside it.

    ``adaptive_cfg`` sets the adaptive attackers and their budget (default :class:`AdaptiveConfig`: all of them,
    100 steps x 5 restarts).

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
        adaptive_cfg=adaptive_cfg,
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
