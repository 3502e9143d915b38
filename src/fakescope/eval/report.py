"""Evaluate a checkpoint on a manifest split: frame- and video-level metrics, curves, JSON and Markdown reports.

Metrics are reported at two thresholds: the one chosen on validation during training (stored in the
checkpoint's metadata) and 0.5. The validation threshold is chosen on frame scores and applied unchanged to the
video scores. A loud warning is raised when the model puts (nearly) every input in one class.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fakescope.errors import ManifestError
from fakescope.eval.aggregate import METHODS, aggregate_scores
from fakescope.eval.metrics import binary_metrics, pr_points, roc_points
from fakescope.utils.io import atomic_write_text, save_png

_logger = logging.getLogger(__name__)

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def load_detector(path: str | Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """Any detector source :func:`fakescope.models.load_model` takes (checkpoint, ensemble, named detector)."""
    from fakescope.models import load_model

    return load_model(path, map_location=device)


def select_split(df: pd.DataFrame, split: str | None, manifest_path: str | Path) -> pd.DataFrame:
    """Rows of ``split`` (``None`` or ``"all"``: every row), with a clear error when there are none."""
    if split in (None, "", "all"):
        rows = df
    else:
        rows = df[df["split"] == split]
    if rows.empty:
        present = sorted({s for s in df["split"] if s})
        raise ManifestError(f"{manifest_path}: no rows in split {split!r} (splits present: {present or 'none'})")
    return rows.reset_index(drop=True)


def evaluate_scores(
    rows: pd.DataFrame, probs: np.ndarray, threshold: float = 0.5, aggregation: str = "mean"
) -> dict[str, Any]:
    """Frame- and video-level metrics of ``probs`` (aligned with manifest ``rows``) at ``threshold`` and 0.5.

    Returns:
        ``{"frame": {"at_threshold": .., "at_0.5": ..}, "video": {...}, "warnings": [...], "n_frames", "n_videos"}``.
    """
    if aggregation not in METHODS:
        raise ValueError(f"unknown aggregation {aggregation!r}; choose one of {', '.join(METHODS)}")
    y = rows["label"].to_numpy(np.int64)
    videos = aggregate_scores(
        rows["video_id"].to_numpy(), probs, aggregation, track_ids=rows["track_id"].to_numpy(), labels=y
    )
    out: dict[str, Any] = {"n_frames": len(rows), "n_videos": len(videos), "warnings": []}
    for level, (labels, scores) in {
        "frame": (y, probs),
        "video": (videos["label"].to_numpy(), videos["fake_prob"].to_numpy()),
    }.items():
        at_t = binary_metrics(labels, scores, threshold)
        out[level] = {"at_threshold": at_t, "at_0.5": binary_metrics(labels, scores, 0.5)}
        if at_t["warning"]:
            message = f"{level} level: {at_t['warning']}"
            _logger.warning("ONE-CLASS PREDICTOR: %s", message)
            out["warnings"].append(message)
    out["_videos"] = videos
    return out


def evaluate_checkpoint(
    ckpt: str | Path,
    manifest_path: str | Path,
    split: str | None = "test",
    out_dir: str | Path | None = None,
    *,
    aggregation: str = "mean",
    batch_size: int = 64,
    device: str = "cpu",
    threshold: float | None = None,
) -> dict[str, Any]:
    """Score a manifest split with a checkpoint and report frame- and video-level metrics.

    Args:
        ckpt: a ``.safetensors`` checkpoint or an ensemble descriptor (``ensemble.json`` / its folder).
        manifest_path: the manifest (crops are relative to its folder).
        split: ``train``, ``val``, ``test``, or ``None``/``"all"`` for every row.
        out_dir: where to write ``report.json``, ``report.md``, ``roc.png``, ``pr.png``, ``frame_scores.csv`` and
            ``video_scores.csv`` (nothing is written when None).
        aggregation: frame -> video aggregation (``mean``, ``max``, ``confident_mean``), per track then video.
        batch_size: inference batch size.
        device: torch device.
        threshold: override of the checkpoint's validation threshold.

    Returns:
        The report dict (JSON-serialisable; ``NaN`` is written as ``null`` in the file).

    Raises:
        CheckpointError: unreadable checkpoint. ManifestError: unreadable manifest or an empty split.
    """
    from fakescope.data.contract import contract_mismatch
    from fakescope.data.manifest import read_manifest
    from fakescope.eval.scoring import predict_scores

    manifest_path = Path(manifest_path)
    model, meta = load_detector(ckpt, device)
    df = select_split(read_manifest(manifest_path), split, manifest_path)
    root = manifest_path if manifest_path.is_dir() else manifest_path.parent
    mismatch = contract_mismatch(model.cfg, manifest_path)
    if mismatch:
        _logger.warning("the model's crop contract differs from the manifest's crops: %s", mismatch)
    probs = predict_scores(model, df, root, batch_size=batch_size, device=device)
    if threshold is None:
        chosen = meta.get("threshold")
        thr, source = (float(chosen), "validation") if chosen is not None else (0.5, "default (no threshold stored)")
    else:
        thr, source = float(threshold), "given"
    scores = evaluate_scores(df, probs, thr, aggregation)
    videos = scores.pop("_videos")
    from fakescope import __version__

    report: dict[str, Any] = {
        "checkpoint": str(ckpt),
        "model": meta.get("detector") or meta.get("model") or meta.get("kind", "?"),
        "manifest": str(manifest_path),
        "split": split or "all",
        "threshold": thr,
        "threshold_source": source,
        "aggregation": aggregation,
        "contract_mismatch": mismatch,
        **scores,
        "fakescope_version": __version__,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if out_dir is not None:
        report["files"] = write_report(report, df, probs, videos, out_dir)
    return report


def json_safe(obj: Any) -> Any:
    """``obj`` made strict-JSON serialisable: NumPy scalars become Python ones, NaN/inf ``None``, paths strings.

    Dicts (keys turned into strings), lists and tuples are converted recursively; other values pass unchanged.
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The lines of a Markdown table: ``header``, the ``|---|`` rule, then one line per row (cells via ``str``)."""

    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(str(c) for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def report_markdown(report: dict[str, Any]) -> str:
    """The Markdown version of an evaluation report."""
    lines = [
        f"# Evaluation: {report['model']} on {report['split']}",
        "",
        f"- checkpoint: `{report['checkpoint']}`",
        f"- manifest: `{report['manifest']}` (split `{report['split']}`)",
        f"- {report['n_frames']} frames (crops), {report['n_videos']} videos; video aggregation "
        f"`{report['aggregation']}` per track, then max over tracks",
        f"- threshold {report['threshold']:.4f} ({report['threshold_source']}) and 0.5",
        "",
    ]
    for w in report["warnings"]:
        lines += [f"> **WARNING: {w}**", ""]
    keys = [("auc", "AUC"), ("ap", "AP"), ("eer", "EER"), ("log_loss", "log-loss"), ("accuracy", "accuracy")]
    keys += [("balanced_accuracy", "balanced accuracy")]
    metric_rows = []
    for level in ("frame", "video"):
        for which in ("at_threshold", "at_0.5"):
            m = report[level][which]
            cells = [_fmt(m[k]) for k, _ in keys] + [_fmt(m["recall"]["real"]), _fmt(m["recall"]["fake"])]
            metric_rows.append([level, f"{m['threshold']:.4f}", *cells])
    header = ["level", "threshold", *(k[1] for k in keys), "recall real", "recall fake"]
    lines += markdown_table(header, metric_rows)
    lines += ["", "Confusion matrices at the validation threshold (rows: true real/fake; columns: predicted):", ""]
    for level in ("frame", "video"):
        (tn, fp), (fn, tp) = report[level]["at_threshold"]["confusion"]
        table = markdown_table(["", "predicted real", "predicted fake"], [["real", tn, fp], ["fake", fn, tp]])
        lines += [f"**{level}**", "", *table, ""]
    class_rows = []
    for level in ("frame", "video"):
        m = report[level]["at_threshold"]
        for cls in ("real", "fake"):
            class_rows.append(
                [level, cls, *(_fmt(m[k][cls]) for k in ("precision", "recall", "f1")), m["support"][cls]]
            )
    lines += markdown_table(["level", "class", "precision", "recall", "F1", "support"], class_rows)
    if report.get("files"):
        lines += ["", "![ROC](roc.png) ![PR](pr.png)"]
    return "\n".join(lines) + "\n"


def plot_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, kind: str) -> Path:
    """Plot ROC (``kind="roc"``) or precision-recall (``kind="pr"``) curves, one per label, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    for label, (x, y) in curves.items():
        ax.plot(x, y, label=label, drawstyle="steps-post" if kind == "pr" else "default")
    if kind == "roc":
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set_xlabel("false-positive rate (reals called fake)")
        ax.set_ylabel("true-positive rate (fakes caught)")
    else:
        ax.set_xlabel("recall (fake)")
        ax.set_ylabel("precision (fake)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=8)
    path = save_png(fig, path)
    plt.close(fig)
    return path


def write_report(
    report: dict[str, Any], rows: pd.DataFrame, probs: np.ndarray, videos: pd.DataFrame, out_dir: str | Path
) -> dict[str, str]:
    """Write scores, curves and the JSON/Markdown report into ``out_dir``; return the file names."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = rows[["video_id", "track_id", "frame_index", "label", "crop_path"]].copy()
    frame["fake_prob"] = probs
    files = {
        "frame_scores": "frame_scores.csv",
        "video_scores": "video_scores.csv",
        "roc": "roc.png",
        "pr": "pr.png",
        "json": REPORT_JSON,
        "markdown": REPORT_MD,
    }
    atomic_write_text(out / files["frame_scores"], frame.to_csv(index=False))
    atomic_write_text(out / files["video_scores"], videos.to_csv(index=False))
    y = rows["label"].to_numpy()
    both = {0, 1} <= set(y.tolist())
    roc, pr = {}, {}
    if both:
        for level, (lab, sc) in {
            "frame": (y, probs),
            "video": (videos["label"].to_numpy(), videos["fake_prob"].to_numpy()),
        }.items():
            auc = report[level]["at_threshold"]["auc"]
            ap = report[level]["at_threshold"]["ap"]
            roc[f"{level} (AUC {auc:.3f})"] = roc_points(lab, sc)
            pr[f"{level} (AP {ap:.3f})"] = pr_points(lab, sc)
    plot_curves(roc, out / files["roc"], "roc")
    plot_curves(pr, out / files["pr"], "pr")
    report = {**report, "files": files}
    atomic_write_text(out / files["json"], json.dumps(json_safe(report), indent=2))
    atomic_write_text(out / files["markdown"], report_markdown(report))
    return files


def read_report(path: str | Path) -> dict[str, Any]:
    """Read a ``report.json`` (or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_JSON
    return json.loads(path.read_text(encoding="utf-8"))
