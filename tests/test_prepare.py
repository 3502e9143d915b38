"""prepare: every KIND end to end on tiny trees, resume, failures, interrupted runs, the process pool, the CLI."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from fakescope.data.manifest import read_manifest, validate_manifest, write_manifest
from fakescope.data.prepare import prepare_dataset
from prepare_helpers import BUILDERS, manifest_fingerprint, write_video

REPO = Path(__file__).resolve().parents[1]
FAST = {"size": 64, "num_frames": 3}


@pytest.fixture(scope="session")
def weights_dir(shared_data: Path) -> Path:
    return shared_data / "weights" / "mediapipe"


def _prepare(kind, root, out, weights_dir, **kw):
    opts = {**FAST, "weights_dir": weights_dir, **kw}
    return prepare_dataset(kind, root, out, **opts)


def _check_output(result, n_media: int):
    df = read_manifest(result.manifest_path)
    assert result.n_failed == 0, Path(result.failures_path).read_text()
    assert df["video_id"].nunique() == n_media
    assert validate_manifest(df, root=result.manifest_path, check_files=True) == []
    assert set(df["split"]) <= {"train", "val", "test"}
    assert (df["split"] != "").all()
    for p in df["crop_path"].head(5):
        with Image.open(result.manifest_path.parent / p) as im:
            assert im.format == "PNG"
            assert im.size == (64, 64)
    return df


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_prepare_every_kind(kind, tmp_path, weights_dir):
    root = BUILDERS[kind](tmp_path / "data")
    opts = {"adapter_options": {"group_col": "group_id", "identity_col": "person"}} if kind == "csv" else {}
    result = _prepare(kind, root, tmp_path / "out", weights_dir, **opts)
    n_media = {"celebdf": 5, "dfdc": 3, "dfdc-faces": 3, "deepfake-faces": 4, "ffpp": 5, "folder": 4, "csv": 4}[kind]
    df = _check_output(result, n_media)
    assert (df["dataset"] == kind).all()
    videos = df.drop_duplicates("video_id").set_index("video_id")
    if kind == "celebdf":
        # the official test list wins, and pulls the linked real video (same source/identity) along
        assert videos.loc["yt_00000", "split"] == "test"
        assert videos.loc["id1_id0_0000", "split"] == "test"
        assert videos.loc["id1_0000", "split"] == "test"
        assert videos.loc["id0_id1_0000", "source_id"] == "id0_0000"
        assert videos.loc["id0_id1_0000", "label"] == 1
        assert (df.groupby("video_id")["frame_index"].nunique() == 3).all()
    if kind == "dfdc":
        assert videos.loc["bbbbbbbbbb", "source_id"] == "aaaaaaaaaa"
        assert videos.loc["bbbbbbbbbb", "split"] == videos.loc["aaaaaaaaaa", "split"]
    if kind == "dfdc-faces":  # already crops: no detection, one row per image
        assert len(df) == 3
        assert (df["det_score"] == 1.0).all()
        assert (df["box_x2"] == 160).all()
    if kind == "deepfake-faces":  # a fake and its original share a split
        assert videos.loc["bbbbbbbbbb", "split"] == videos.loc["aaaaaaaaaa", "split"]
        assert videos.loc["dddddddddd", "source_id"] == "cccccccccc"
    if kind == "ffpp":
        assert set(df.loc[df["label"] == 1, "manipulation"]) == {"Deepfakes"}
        assert set(df["compression"]) == {"c23"}
        pair = df[df["group_id"] == "ffpp_pair_000_003"]
        linked = df[df["source_id"].isin(["original/000", "original/003"])]
        assert pair["split"].nunique() == 1
        assert linked["split"].nunique() == 1
    if kind == "folder":
        # a photo with a face in it is detected and cropped; a tight face image is taken whole
        photo = df[df["video_id"] == "real/photo_a"]
        assert len(photo) == 1
        assert photo["det_score"].iloc[0] < 1.0
        assert photo["box_x2"].iloc[0] < 480
        face = df[df["video_id"] == "fake/face_b"]
        assert face["det_score"].iloc[0] == 1.0
    if kind == "csv":
        assert df.groupby("group_id")["split"].nunique().max() == 1
        assert list(videos.sort_index()["label"]) == [1, 1, 0, 0] or set(videos["label"]) == {0, 1}
    run = json.loads((result.manifest_path.parent / "run.json").read_text())
    assert "fakescope_version" in run
    assert (result.manifest_path.parent / "config.yaml").is_file()


def _video_tree(root: Path, n: int = 4) -> Path:
    for i in range(n):
        write_video(root / ("real" if i % 2 == 0 else "fake") / f"v{i}.mp4", shift=2 * i)
    return root


def test_resume_skips_finished_videos(tmp_path, weights_dir):
    root = _video_tree(tmp_path / "data")
    out = tmp_path / "out"
    first = _prepare("folder", root, out, weights_dir)
    assert (first.n_processed, first.n_resumed) == (4, 0)
    crops = sorted((out / "crops").rglob("*.png"))
    mtimes = {p: p.stat().st_mtime_ns for p in crops}
    calls = []
    second = _prepare("folder", root, out, weights_dir, progress=lambda d, t: calls.append((d, t)))
    assert (second.n_processed, second.n_resumed) == (0, 4)
    assert calls == [(0, 0)]
    assert {p: p.stat().st_mtime_ns for p in crops} == mtimes
    assert read_manifest(second.manifest_path).equals(read_manifest(first.manifest_path))
    # drop one video's done marker: exactly that video is redone
    next((out / "shards").rglob("v1.json")).unlink()
    third = _prepare("folder", root, out, weights_dir)
    assert (third.n_processed, third.n_resumed) == (1, 3)
    # other crop options invalidate finished work
    fourth = _prepare("folder", root, out, weights_dir, size=48)
    assert fourth.n_processed == 4


def test_bad_files_are_recorded_and_the_rest_finish(tmp_path, weights_dir):
    root = _video_tree(tmp_path / "data", n=3)
    (root / "real" / "empty.mp4").write_bytes(b"")
    (root / "fake" / "text.mp4").write_text("not a video at all\n" * 20)
    (root / "fake" / "blank.png").write_bytes(_png(np.full((300, 300, 3), 127, np.uint8)))
    result = _prepare("folder", root, tmp_path / "out", weights_dir)
    with open(result.failures_path, newline="") as fh:
        failures = {Path(r["path"]).name: r["reason"] for r in csv.DictReader(fh)}
    assert set(failures) == {"empty.mp4", "text.mp4", "blank.png"}
    assert "no face" in failures["blank.png"]
    assert all(failures.values())
    df = read_manifest(result.manifest_path)
    assert sorted(df["video_id"].unique()) == ["fake/v1", "real/v0", "real/v2"]
    assert result.n_failed == 3
    assert not (tmp_path / "out" / "crops" / "folder" / "fake" / "blank").exists()


def _png(img: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def test_worker_error_mid_video_leaves_no_partial_output(tmp_path, weights_dir, monkeypatch):
    import fakescope.data.prepare as prep

    root = _video_tree(tmp_path / "data", n=3)
    real_encode = prep._encode_png
    count = {"n": 0}

    def flaky(image):
        count["n"] += 1
        if count["n"] == 5:  # the 2nd crop of the 2nd video
            raise OSError("disk full (simulated)")
        return real_encode(image)

    monkeypatch.setattr(prep, "_encode_png", flaky)
    out = tmp_path / "out"
    result = _prepare("folder", root, out, weights_dir)
    assert result.n_failed == 1
    failed = Path(result.failures_path).read_text()
    assert "disk full" in failed
    df = read_manifest(result.manifest_path)
    assert df["video_id"].nunique() == 2
    # the failed video has neither crops nor a shard nor rows
    bad = next(v for v in ("real/v0", "fake/v1", "real/v2") if v not in set(df["video_id"]))
    assert not (out / "crops" / "folder" / bad).exists()
    assert not (out / "shards" / "folder" / f"{bad}.json").exists()
    monkeypatch.setattr(prep, "_encode_png", real_encode)
    again = _prepare("folder", root, out, weights_dir)
    assert (again.n_failed, again.n_processed, again.n_resumed) == (0, 1, 2)


_KILL_SCRIPT = """
import sys, time
from fakescope.data.prepare import prepare_dataset
prepare_dataset("folder", sys.argv[1], sys.argv[2], size=64, num_frames=4, weights_dir=sys.argv[3],
                progress=lambda done, total: time.sleep(0.4))
