"""CLI: ``fakescope predict`` (score images and videos) and ``fakescope export`` (ONNX with a parity check).

Exit codes of ``predict``: 0 = every file was analysed (verdict fake, real or no-face); 1 = at least one file
became an error row (the others still finished); 2 = usage error, the model or face detector could not be
loaded, or no input file was found.
Exit codes of ``export``: 0 = written and parity within tolerance; 1 = written but parity failed; 2 = the model
could not be loaded or exported.
"""

from __future__ import annotations

import json
import sys
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from fakescope import DEFAULT_DETECTOR

if TYPE_CHECKING:
    from fakescope.predict import FileResult

EXIT_OK = 0
EXIT_FILE_ERRORS = 1
EXIT_USAGE = 2

_CSV_COLUMNS = (
    "path",
    "kind",
    "verdict",
    "fake_prob",
    "threshold",
    "aggregation",
    "model",
    "runtime",
    "n_frames",
    "n_faces",
    "n_tracks",
    "adv_suspicion",
    "error",
)


# the choices of predict's and export's options (StrEnum's functional form: each value is the member's name)
Runtime = StrEnum("Runtime", ["auto", "torch", "onnx"])
Sampling = StrEnum("Sampling", ["even", "keyframes"])
Aggregation = StrEnum("Aggregation", ["mean", "max", "confident_mean"])
ExportFormat = StrEnum("ExportFormat", ["onnx"])

# the options that predict passes to the Predictor by name; the others shape the run and its output
_PREDICTOR_OPTIONS = (
    "model",
    "runtime",
    "detector",
    "num_frames",
    "sampling",
    "aggregation",
    "threshold",
    "batch_size",
    "weights_dir",
    "cache_dir",
    "detector_weights_dir",
    "adv_detector",
)
CacheDir = Annotated[
    Path | None,
    typer.Option("--cache-dir", envvar="FAKESCOPE_HOME", help="Download cache (default ~/.cache/fakescope)."),
]


def expand_inputs(items: list[str]) -> list[tuple[Path, str | None]]:
    """Expand files, folders and globs into ``(path, error)`` pairs: one per input named or found.

    Missing paths, broken links and symlink loops, folders named like media files (``clip.mp4/``) and unreadable
    folders come back with their reason, so each becomes an error row instead of vanishing.
    """
    from fakescope.data.media import scan_media

    return scan_media(items)


def display_path(path: str | Path) -> str:
    """A file name that can always be printed and written as UTF-8 (undecodable bytes shown as ``\\xNN``)."""
    import os

    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def _csv_row(r: FileResult) -> dict[str, Any]:
    d = r.to_dict()
    d["n_tracks"] = len(r.tracks)
    d["path"] = display_path(r.path)
    return {k: ("" if d.get(k) is None else d.get(k)) for k in _CSV_COLUMNS}


def write_csv(results: list[FileResult], path: Path) -> None:
    """One row per file (atomically)."""
    import csv
    import io

    from fakescope.utils.io import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(_CSV_COLUMNS))
    writer.writeheader()
    for r in results:
        writer.writerow(_csv_row(r))
    atomic_write_text(path, buf.getvalue())


def _table(results: list[FileResult]) -> Any:
    from rich.table import Table

    colour = {"fake": "bold red", "real": "green", "no-face": "yellow", "error": "magenta"}
    table = Table(title="fakescope predict", show_lines=False)
    for col, kw in (
        ("file", {"overflow": "fold"}),
        ("kind", {}),
        ("verdict", {}),
        ("P(fake)", {"justify": "right"}),
        ("thr", {"justify": "right"}),
        ("frames", {"justify": "right"}),
        ("faces", {"justify": "right"}),
        ("tracks", {}),
        ("note", {"overflow": "fold"}),
    ):
        table.add_column(col, **kw)
    for r in results:
        tracks = " ".join(f"{t.track_id}:{t.fake_prob:.2f}{'' if t.used else '*'}" for t in r.tracks)
        note = r.error or ""
        if r.adv_suspicion is not None:
            note = f"adv {r.adv_suspicion:.3g}{' FLAGGED' if r.adv_flag else ''}"
        table.add_row(
            display_path(r.path),
            r.kind or "-",
            f"[{colour[r.verdict]}]{r.verdict}[/]",
            "-" if r.fake_prob is None else f"{r.fake_prob:.3f}",
            f"{r.threshold:.2f}",
            str(r.n_frames),
            str(r.n_faces),
            tracks or "-",
            note,
        )
    return table


def register(app: typer.Typer) -> None:
    """Add ``predict`` and ``export`` to ``app``."""
    app.command("predict")(predict)
    app.command("export")(export)


