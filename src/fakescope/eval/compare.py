"""The study's comparison table, regenerated from run directories, and the cross-dataset AUC matrix.

A run directory is what :func:`fakescope.train.fit` writes: ``config.yaml`` (resolved config), ``run.json``
(provenance), ``metrics.csv`` (one row per epoch, with its seconds), ``best.safetensors`` + ``best.json`` (or
``ensemble.json`` with ``fold_K/`` for k-fold ensembles) and, once ``fakescope evaluate`` wrote into it, an
evaluation report (``eval*/report.json``). Test metrics come from that report; without one, the table falls
back to the validation metrics stored in the checkpoint and says so in its ``metrics from`` column.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fakescope.errors import CheckpointError, FakescopeError, ManifestError
from fakescope.utils.io import atomic_write_text

_logger = logging.getLogger(__name__)

#: Columns of the comparison table, in order (the study's, plus where the metrics come from).
COLUMNS = (
    "run",
    "architecture",
    "input",
    "optimizer",
    "loss",
    "parameters",
    "GFLOPs",
    "training time (s)",
    "frame AUC",
    "video AUC",
    "balanced accuracy",
    "log-loss",
    "metrics from",
)


def find_checkpoint(run_dir: str | Path) -> Path:
    """The run's model: ``ensemble.json`` for k-fold runs, else ``best.safetensors`` (else ``last``)."""
    run = Path(run_dir)
    for name in ("ensemble.json", "best.safetensors", "last.safetensors"):
        if (run / name).is_file():
            return run / name
    raise CheckpointError(f"{run}: no ensemble.json, best.safetensors or last.safetensors; is this a run directory?")


def find_eval_report(run_dir: str | Path) -> Path | None:
    """The evaluation report in a run directory (``eval*/report.json``, preferring a ``test`` split)."""
    run = Path(run_dir)
    reports = sorted(run.glob("eval*/report.json")) + ([run / "report.json"] if (run / "report.json").is_file() else [])
    if not reports:
        return None
    for path in reports:
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("split") == "test":
                return path
        except (OSError, ValueError):
            continue
    return reports[0]