"""


def test_killed_run_leaves_no_partial_rows_and_rerun_completes(tmp_path, weights_dir):
    root = _video_tree(tmp_path / "data", n=6)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(root), str(out), str(weights_dir)], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not list((out / "shards").rglob("*.json")) and time.monotonic() < deadline:
            assert proc.poll() is None, "prepare ended before it could be killed"
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "manifest.parquet").exists()  # the manifest is only assembled at the end
    shards = list((out / "shards").rglob("*.json"))
    assert 1 <= len(shards) < 6
    for shard in shards:  # every recorded row points at a complete crop
        for row in json.loads(shard.read_text())["rows"]:
            with Image.open(out / row["crop_path"]) as im:
                im.load()
    for png in (out / "crops").rglob("[!.]*.png"):  # final names are complete files
        with Image.open(png) as im:
            im.load()

    resumed = _prepare("folder", root, out, weights_dir, num_frames=4)
    assert resumed.n_failed == 0
    assert resumed.n_resumed == len(shards)
    assert not list(out.rglob(".*.tmp*"))
    clean = _prepare("folder", root, tmp_path / "clean", weights_dir, num_frames=4)
    assert manifest_fingerprint(resumed.manifest_path) == manifest_fingerprint(clean.manifest_path)


def test_process_pool_matches_serial_run(tmp_path, weights_dir):
    root = _video_tree(tmp_path / "data", n=4)
    serial = _prepare("folder", root, tmp_path / "serial", weights_dir)
    pooled = _prepare("folder", root, tmp_path / "pooled", weights_dir, workers=2)
    assert pooled.n_processed == 4
    assert manifest_fingerprint(pooled.manifest_path) == manifest_fingerprint(serial.manifest_path)
    # the thread budget per worker changes speed only, never the crops
    threaded = _prepare("folder", root, tmp_path / "threaded", weights_dir, workers=2, threads_per_worker=2)
    assert manifest_fingerprint(threaded.manifest_path) == manifest_fingerprint(serial.manifest_path)
    config = yaml.safe_load((tmp_path / "threaded" / "config.yaml").read_text())
    assert config["threads_per_worker"] == 2


def test_default_threads_share_the_cores(monkeypatch):
    from fakescope.data import options as prepare

    monkeypatch.setattr(prepare, "default_workers", lambda: 8)
    assert prepare.default_threads_per_worker(1) is None  # one worker: the libraries' defaults (all cores)
    assert prepare.default_threads_per_worker(2) == 4
    assert prepare.default_threads_per_worker(16) == 1
    assert prepare.default_threads_per_worker(2, "ray") == 1  # an actor reserves one CPU


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match="executor"):
        prepare_dataset("folder", tmp_path, tmp_path / "o", executor="spark")
    with pytest.raises(ValueError, match="threads_per_worker"):
        prepare_dataset("folder", tmp_path, tmp_path / "o", threads_per_worker=0)


def test_cli_prepare_show_validate_split(tmp_path, weights_dir):
    from fakescope.cli.main import app

    root = _video_tree(tmp_path / "data", n=4)
    (root / "fake" / "broken.mp4").write_bytes(b"\x00" * 100)
    out = tmp_path / "out"
    runner = CliRunner()
    args = ["prepare", "folder", str(root), "--out", str(out), "--size", "64", "--frames", "3"]
    res = runner.invoke(app, [*args, "--from", str(weights_dir)])
    assert res.exit_code == 1, res.output  # one input failed, the others finished
    assert "4 of 5 inputs done" in res.output
    assert "broken.mp4" in (out / "failures.csv").read_text()

    res = runner.invoke(app, ["manifest", "show", str(out)])
    assert res.exit_code == 0, res.output
    assert "split" in res.output
    res = runner.invoke(app, ["manifest", "validate", str(out / "manifest.parquet"), "--check-files"])
    assert res.exit_code == 0, res.output

    res = runner.invoke(app, ["split", str(out), "--seed", "5", "--ratios", "0.5,0.5,0"])
    assert res.exit_code == 0, res.output
    df = read_manifest(out)
    assert set(df["split"]) <= {"train", "val"}

    df.loc[df.index[0], "split"] = "test"  # plant a leak: one crop of a video moves to test
    write_manifest(df, out / "leaky.parquet")
    res = runner.invoke(app, ["manifest", "validate", str(out / "leaky.parquet")])
    assert res.exit_code == 1
    assert "crosses" in res.output or "appears in splits" in res.output


def test_cli_usage_errors_exit_2(tmp_path):
    from fakescope.cli.main import app

    res = CliRunner().invoke(app, ["prepare", "nope", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "celebdf" in res.output
    args = ["prepare", "folder", str(tmp_path), "--out", str(tmp_path / "o"), "--group-col", "g"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2
