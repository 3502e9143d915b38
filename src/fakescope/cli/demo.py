"""``fakescope demo``: the whole pipeline on built-in data (:func:`fakescope.demo.run_demo`), printed with rich."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("demo")(demo)


def demo(
    out: Path = typer.Option(Path("fakescope-demo"), "--out", "-o", help="Demo folder (created)."),
    quick: bool = typer.Option(False, "--quick", help="Tiny data and budgets: a smoke test of every stage."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data, split, training and attacks."),
    no_attacks: bool = typer.Option(False, "--no-attacks", help="Skip the attack and feature-squeezing stages."),
) -> None:
    """Build demo data offline, prepare it, train meso4 and cnn, evaluate, compare, attack and detect attacks."""
    import time

    from fakescope.cli.evaluate import make_console, print_table
    from fakescope.demo import run_demo

    console = make_console()
    t0 = time.perf_counter()

    def on_stage(name: str, info: dict[str, Any]) -> None:
        if "seconds" in info:
            console.print(f"  [green]done[/] in {info['seconds']:.1f} s")
        else:
            console.rule(f"[bold]{name}")

    result = run_demo(out, quick=quick, seed=seed, with_attacks=not no_attacks, on_stage=on_stage)
    console.rule("[bold]results")
    print_table(result.comparison.drop(columns=["warnings"]), "Detector comparison (demo test split)", console)
    for _, row in result.comparison[result.comparison["warnings"] != ""].iterrows():
        console.print(f"[bold red]WARNING ({row['run']}): {row['warnings']}[/]", highlight=False)
    if result.attack_summary is not None:
        print_table(result.attack_summary, f"PGD L-inf on {next(iter(result.runs))}, and feature squeezing", console)
    console.print(
        f"total {time.perf_counter() - t0:.0f} s; outputs in {out}/ (comparison.md, attack_summary.md, runs/, data/)"
    )
