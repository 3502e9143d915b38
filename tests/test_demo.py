"""``fakescope demo``: every stage runs and the outputs exist (quick mode in the default run, full mode slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fakescope.cli.main import app


def _check_outputs(out: Path, output: str) -> None:
    table = pd.read_csv(out / "comparison.csv")
    assert list(table["run"]) == ["meso4", "cnn"]
    assert table["parameters"].gt(0).all() and table["GFLOPs"].gt(0).all()
    assert table["metrics from"].str.startswith("test").all()
    for name in ("comparison.md", "comparison.html", "attack_summary.md", "feature_squeezing.json", "demo.json"):
        assert (out / name).is_file(), name
    for model in ("meso4", "cnn"):
        run = out / "runs" / model
        assert (run / "best.safetensors").is_file() and (run / "eval-test" / "report.json").is_file()
        assert (run / "eval-test" / "roc.png").is_file()
    attack = pd.read_csv(out / "attack_summary.csv")
    assert attack["eps"].tolist() == ["0", "4/255", "8/255"]
    assert "Detector comparison" in output and "meso4" in output and "cnn" in output
    assert "feature squeezing" in output
    assert json.loads((out / "demo.json").read_text())["seconds"]


def test_demo_quick_runs_every_stage(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    _check_outputs(out, result.output)


@pytest.mark.slow
def test_demo_full_learns(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    _check_outputs(out, result.output)
    table = pd.read_csv(out / "comparison.csv").set_index("run")
    assert table.loc["meso4", "frame AUC"] >= 0.85  # the demo model learned the self-blending traces
    attack = pd.read_csv(out / "attack_summary.csv").set_index("eps")
    assert attack.loc["8/255", "fake recall under attack"] < 0.2  # ...and PGD 8/255 fools it
