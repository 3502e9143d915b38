"""Binary metrics on numpy arrays: pure functions, inputs never modified, thresholds always explicit.

Labels are 0 = real, 1 = fake; scores are P(fake). AUC, AP and EER do not depend on a threshold; accuracy,
balanced accuracy, precision/recall/F1 and the confusion matrix are reported at the threshold given (the one
chosen on validation) — a model that calls everything "fake" gets a balanced accuracy of 0.5 whatever the class
ratio, which is the number the study should have reported.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import numpy as np
from sklearn import metrics as skm

_logger = logging.getLogger(__name__)

#: Fraction of predictions in one class at or above which :func:`one_class_warning` fires.
ONE_CLASS_FRACTION = 0.95
_EPS = 1e-7


def _check(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(np.int64).reshape(-1)
    p = np.asarray(y_prob, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} values but y_prob has {p.size}")
    if y.size == 0:
        raise ValueError("no samples to score")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold only 0 (real) and 1 (fake)")
    if not np.isfinite(p).all():
        raise ValueError("y_prob holds NaN or infinite values")
    return y, p


def _both_classes(y: np.ndarray) -> bool:
    return bool((y == 0).any() and (y == 1).any())


def eer(y_true: Any, y_prob: Any) -> float:
    """Equal error rate: where the false-positive rate equals the false-negative rate on the ROC.

    Interpolated linearly between the two ROC points where ``fpr - fnr`` changes sign. ``nan`` when only one
    class is present.
    """
    y, p = _check(y_true, y_prob)
    if not _both_classes(y):
        return math.nan
    fpr, tpr, _ = skm.roc_curve(y, p)
    fnr = 1.0 - tpr
    diff = fpr - fnr  # increases from -1 (fpr 0, fnr 1) to +1
    idx = int(np.argmax(diff >= 0))
    if diff[idx] == 0 or idx == 0:
        return float(fpr[idx])
    d0, d1 = diff[idx - 1], diff[idx]
    t = d0 / (d0 - d1)
    return float(fpr[idx - 1] + t * (fpr[idx] - fpr[idx - 1]))


def choose_threshold(y_true: Any, y_prob: Any, criterion: Literal["youden", "balanced_accuracy"] = "youden") -> float:
    """A decision threshold on P(fake) chosen on (validation) data.

    Args:
        y_true: labels 0/1.
        y_prob: P(fake).
        criterion: ``youden`` maximises TPR - FPR on the ROC; ``balanced_accuracy`` maximises the balanced
            accuracy of ``y_prob >= t`` over the observed scores (the two coincide up to ties).

    Returns:
        The threshold; 0.5 when only one class is present. Predictions are ``y_prob >= threshold``.
    """
    y, p = _check(y_true, y_prob)
    if criterion not in ("youden", "balanced_accuracy"):
        raise ValueError(f"unknown criterion {criterion!r}; choose 'youden' or 'balanced_accuracy'")
    if not _both_classes(y):
        _logger.warning("choose_threshold: only one class present, keeping 0.5")
        return 0.5
    if criterion == "youden":
        fpr, tpr, thr = skm.roc_curve(y, p)
        best = int(np.argmax(tpr - fpr))
        return float(min(thr[best], 1.0))
    best_t, best_b = 0.5, -1.0
    for t in np.unique(p):
        b = _balanced_accuracy(y, (p >= t).astype(np.int64))
        if b > best_b:
            best_t, best_b = float(t), b
    return best_t


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    recalls = [float((pred[y == c] == c).mean()) for c in (0, 1) if (y == c).any()]
    return float(np.mean(recalls))


def one_class_warning(y_prob: Any, threshold: float = 0.5, fraction: float = ONE_CLASS_FRACTION) -> str | None:
    """A warning text when at least ``fraction`` of the predictions fall in one class, else None.

    This is the study's failure: 83-86 % "accuracy" that came from calling everything fake.
    """
    p = np.asarray(y_prob, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return None
    fake_share = float((p >= threshold).mean())
    for share, name in ((fake_share, "fake"), (1.0 - fake_share, "real")):
        if share >= fraction:
            return (
                f"the model predicts '{name}' for {share:.1%} of the {p.size} inputs at threshold {threshold:.3g}: "
                "it has (nearly) collapsed to one class; accuracy is meaningless here, read AUC and balanced accuracy"
            )
    return None


def binary_metrics(y_true: Any, y_prob: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Every binary metric fakescope reports.

    Args:
        y_true: labels, 0 = real, 1 = fake.
        y_prob: P(fake), same length.
        threshold: decision threshold (predicted fake when ``y_prob >= threshold``).

    Returns:
        A JSON-serialisable dict: ``n``, ``n_real``, ``n_fake``, ``threshold``, ``auc``, ``ap``, ``eer``,
        ``log_loss`` (probabilities clipped to [1e-7, 1 - 1e-7]), ``accuracy``, ``balanced_accuracy``,
        ``precision``/``recall``/``f1``/``support`` as ``{"real": .., "fake": ..}``, ``confusion`` (2x2 list,
        rows = true real/fake, columns = predicted real/fake), ``predicted_fake_fraction`` and ``warning``
        (the one-class warning or None). Threshold-free metrics are ``nan`` when only one class is present.
    """
    y, p = _check(y_true, y_prob)
    pred = (p >= threshold).astype(np.int64)
    both = _both_classes(y)
    prec, rec, f1, support = skm.precision_recall_fscore_support(y, pred, labels=[0, 1], zero_division=0)
    confusion = skm.confusion_matrix(y, pred, labels=[0, 1])
    clipped = np.clip(p, _EPS, 1 - _EPS)
    return {
        "n": int(y.size),
        "n_real": int((y == 0).sum()),
        "n_fake": int((y == 1).sum()),
        "threshold": float(threshold),
        "auc": float(skm.roc_auc_score(y, p)) if both else math.nan,
        "ap": float(skm.average_precision_score(y, p)) if both else math.nan,
        "eer": eer(y, p),
        "log_loss": float(skm.log_loss(y, clipped, labels=[0, 1])),
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": _balanced_accuracy(y, pred),
        "precision": {"real": float(prec[0]), "fake": float(prec[1])},
        "recall": {"real": float(rec[0]), "fake": float(rec[1])},
        "f1": {"real": float(f1[0]), "fake": float(f1[1])},
        "support": {"real": int(support[0]), "fake": int(support[1])},
        "confusion": confusion.astype(int).tolist(),
        "predicted_fake_fraction": float(pred.mean()),
        "warning": one_class_warning(p, threshold),
    }


def roc_points(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, tpr)`` of the ROC curve."""
    y, p = _check(y_true, y_prob)
    fpr, tpr, _ = skm.roc_curve(y, p)
    return fpr, tpr


def pr_points(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(recall, precision)`` of the precision-recall curve (fake = positive)."""
    y, p = _check(y_true, y_prob)
    precision, recall, _ = skm.precision_recall_curve(y, p)
    return recall, precision