def predict(
    ctx: typer.Context,
    paths: list[str] = typer.Argument(..., help="Images, videos, folders (recursive) or glob patterns."),
    model: str = typer.Option(
        DEFAULT_DETECTOR,
        "--model",
        "-m",
        help="Pretrained detector name (fakescope models list), a .safetensors checkpoint or an .onnx file.",
    ),
    runtime: Runtime = typer.Option(
        Runtime.auto,
        "--runtime",
        help="auto: ONNX Runtime when the model's export can be cached (bundled detector, .safetensors, .onnx), "
        "else eager PyTorch.",
    ),
    num_frames: int = typer.Option(32, "--frames", min=1, help="Frames sampled from each video."),
    sampling: Sampling = typer.Option(
        Sampling.even,
        "--sampling",
        help="even: frames evenly spaced; keyframes: only keyframes (far less decoding, other frames: opt-in).",
    ),
    workers: int | None = typer.Option(
        None, "--workers", "-j", min=1, help="Worker processes, each with its own model (default: all cores)."
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="CPU threads per worker (default: an even share of the cores)."
    ),
    aggregation: Aggregation = typer.Option(
        Aggregation.mean, "--aggregation", help="Frames -> person track (the file takes the highest track)."
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", min=0.0, max=1.0, help="Decision threshold (default: stored with the model, or 0.5)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the full results as JSON on stdout."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Also write one row per file to this CSV."),
    explain: Path | None = typer.Option(
        None, "--explain", help="Write Grad-CAM overlays per face and a P(fake) timeline per video here."
    ),
    detector: str = typer.Option("blazeface", "--detector", help="Face detector: blazeface or haar."),
    weights_dir: Path | None = typer.Option(
        None, "--from", envvar="FAKESCOPE_WEIGHTS_DIR", help="Offline folder holding the detector weight files."
    ),
    detector_weights_dir: Path | None = typer.Option(
        None,
        "--detector-from",
        envvar="FAKESCOPE_FACE_WEIGHTS_DIR",
        help="Offline folder holding the face detector model file.",
    ),
    cache_dir: CacheDir = None,
    adv_detector: Path | None = typer.Option(
        None, "--adv-detector", help="Fitted feature-squeezing detector JSON: adds an adversarial-suspicion score."
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Face crops per inference batch."),
) -> None:
    """Score images and videos: verdict fake / real / no-face / error per file.

    Exit codes: 0 all files analysed, 1 at least one error row, 2 usage or model error.
    """
    err = Console(stderr=True)
    inputs = expand_inputs(paths)
    if not inputs:
        err.print("[bold red]error:[/] no image or video files found in the given paths")
        raise typer.Exit(EXIT_USAGE)
    kwargs = {k: ctx.params[k].value if isinstance(ctx.params[k], Enum) else ctx.params[k] for k in _PREDICTOR_OPTIONS}
    results = _analyze_with_progress(inputs, kwargs, workers, threads, explain, err)
    _show(results, csv_path, as_json, explain)
    n_err = sum(r.verdict == "error" for r in results)
    if n_err:
        err.print(f"{n_err} of {len(results)} file(s) could not be analysed", highlight=False)
        raise typer.Exit(EXIT_FILE_ERRORS)


def _analyze_with_progress(
    inputs: list, kwargs: dict[str, Any], workers: int | None, threads: int | None, explain: Path | None, err: Console
) -> list[FileResult]:
    """Every input's result, in input order, with a progress bar on stderr for two or more inputs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fakescope.batch import ModelLoadError, analyze_files

    results: list[FileResult] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=len(inputs) < 2) as progress:
        task = progress.add_task("analysing", total=len(inputs))
        try:
            for res in analyze_files(inputs, kwargs, workers=workers, threads=threads, explain_dir=explain):
                results.append(res)
                progress.update(task, advance=1, description=f"analysed {display_path(Path(res.path).name)}")
        except ModelLoadError as exc:
            err.print(f"[bold red]error:[/] cannot load the model: {exc}", highlight=False)
            raise typer.Exit(EXIT_USAGE) from None
    return results


def _show(results: list[FileResult], csv_path: Path | None, as_json: bool, explain: Path | None) -> None:
    """The CSV file, then JSON on stdout or the table."""
    if csv_path is not None:
        write_csv(results, csv_path)
    if as_json:
        sys.stdout.write(json.dumps([r.to_dict() for r in results], indent=2) + "\n")
    else:
        Console().print(_table(results))
        if explain is not None:
            Console().print(f"evidence written under {explain}")


def export(
    model: str = typer.Argument(..., help="A .safetensors checkpoint or a pretrained detector name."),
    fmt: ExportFormat = typer.Option(ExportFormat.onnx, "--format", help="Export format."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file (model.onnx)."),
    opset: int = typer.Option(17, "--opset", min=11, help="ONNX opset version."),
    tol: float = typer.Option(1e-4, "--tol", help="Parity tolerance: max |ONNX Runtime - PyTorch| of logits."),
    weights_from: Path | None = typer.Option(
        None, "--from", envvar="FAKESCOPE_WEIGHTS_DIR", help="Offline folder holding pretrained weight files."
    ),
    cache_dir: CacheDir = None,
) -> None:
    """Export a detector to ONNX (dynamic batch) and check it against PyTorch.

    Exit codes: 0 written and within tolerance, 1 parity failed, 2 model could not be loaded.
    """
    from fakescope.errors import FakescopeError
    from fakescope.export import export_onnx
    from fakescope.predict import load_model

    console = Console()
    try:
        loaded = load_model(model, "torch", weights_dir=weights_from, cache_dir=cache_dir)
        report = export_onnx(
            loaded.torch_model,
            out,
            opset=opset,
            metadata={"model": loaded.name, "threshold": loaded.threshold},
            tol=tol,
        )
    except (FakescopeError, ValueError, KeyError) as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    assert report is not None
    status = "[green]OK[/]" if report.ok else "[bold red]FAILED[/]"
    console.print(
        f"exported {loaded.name} ({fmt.value}, opset {opset}, dynamic batch) -> {out}\n"
        f"parity on {report.n_inputs} images: max |logit diff| = {report.max_abs_diff_logit:.2e}, "
        f"max |P(fake) diff| = {report.max_abs_diff_prob:.2e} (tolerance {report.tol:g}) {status}",
        highlight=False,
    )
    if not report.ok:
        raise typer.Exit(EXIT_FILE_ERRORS)
