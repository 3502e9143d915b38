"""CLI commands for data: ``prepare``, ``split`` and ``manifest show|validate``.

Exit codes: 0 = success; 1 = ``prepare`` finished but some inputs failed (listed in failures.csv), or
``manifest validate`` found problems; 2 = a usage or input error (printed without a traceback).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from fakescope.data.options import PrepareOptions, RunOptions

console = Console()

manifest_app = typer.Typer(help="Inspect and check a manifest.", no_args_is_help=True)

_CROPS, _RUN = PrepareOptions(), RunOptions()  # the defaults, declared once in fakescope.data.options
_RATIOS = ",".join(map(str, _RUN.split_ratios))
_CSV_COLUMNS = ("path_col", "label_col", "group_col", "identity_col", "source_col")
# options that prepare and split share, declared once
SplitSeed = Annotated[int, typer.Option(help="Split seed.")]
SplitRatios = Annotated[str, typer.Option(help="Train,val,test fractions of videos.")]
_KINDS_HELP = "Dataset layout: celebdf, dfdc, dfdc-faces, deepfake-faces, ffpp, folder, csv (see docs/data.md)."


def _parse_ratios(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected three numbers like 0.7,0.15,0.15, got {text!r}") from None
    if len(parts) != 3:
        raise typer.BadParameter(f"expected three numbers like 0.7,0.15,0.15, got {text!r}")
    return parts  # type: ignore[return-value]


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar for prepare; yields the ``progress(done, total)`` callback that drives it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]prepare[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"))
    with Progress(*columns, TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False) as bar:
        task = bar.add_task("prepare", total=None, rate="")

        def on_progress(done: int, total: int) -> None:
            t = bar.tasks[task]
            speed = f"{done / t.elapsed:.2f} videos/s" if t.elapsed and done else ""
            bar.update(task, completed=done, total=total, rate=speed)

        yield on_progress


def prepare(
    ctx: typer.Context,
    kind: str = typer.Argument(..., help=_KINDS_HELP),
    root: Path = typer.Argument(..., help="Dataset folder (for csv: the CSV file or its folder)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (crops, manifest.parquet, failures.csv)."),
    size: int = typer.Option(_CROPS.size, help="Side of the square face crops in pixels."),
    num_frames: int = typer.Option(_CROPS.num_frames, "--frames", help="Evenly spaced frames per video."),
    every: int | None = typer.Option(None, help="Sample every k-th frame instead of --frames."),
    per_second: float | None = typer.Option(None, "--per-second", help="Sample k frames per second instead."),
    detector: str = typer.Option(_CROPS.detector, help="Face detector backend (blazeface, haar)."),
    margin: float = typer.Option(_CROPS.margin, help="Grow each face box by this fraction before cropping."),
    max_faces: int | None = typer.Option(None, "--max-faces", help="Keep at most this many faces per frame."),
    workers: int = typer.Option(_RUN.workers, help="Parallel workers (processes, or Ray actors with --executor ray)."),
    executor: str = typer.Option(_RUN.executor, help="process (local pool) or ray."),
    address: str | None = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray)."),
    threads_per_worker: int | None = typer.Option(
        None,
        "--threads-per-worker",
        help="Decoding/OpenCV threads per worker (default: all cores for 1 worker, an even share for several).",
    ),
    align: bool = typer.Option(
        _CROPS.align, "--align/--no-align", help="Level the eyes of each face before cropping (BlazeFace keypoints)."
    ),
    pictures: str = typer.Option(
        _CROPS.pictures,
        "--pictures",
        help="Face-crop pictures become crops 'whole' (resized) or 'cut' (face cut with margin).",
    ),
    cropped: bool | None = typer.Option(
        None, "--cropped/--no-cropped", help="Inputs are face crops / always detect (default: decide per image)."
    ),
    seed: SplitSeed = _RUN.seed,
    ratios: SplitRatios = _RATIOS,
    path_col: str | None = typer.Option(None, "--path-col", help="csv: column with the media path (default path)."),
    label_col: str | None = typer.Option(None, "--label-col", help="csv: column with the label (default label)."),
    group_col: str | None = typer.Option(None, "--group-col", help="csv: column whose rows must share a split."),
    identity_col: str | None = typer.Option(None, "--identity-col", help="csv: column with the person id."),
    source_col: str | None = typer.Option(None, "--source-col", help="csv: column with the source (original) id."),
    weights_dir: Path | None = typer.Option(
        None,
        "--from",
        help="Folder with the face detector's model file (offline; else $FAKESCOPE_FACE_WEIGHTS_DIR, "
        "$FAKESCOPE_WEIGHTS_DIR or the cache).",
    ),
) -> None:
    """Turn a dataset into face crops and a leak-free manifest (resumable: re-run to continue).

    Exit code 0 when every input gave crops, 1 when some inputs failed (see failures.csv) but others finished.
    """
    from fakescope.data.prepare import prepare_dataset

    adapter_options = _adapter_options(kind, ctx.params)
    crops = _crop_options(ctx.params)
    try:
        run = RunOptions(workers, executor, address, threads_per_worker, seed, _parse_ratios(ratios))
        with _progress_bar() as on_progress:
            result = prepare_dataset(
                kind, root, out, crops, run=run, adapter_options=adapter_options, progress=on_progress
            )
    except ValueError as exc:  # unknown kind/executor, bad sizes: a usage error, not a crash
        raise typer.BadParameter(str(exc)) from None
    _print_prepared(result)
    if result.n_failed:
        raise typer.Exit(1)


def _adapter_options(kind: str, params: dict[str, Any]) -> dict[str, str]:
    """The csv column options that were given (``--path-col``...).

    Raises:
        typer.BadParameter: one was given for another kind than csv.
    """
    given = {k: params[k] for k in _CSV_COLUMNS if params[k] is not None}
    if given and kind != "csv":
        raise typer.BadParameter(f"{', '.join('--' + k.replace('_', '-') for k in given)} only apply to csv")
    return given


def _crop_options(params: dict[str, Any]) -> PrepareOptions:
    """The command's options named after :class:`PrepareOptions` fields, as one.

    The face detector's folder is ``--from``, else the same settings as predict and serve: the face detector's
    own folder (``$FAKESCOPE_FACE_WEIGHTS_DIR``), else the shared weights folder (``$FAKESCOPE_WEIGHTS_DIR``).
    """
    values = {f.name: params[f.name] for f in fields(PrepareOptions)}
    for var in ("FAKESCOPE_FACE_WEIGHTS_DIR", "FAKESCOPE_WEIGHTS_DIR"):
        if values["weights_dir"] is None and os.environ.get(var):
            values["weights_dir"] = Path(os.environ[var])
    values["weights_dir"] = str(values["weights_dir"]) if values["weights_dir"] else None
    return PrepareOptions(**values)


def _print_prepared(result: Any) -> None:
    """One line of counts and rate, and where the failures are listed when some inputs failed."""
    rate = result.n_processed / result.elapsed_s * 60 if result.elapsed_s > 0 else 0.0
    console.print(
        f"[green]{result.n_media - result.n_failed}[/] of {result.n_media} inputs done "
        f"({result.n_resumed} from an earlier run, {result.n_processed} now at {rate:.1f}/min); "
        f"{result.n_rows} crops -> [bold]{result.manifest_path}[/]"
    )
    if result.n_failed:
        console.print(f"[yellow]{result.n_failed} inputs skipped[/], reasons in {result.failures_path}")


def split(
    manifest: Path = typer.Argument(..., help="Manifest (.parquet, or its folder)."),
    seed: SplitSeed = _RUN.seed,
    ratios: SplitRatios = _RATIOS,
    out: Path | None = typer.Option(None, "--out", "-o", help="Write here instead of overwriting MANIFEST."),
) -> None:
    """Re-split a manifest: linked videos stay together, official test lists are kept, deterministic per seed."""
    from fakescope.data.manifest import MANIFEST_NAME, find_leaks, read_manifest, write_manifest
    from fakescope.data.splits import assign_splits

    df = read_manifest(manifest)
    try:
        df = assign_splits(df, seed=seed, ratios=_parse_ratios(ratios))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    leaks = find_leaks(df)
    target = out or (manifest / MANIFEST_NAME if manifest.is_dir() else manifest)
    if out is not None and manifest.is_file() and Path(out).resolve().parent != manifest.resolve().parent:
        console.print("[yellow]note:[/] crop paths are relative to the manifest's folder; keep it beside crops/")
    path = write_manifest(df, target)
    _print_counts(df, ["split", "label"])
    if leaks:  # pragma: no cover - assign_splits only leaks when official lists disagree within a group
        console.print("[red]groups cross splits (official lists disagree):[/]\n" + "\n".join(leaks))
    console.print(f"written {path}")


def _print_counts(df, by: list[str]) -> None:
    from rich.table import Table

    g = df.groupby(by, observed=True, dropna=False)
    counts = g.agg(videos=("video_id", "nunique"), crops=("video_id", "size")).reset_index()
    table = Table(*by, "videos", "crops", title="by " + " / ".join(by))
    for row in counts.itertuples(index=False):
        table.add_row(*[str(v) if str(v) != "" else "-" for v in row])
    console.print(table)


@manifest_app.command("show")
def manifest_show(manifest: Path = typer.Argument(..., help="Manifest (.parquet, or its folder).")) -> None:
    """Counts of videos and crops per split, label, dataset and manipulation."""
    from fakescope.data.manifest import read_manifest

    df = read_manifest(manifest)
    console.print(f"{manifest}: {len(df)} crops from {df['video_id'].nunique()} videos")
    for by in (["split", "label"], ["dataset"], ["manipulation", "label"]):
        _print_counts(df, by)


@manifest_app.command("validate")
def manifest_validate(
    manifest: Path = typer.Argument(..., help="Manifest (.parquet, or its folder)."),
    check_files: bool = typer.Option(False, "--check-files", help="Also check that every crop file exists."),
) -> None:
    """Check schema, split names and leakage (a group crossing splits); exit 1 listing the problems."""
    from fakescope.data.manifest import read_manifest, validate_manifest

    df = read_manifest(manifest)
    problems = validate_manifest(df, root=manifest, check_files=check_files)
    if problems:
        console.print(f"[red]{len(problems)} problem(s)[/] in {manifest}:")
        for p in problems:
            console.print(f"  - {p}", highlight=False)
        raise typer.Exit(1)
    console.print(f"[green]ok[/]: {len(df)} rows, no group crosses splits")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("prepare")(prepare)
    app.command("split")(split)
    app.add_typer(manifest_app, name="manifest")
