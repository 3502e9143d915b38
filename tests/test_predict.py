"""fakescope predict: the Predictor library and the CLI (batches with bad files, JSON/CSV, exit codes)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakescope.predict import (
    AGGREGATIONS,
    FileResult,
    FrameScore,
    Predictor,
    aggregate_probs,
    aggregate_tracks,
)

VERDICTS = {"fake", "real", "no-face", "error"}


@pytest.fixture(scope="module")
def weights(shared_data: Path) -> dict[str, Path]:
    return {
        "model": shared_data / "weights" / "mesonet",
        "faces": shared_data / "weights" / "mediapipe",
    }


@pytest.fixture(scope="module")
def predictor(weights: dict[str, Path]) -> Predictor:
    with Predictor(
        "mesoinception4.mesonet_df",
        num_frames=8,
        weights_dir=weights["model"],
        detector_weights_dir=weights["faces"],
    ) as p:
        yield p


def _check_well_formed(r: FileResult, kind: str) -> None:
    assert r.kind == kind
    assert r.verdict in VERDICTS - {"error"}, r.error
    assert r.error is None
    assert r.n_faces > 0
    assert 0.0 <= r.fake_prob <= 1.0
    assert r.verdict == ("fake" if r.fake_prob >= r.threshold else "real")
    assert len(r.frames) == r.n_faces
    assert sum(t.n_faces for t in r.tracks) == r.n_faces
    track_ids = {t.track_id for t in r.tracks}
    for fs in r.frames:
        assert fs.track_id in track_ids
        assert 0.0 <= fs.fake_prob <= 1.0
        x1, y1, x2, y2 = fs.box
        assert x2 > x1 and y2 > y1
    # per track: aggregate of its frames; per file: the highest main track
    for t in r.tracks:
        probs = [fs.fake_prob for fs in r.frames if fs.track_id == t.track_id]
        assert t.fake_prob == pytest.approx(aggregate_probs(probs, r.aggregation))
    assert r.fake_prob == pytest.approx(max(t.fake_prob for t in r.tracks if t.used))
    json.dumps(r.to_dict())  # serialisable


def test_astronaut_image(predictor: Predictor, astronaut_png: Path, astronaut: np.ndarray) -> None:
    seen: list[float] = []
    r = predictor.analyze(astronaut_png, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 3
    _check_well_formed(r, "image")
    assert r.n_frames == 1
    fs = r.frames[0]
    assert (fs.frame_index, fs.timestamp) == (0, 0.0)
    # the face is in the upper middle of the photo (rows ~20-250, columns ~130-330)
    x1, y1, x2, y2 = fs.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    assert 130 < cx < 330 and 20 < cy < 250
    assert r.model == "mesoinception4.mesonet_df" and r.runtime == "torch"


def test_default_detector_on_mesonet_samples(predictor: Predictor, shared_data: Path) -> None:
    """The default weights classify the MesoNet authors' own sample crops (face crops scored whole if needed)."""
    images = sorted((shared_data / "dev" / "images").rglob("mesonet_*.jpg"))
    assert len(images) == 4
    for path in images:
        r = predictor.analyze(path)
        _check_well_formed(r, "image")
        assert r.verdict == ("fake" if "_df" in path.name else "real"), (path.name, r.fake_prob)


def test_dev_videos(predictor: Predictor, dev_videos: list[Path]) -> None:
    assert dev_videos
    for path in dev_videos:
        r = predictor.analyze(path)
        _check_well_formed(r, "video")
        assert r.n_frames == 8
        frame_ids = sorted({fs.frame_index for fs in r.frames})
        assert len(frame_ids) <= 8
        for tid in {fs.track_id for fs in r.frames}:
            rows = [fs for fs in r.frames if fs.track_id == tid]
            assert [fs.frame_index for fs in rows] == sorted({fs.frame_index for fs in rows})  # one face per frame
            ts = [fs.timestamp for fs in rows]
            assert ts == sorted(ts)
        assert set(r.timings) >= {"decode", "detect", "infer", "total"}


def test_no_face_image(predictor: Predictor, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(path)
    r = predictor.analyze(path)
    assert r.kind == "image"
    assert r.verdict == "no-face"
    assert r.fake_prob is None and r.n_faces == 0 and r.error is None


def test_bad_files_become_error_rows(predictor: Predictor, tmp_path: Path) -> None:
    bad = _bad_files(tmp_path)
    for path, reason in bad.items():
        r = predictor.analyze(path)
        assert r.verdict == "error", path
        assert r.error and reason in r.error, (path.name, r.error)
        assert r.fake_prob is None


# ------------------------------------------------------------------------------------------------ aggregation
def test_confident_mean_follows_the_dfdc_rule() -> None:
    many_fake = np.r_[np.full(15, 0.95), np.full(10, 0.3)]
    assert aggregate_probs(many_fake, "confident_mean") == pytest.approx(0.95)
    mostly_real = np.r_[np.full(19, 0.1), [0.9]]
    assert aggregate_probs(mostly_real, "confident_mean") == pytest.approx(0.1)
    mixed = np.array([0.1, 0.5, 0.9, 0.6])
    assert aggregate_probs(mixed, "confident_mean") == pytest.approx(mixed.mean())
    assert aggregate_probs([0.2, 0.8], "max") == pytest.approx(0.8)
    assert aggregate_probs([0.2, 0.8], "mean") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="confident_mean"):
        aggregate_probs([0.5], "median")
    with pytest.raises(ValueError, match="no scores"):
        aggregate_probs([], "mean")


