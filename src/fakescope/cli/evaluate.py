"""``fakescope evaluate`` and ``fakescope compare``: parse options, call :mod:`fakescope.eval`, print with rich."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("evaluate")(evaluate)
    app.command("compare")(compare)


def make_console() -> Any:
    """A rich console; wide when the output is not a terminal (logs, CI) so tables are not truncated."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


def _f(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.4f}"


def print_eval_report(report: dict[str, Any], console: Any) -> None:
    """Print an evaluation report as a rich table, with one-class warnings in red."""
    from rich.table import Table

    table = Table(
        title=f"{report['model']} on {report['split']} ({report['n_frames']} crops, {report['n_videos']} videos)"
    )
    for col in ("level", "threshold", "AUC", "AP", "EER", "log-loss", "acc", "bal. acc", "recall real", "recall fake"):
        table.add_column(col, justify="left" if col == "level" else "right")
    for level in ("frame", "video"):
        for which in ("at_threshold", "at_0.5"):
            m = report[level][which]
            table.add_row(
                level,
                f"{m['threshold']:.3f}",
                _f(m["auc"]),
                _f(m["ap"]),
                _f(m["eer"]),
                _f(m["log_loss"]),
                _f(m["accuracy"]),
                _f(m["balanced_accuracy"]),
                _f(m["recall"]["real"]),
                _f(m["recall"]["fake"]),
            )
    console.print(table)
    console.print(
        f"threshold {report['threshold']:.4f} ({report['threshold_source']}); aggregation {report['aggregation']}"
    )
    for w in report["warnings"]:
        console.print(f"[bold red]WARNING: {w}[/]", highlight=False)


def evaluate(
    ctx: typer.Context,
    ckpt: Path = typer.Argument(..., help="Checkpoint (.safetensors) or ensemble descriptor (ensemble.json)."),
    manifest: Path = typer.Argument(..., help="Manifest (.parquet or its folder)."),
    split: str = typer.Option("test", "--split", help="train | val | test | all."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Report folder (default: eval-<split> beside the checkpoint)."
    ),
    aggregation: str = typer.Option("mean", "--aggregation", help="Video aggregation: mean | max | confident_mean."),
    batch_size: int = typer.Option(64, "--batch-size", help="Inference batch size."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N."),
    threshold: float | None = typer.Option(None, "--threshold", help="Override the validation threshold."),
) -> None:
    """Frame- and video-level metrics of a checkpoint on a manifest split, with ROC/PR curves and reports."""
    from fakescope.eval import evaluate_checkpoint

    out_dir = out if out is not None else ckpt.parent / f"eval-{split}"
    # the other options are named after evaluate_checkpoint's arguments and passed on by name
    options = {k: v for k, v in ctx.params.items() if k not in ("ckpt", "manifest", "out")}
    report = evaluate_checkpoint(ckpt, manifest, out_dir=out_dir, **options)
    console = make_console()
    print_eval_report(report, console)
    console.print(f"report: {out_dir / 'report.md'} (JSON, ROC/PR curves and scores beside it)")


def compare(
    runs: list[Path] = typer.Argument(..., help="Run directories written by `fakescope train`."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder for the Markdown, CSV and HTML tables."),
    cross: bool = typer.Option(False, "--cross", help="Cross-dataset AUC matrix over --manifests instead."),
    manifests: list[Path] = typer.Option([], "--manifests", "-m", help="Manifests to test on (with --cross)."),
    split: str = typer.Option("test", "--split", help="Split scored for the cross-dataset matrix."),
) -> None:
    """The comparison table of training runs (or, with --cross, the trained-on x tested-on AUC matrix)."""
    from fakescope.eval import compare_runs, cross_dataset_matrix

    console = make_console()
    if cross:
        if not manifests:
            raise typer.BadParameter("--cross needs at least one --manifests path", param_hint="--manifests")
        df = cross_dataset_matrix(runs, manifests, out, split=split)
        print_table(df, "Cross-dataset frame AUC (rows: trained on, columns: tested on)", console)
    else:
        df = compare_runs(runs, out)
        print_table(df.drop(columns=["warnings"]), "Detector comparison", console)
        for _, row in df[df["warnings"] != ""].iterrows():
            console.print(f"[bold red]WARNING ({row['run']}): {row['warnings']}[/]", highlight=False)
    if out is not None:
        console.print(f"tables: {out}/ (.md, .csv, .html)")


def print_table(df: Any, title: str, console: Any) -> None:
    """Print a comparison DataFrame as a rich table."""
    from rich.table import Table

    from fakescope.eval.compare import format_cell

    table = Table(title=title)
    for i, col in enumerate(df.columns):
        table.add_column(str(col), justify="left" if i == 0 else "right")
    for _, r in df.iterrows():
        table.add_row(*(format_cell(r[c], str(c)) for c in df.columns))
    console.print(table)
