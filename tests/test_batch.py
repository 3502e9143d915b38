"""predict on many files: worker processes with a thread budget, results in input order, crashes contained."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fakescope import DEFAULT_DETECTOR
from fakescope.batch import ModelLoadError, analyze_files, threads_per_worker


class CrashOnRed:
    """A face detector that finds nothing, and kills its process on a mostly red picture (a native crash)."""

    name = "crash-on-red"

    def detect(self, image: np.ndarray) -> list:
        if image[..., 0].mean() > 200 and image[..., 1].mean() < 50:
            os._exit(3)
        return []

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def files(tmp_path_factory, astronaut: np.ndarray) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("batch")
    out = {}
    for name, img in (
        ("astronaut.png", astronaut),
        ("grey.png", np.full((64, 64, 3), 128, np.uint8)),
        ("red.png", np.tile(np.array([255, 0, 0], np.uint8), (64, 64, 1))),
        ("noise.png", np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)),
    ):
        out[name] = root / name
        Image.fromarray(img).save(out[name])
    out["bad.png"] = root / "bad.png"
    out["bad.png"].write_bytes(b"not an image")
    return out


def _kwargs(detector: object = "haar") -> dict:
    return {"model": DEFAULT_DETECTOR, "runtime": "onnx", "detector": detector}


def test_results_in_input_order_and_equal_to_one_worker(files: dict[str, Path]) -> None:
    names = ["noise.png", "bad.png", "astronaut.png", "grey.png", "missing.png"]
    inputs = [
        (files.get(n, files["grey.png"].parent / n), "file not found" if n == "missing.png" else None) for n in names
    ]
    many = list(analyze_files(inputs, _kwargs(), workers=2))
    one = list(analyze_files(inputs, _kwargs(), workers=1))
    assert [Path(r.path).name for r in many] == names
    assert [r.verdict for r in many] == [r.verdict for r in one]
    assert [r.fake_prob for r in many] == pytest.approx([r.fake_prob for r in one], abs=1e-6)
    assert many[1].verdict == "error" and "not an image" in many[1].error
    assert many[4].verdict == "error" and many[4].error == "file not found"
    assert many[2].verdict in ("fake", "real")


def test_a_crashing_file_does_not_stop_the_rest(files: dict[str, Path]) -> None:
    names = ["grey.png", "red.png", "noise.png", "grey.png", "noise.png"]
    inputs = [(files[n], None) for n in names]
    results = list(analyze_files(inputs, _kwargs(CrashOnRed()), workers=2))
    assert [Path(r.path).name for r in results] == names
    assert [r.verdict for r in results] == ["no-face", "error", "no-face", "no-face", "no-face"]
    assert "crashed" in results[1].error


@pytest.mark.parametrize("workers", [1, 2])
def test_model_that_cannot_load_is_one_error(files: dict[str, Path], workers: int) -> None:
    inputs = [(files["grey.png"], None), (files["noise.png"], None)]
    with pytest.raises(ModelLoadError, match="unknown detector"):
        list(analyze_files(inputs, {"model": "no_such.model", "detector": "haar"}, workers=workers))


def test_thread_budget_is_a_share_of_the_cores() -> None:
    cores = len(os.sched_getaffinity(0))
    assert threads_per_worker(1) is None
    assert threads_per_worker(2) == max(1, cores // 2)
    with pytest.raises(ValueError, match="workers"):
        list(analyze_files([], _kwargs(), workers=0))


def test_cli_workers_keep_input_order(files: dict[str, Path]) -> None:
    from fakescope.cli.main import app

    paths = [str(files[n]) for n in ("noise.png", "bad.png", "astronaut.png")]
    res = CliRunner().invoke(app, ["predict", *paths, "--workers", "2", "--detector", "haar", "--json"])
    assert res.exit_code == 1, res.output  # one error row
    rows = json.loads(res.stdout[res.stdout.index("[") :])
    assert [r["path"] for r in rows] == paths
    assert [r["verdict"] == "error" for r in rows] == [False, True, False]


def test_service_runs_one_worker_per_core_with_the_same_budget(tmp_path: Path) -> None:
    from fakescope.serve.service import Service
    from fakescope.serve.settings import Settings

    cores = len(os.sched_getaffinity(0))
    made: list[dict] = []

    def factory(settings: Settings) -> object:
        made.append({"threads": settings.resolved_threads})
        return object()

    service = Service(Settings(data_dir=tmp_path, worker_enabled=False, explain=False), predictor_factory=factory)
    service.start()
    try:
        assert len(service.pool.predictors) == cores
        assert made == [{"threads": threads_per_worker(cores)}] * cores
    finally:
        service.stop()
    pinned = Settings(data_dir=tmp_path, workers=1, threads=1)
    assert (pinned.resolved_workers, pinned.resolved_threads) == (1, 1)