def measure_model(model: Any, input_size: int) -> tuple[int, float]:
    """``(parameters, GFLOPs)`` of one forward pass on a ``1,3,S,S`` input (FlopCounterMode; a multiply-add
    counts as 2 FLOPs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    model.eval()
    x = torch.zeros(1, 3, input_size, input_size, device=next(model.parameters()).device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return int(params), counter.get_total_flops() / 1e9


def _training_seconds(run: Path) -> float | None:
    files = sorted(run.glob("fold_*/metrics.csv")) or ([run / "metrics.csv"] if (run / "metrics.csv").is_file() else [])
    if not files:
        return None
    total = 0.0
    for f in files:
        df = pd.read_csv(f)
        if "seconds" in df:
            total += float(df["seconds"].sum())
    return total


def _loss_name(config: dict[str, Any]) -> str:
    name = "BCE"
    balance = config.get("balance", "sampler")
    if balance == "loss":
        name += " (pos_weight)"
    elif balance == "sampler":
        name += " (balanced sampling)"
    if config.get("adv"):
        name += f" + adv {config['adv']} eps {float(config.get('adv_eps', 0)) * 255:.3g}/255"
    return name


def _nan(v: Any) -> float:
    return float("nan") if v is None else float(v)


def summarize_run(run_dir: str | Path) -> dict[str, Any]:
    """One row of the comparison table for a run directory."""
    from fakescope.eval.report import load_detector

    run = Path(run_dir)
    if not run.is_dir():
        raise FakescopeError(f"{run}: not a run directory")
    config: dict[str, Any] = {}
    if (run / "config.yaml").is_file():
        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
    ckpt = find_checkpoint(run)
    model, meta = load_detector(ckpt)
    size = int(model.cfg.input_size)
    params, gflops = measure_model(model, size)
    arch = str(config.get("model") or meta.get("model") or model.cfg.name)
    folds = int(config.get("folds", 1) or 1)
    row: dict[str, Any] = {
        "run": run.name,
        "architecture": arch + (f" x{folds} ensemble" if folds > 1 else ""),
        "input": f"{size}x{size}",
        "optimizer": f"{config.get('optimizer', '?')} lr {config.get('lr', '?')}",
        "loss": _loss_name(config),
        "parameters": params,
        "GFLOPs": gflops,
        "training time (s)": _training_seconds(run),
    }
    report_path = find_eval_report(run)
    if report_path is not None:
        rep = json.loads(report_path.read_text(encoding="utf-8"))
        frame, video = rep["frame"]["at_threshold"], rep["video"]["at_threshold"]
        row.update(
            {
                "frame AUC": _nan(frame.get("auc")),
                "video AUC": _nan(video.get("auc")),
                "balanced accuracy": _nan(frame.get("balanced_accuracy")),
                "log-loss": _nan(frame.get("log_loss")),
                "metrics from": f"{rep.get('split', '?')} ({report_path.parent.name})",
                "warnings": "; ".join(rep.get("warnings", [])),
            }
        )
    else:
        val = meta.get("val_metrics", {})
        auc = val.get("val_auc", meta.get("oof_auc"))
        row.update(
            {
                "frame AUC": _nan(auc),
                "video AUC": float("nan"),
                "balanced accuracy": _nan(val.get("val_balanced_acc_at_threshold")),
                "log-loss": _nan(val.get("val_loss")),
                "metrics from": "validation (no eval report)",
                "warnings": "",
            }
        )
    return row


def format_cell(v: Any, col: str) -> str:
    """A table cell as text: ``n/a`` for missing values, thousands separators, 4 decimals."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if col == "parameters":
        return f"{int(v):,}"
    if col == "GFLOPs":
        return f"{v:.3g}"
    if col == "training time (s)":
        return f"{v:.1f}"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def table_markdown(df: pd.DataFrame) -> str:
    """A Markdown table of ``df`` (formatted cells, ``n/a`` for missing values)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(format_cell(r[c], str(c)).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def table_html(df: pd.DataFrame, title: str) -> str:
    """A small standalone HTML page holding the table."""
    cols = list(df.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_cell(r[c], str(c)))}</td>" for c in cols) + "</tr>"
        for _, r in df.iterrows()
    )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}"
        "td:first-child,th:first-child{text-align:left}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>\n"
    )


def write_tables(df: pd.DataFrame, out_dir: str | Path, name: str, title: str) -> dict[str, Path]:
    """Write ``df`` as ``<name>.md``, ``<name>.csv`` and ``<name>.html`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / f"{name}.md", "csv": out / f"{name}.csv", "html": out / f"{name}.html"}
    atomic_write_text(paths["markdown"], f"# {title}\n\n" + table_markdown(df))
    atomic_write_text(paths["csv"], df.to_csv(index=False))
    atomic_write_text(paths["html"], table_html(df, title))
    return paths


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path | None = None) -> pd.DataFrame:
    """The comparison table of several runs (one row each, columns :data:`COLUMNS` plus ``warnings``).

    Writes ``comparison.md``, ``comparison.csv`` and ``comparison.html`` into ``out_dir`` when given.
    """
    if not run_dirs:
        raise ValueError("compare needs at least one run directory")
    df = pd.DataFrame([summarize_run(r) for r in run_dirs], columns=[*COLUMNS, "warnings"])
    if out_dir is not None:
        write_tables(df, out_dir, "comparison", "Detector comparison")
    return df


def _unique_names(paths: Sequence[Path], name_of: Any) -> list[str]:
    names = [name_of(p) for p in paths]
    return [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]


def _manifest_name(path: Path) -> str:
    if path.is_dir() or path.stem == "manifest":
        parent = path if path.is_dir() else path.parent
        return parent.parent.name if parent.name == "prepared" else parent.name
    return path.stem


def cross_dataset_matrix(
    run_dirs: Sequence[str | Path],
    manifests: Sequence[str | Path],
    out_dir: str | Path | None = None,
    *,
    split: str = "test",
    metric: str = "auc",
    batch_size: int = 64,
) -> pd.DataFrame:
    """Frame AUC of every run (rows: trained on) on every manifest (columns: tested on).

    Each manifest is scored on ``split``; a manifest without that split is scored on all its rows (a test-only
    dataset). Writes ``cross_dataset.{md,csv,html}`` into ``out_dir`` when given.

    Raises:
        ValueError: a manifest's crops were made with another crop contract (size, margin, alignment, pictures)
            than a run's model was trained on: its AUC would measure the mismatch, not the model. Prepare the
            data with the model's contract (the message gives the options).
    """
    from fakescope.data.contract import contract_mismatch
    from fakescope.data.manifest import read_manifest
    from fakescope.eval.report import evaluate_scores, load_detector, select_split
    from fakescope.eval.scoring import predict_scores

    runs = [Path(r) for r in run_dirs]
    mans = [Path(m) for m in manifests]
    if not runs or not mans:
        raise ValueError("the cross-dataset matrix needs at least one run and one manifest")
    row_names = _unique_names(runs, lambda p: p.name)
    col_names = _unique_names(mans, _manifest_name)
    data: dict[str, list[float]] = {c: [] for c in col_names}
    tables = [read_manifest(m) for m in mans]
    for run in runs:
        model, meta = load_detector(find_checkpoint(run))
        thr = float(meta.get("threshold", 0.5))
        for man in mans:
            mismatch = contract_mismatch(model.cfg, man)
            if mismatch:
                raise ValueError(f"run {run}: {mismatch}")
        for col, man, table in zip(col_names, mans, tables, strict=True):
            try:
                rows = select_split(table, split, man)
            except ManifestError:
                _logger.info("%s has no %r split; scoring all its rows", man, split)
                rows = select_split(table, None, man)
            root = man if man.is_dir() else man.parent
            probs = predict_scores(model, rows, root, batch_size=batch_size)
            scores = evaluate_scores(rows, probs, thr)
            data[col].append(float(scores["frame"]["at_threshold"][metric]))
    df = pd.DataFrame({"trained on \\ tested on": row_names, **data})
    if out_dir is not None:
        write_tables(df, out_dir, "cross_dataset", f"Cross-dataset frame {metric.upper()}")
    return df