def test_tracks_then_file_score() -> None:
    frames = [FrameScore(i, i / 10, 0, (0, 0, 10, 10), 0.2) for i in range(10)]
    frames += [FrameScore(i, i / 10, 1, (50, 0, 60, 10), 0.9) for i in range(6)]
    frames += [FrameScore(3, 0.3, 2, (90, 90, 95, 95), 1.0)]  # one spurious detection
    tracks, p = aggregate_tracks(frames, "mean")
    assert [(t.track_id, t.n_faces, t.used) for t in tracks] == [(0, 10, True), (1, 6, True), (2, 1, False)]
    assert p == pytest.approx(0.9)  # the fake person decides; the spurious track does not


def test_predictor_rejects_bad_arguments(weights: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="aggregation"):
        Predictor("meso4.mesonet_df", aggregation="median", weights_dir=weights["model"], detector="haar")
    with pytest.raises(ValueError, match="unknown"):
        Predictor("nosuchnet.tag", weights_dir=weights["model"], detector="haar")


@pytest.mark.parametrize("method", AGGREGATIONS)
def test_aggregations_give_probabilities(method: str) -> None:
    rng = np.random.default_rng(1)
    assert 0.0 <= aggregate_probs(rng.random(40), method) <= 1.0


# ------------------------------------------------------------------------------------------------ CLI
def _bad_files(tmp_path: Path) -> dict[Path, str]:
    """Bad inputs and a word their error reason must contain."""
    import av

    tmp_path.mkdir(parents=True, exist_ok=True)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    folder = tmp_path / "x.mp4"
    folder.mkdir()
    # a real little H.264 video, cut in half (the index at the end is lost)
    full = tmp_path / "full.mp4"
    with av.open(str(full), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(20):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    return {empty: "zero bytes", text: "not", folder: "directory", truncated: "video"}


def _run_cli(args: list[str]):
    from typer.testing import CliRunner

    from fakescope.cli.main import app

    return CliRunner().invoke(app, args, env={"COLUMNS": "200"})


def _cli_common(weights: dict[str, Path]) -> list[str]:
    return ["--model", "meso4.mesonet_df", "--from", str(weights["model"]), "--detector-from", str(weights["faces"])]


def test_cli_batch_with_bad_files(tmp_path: Path, weights: dict[str, Path], astronaut_png: Path) -> None:
    bad = _bad_files(tmp_path / "bad")
    csv_path = tmp_path / "out.csv"
    missing = tmp_path / "missing.jpg"
    args = ["predict", str(astronaut_png), *map(str, bad), str(missing), "--json", "--csv", str(csv_path)]
    res = _run_cli(args + _cli_common(weights))
    assert res.exit_code == 1, res.output
    rows = json.loads(res.stdout)
    by_path = {Path(r["path"]).name: r for r in rows}
    assert len(rows) == len(bad) + 2
    good = by_path["astronaut.png"]
    assert good["verdict"] in {"fake", "real"} and good["n_faces"] >= 1 and 0 <= good["fake_prob"] <= 1
    assert good["frames"][0]["box"] and good["model"] == "meso4.mesonet_df"
    for path, reason in bad.items():
        row = by_path[path.name]
        assert row["verdict"] == "error" and reason in row["error"], row
    assert by_path["missing.jpg"]["error"] == "file not found"
    with open(csv_path, newline="") as f:
        table = list(csv.DictReader(f))
    assert [Path(r["path"]).name for r in table] == [Path(r["path"]).name for r in rows]
    assert {r["verdict"] for r in table} == {good["verdict"], "error"}
    assert float(next(r for r in table if r["verdict"] != "error")["fake_prob"]) == pytest.approx(good["fake_prob"])


def test_cli_all_good_exit_zero_and_table(tmp_path: Path, weights: dict[str, Path], astronaut_png: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    astronaut_png.rename(folder / "a.png")
    Image.fromarray(np.full((100, 120, 3), 90, np.uint8)).save(folder / "blank.jpg")
    res = _run_cli(["predict", str(folder), "--aggregation", "max", "--threshold", "0.4", *_cli_common(weights)])
    assert res.exit_code == 0, res.output
    assert "a.png" in res.stdout and "blank.jpg" in res.stdout
    assert "no-face" in res.stdout
    assert "0.40" in res.stdout


def test_cli_usage_errors(tmp_path: Path, weights: dict[str, Path], astronaut_png: Path) -> None:
    res = _run_cli(["predict", str(astronaut_png), "--model", "nosuchnet.x", "--from", str(weights["model"])])
    assert res.exit_code == 2
    assert "nosuchnet" in res.output
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    res = _run_cli(["predict", str(empty_dir), *_cli_common(weights)])
    assert res.exit_code == 2
    assert "no image or video" in res.output
    res = _run_cli(["predict", str(astronaut_png), "--aggregation", "median"])
    assert res.exit_code == 2


def test_adversarial_suspicion_from_fitted_detector(
    weights: dict[str, Path], tmp_path: Path, astronaut_png: Path, astronaut: np.ndarray
) -> None:
    import torch

    from fakescope.defenses import FeatureSqueezing
    from fakescope.models import create_detector

    model = create_detector("meso4.mesonet_df", weights_dir=weights["model"]).eval()
    rng = np.random.default_rng(0)
    clean = torch.from_numpy(rng.random((4, 3, 256, 256), dtype=np.float32))
    path = FeatureSqueezing(model).fit(clean).save(tmp_path / "adv.json")
    with Predictor(
        "meso4.mesonet_df", weights_dir=weights["model"], detector_weights_dir=weights["faces"], adv_detector=path
    ) as p:
        assert p.info()["adv_detector"] is True
        r = p.analyze(astronaut_png)
    assert r.verdict in {"fake", "real"}
    assert r.adv_suspicion is not None and 0.0 <= r.adv_suspicion <= 2.0
    assert isinstance(r.adv_flag, bool)
    assert r.to_dict()["adv_suspicion"] == r.adv_suspicion
