"""Hostile and odd inputs: real files made here (Pillow, PyAV), a batch that always finishes, bounded decoding."""

from __future__ import annotations

import csv
import json
import os
import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from fakescope.data.media import MAX_WORKING_SIDE, read_image, sample_frames, scan_media
from fakescope.errors import MediaError
from fakescope.models import create_detector, save_checkpoint
from prepare_helpers import write_video


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path: Path, side: int = 60000) -> Path:
    """A few hundred bytes of PNG that declare ``side`` x ``side`` RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * side) * 4, 9)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="module")
def random_meso(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(create_detector("meso4"), tmp_path_factory.mktemp("m") / "meso4.safetensors")


def test_decompression_bomb_is_a_media_error(tmp_path):
    path = bomb_png(tmp_path / "bomb.png")
    assert path.stat().st_size < 2000
    with pytest.raises(MediaError, match=r"decompression bomb|megapixels"):
        read_image(path)


def test_huge_jpeg_decodes_to_the_working_size(tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (12000, 12000), (90, 120, 150)).save(path, quality=70)
    img = read_image(path)
    assert max(img.shape[:2]) <= MAX_WORKING_SIDE and img.shape[2] == 3
    assert abs(int(img[..., 0].mean()) - 90) <= 3


def test_8k_video_frames_come_at_the_working_size(tmp_path):
    path = write_video(tmp_path / "8k.mp4", n_frames=2, width=7680, height=4320)
    frames = sample_frames(path, num_frames=2)
    assert frames and all(max(f.image.shape[:2]) <= MAX_WORKING_SIDE for f in frames)
    assert frames[0].image.shape[:2] == (1152, 2048)  # aspect ratio kept
    small = write_video(tmp_path / "small.mp4", n_frames=2, width=320, height=240)
    assert sample_frames(small, num_frames=2)[0].image.shape == (240, 320, 3)  # below it: untouched


def test_scan_reports_every_input(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    Image.new("RGB", (64, 64)).save(root / "ok.png")
    (root / "x.mp4").mkdir()  # a folder named like a video
    os.symlink(root / "loop.jpg", root / "loop.jpg")  # a symlink loop
    os.symlink(tmp_path / "gone.png", root / "dangling.png")
    named_loop = tmp_path / "self.mp4"
    os.symlink(named_loop, named_loop)
    found = dict(scan_media([root, named_loop, tmp_path / "missing.jpg"]))
    assert found[root / "ok.png"] is None
    assert "directory" in found[root / "x.mp4"]
    assert "symlink loop" in found[root / "loop.jpg"]
    assert "broken" in found[root / "dangling.png"]
    assert "symlink loop" in found[named_loop]
    assert found[tmp_path / "missing.jpg"] == "file not found"


def test_predict_batch_with_every_kind_of_bad_input(tmp_path, random_meso, astronaut):
    from typer.testing import CliRunner

    from fakescope.cli.main import app

    root = tmp_path / "in"
    root.mkdir()
    Image.fromarray(astronaut).save(root / "good.jpg", quality=90)
    bomb_png(root / "bomb.png")
    (root / "notes.jpg").write_text("plain text, named like a picture\n")
    (root / "sub.mp4").mkdir()
    os.symlink(root / "loop.png", root / "loop.png")
    weird = os.fsdecode(b"caf\xe9.jpg")  # not valid UTF-8
    Image.fromarray(astronaut).save(root / weird, quality=90)
    csv_path = tmp_path / "out.csv"
    res = CliRunner().invoke(
        app,
        ["predict", str(root), "--model", str(random_meso), "--detector", "haar", "--json", "--csv", str(csv_path)],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 1, res.output  # some files failed, the rest finished
    rows = {Path(r["path"]).name: r for r in json.loads(res.stdout)}
    assert len(rows) == 6
    assert rows["good.jpg"]["verdict"] in ("fake", "real")
    assert rows[weird]["verdict"] in ("fake", "real")
    for name in ("bomb.png", "notes.jpg", "sub.mp4", "loop.png"):
        assert rows[name]["verdict"] == "error" and rows[name]["error"], rows[name]
    with open(csv_path, newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 6
    assert any(r["path"].endswith("caf\\xe9.jpg") for r in table)


def test_text_file_gets_one_message_whatever_its_name(tmp_path):
    from fakescope.data.media import media_kind

    msgs = set()
    for name in ("notes.jpg", "notes.mp4", "notes.png"):
        path = tmp_path / name
        path.write_text("plain text, not media\n")
        with pytest.raises(MediaError) as info:
            media_kind(path)
        msgs.add(info.value.reason)
    assert msgs == {"not an image or video (unrecognised content)"}


def test_missing_face_weights_fail_once_up_front(tmp_path):
    from fakescope.data.prepare import prepare_dataset
    from fakescope.errors import DownloadError

    root = tmp_path / "data"
    for label in ("real", "fake"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (64, 64), (i * 40, 80, 120)).save(root / label / f"{i}.png")
    empty = tmp_path / "no-weights"
    empty.mkdir()
    with pytest.raises(DownloadError, match="not found"):
        prepare_dataset("folder", root, tmp_path / "out", weights_dir=empty)
    assert not (tmp_path / "out" / "failures.csv").exists()  # nothing was attempted file by file


def test_prepare_accounts_for_every_bad_input(tmp_path, astronaut):
    """prepare on a folder of hostile files: every bad one is a failures.csv row, the good ones are in the manifest."""
    from fakescope.data.manifest import read_manifest
    from fakescope.data.prepare import prepare_dataset

    root = tmp_path / "data"
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir()
    Image.fromarray(astronaut).save(root / "real" / "good.jpg", quality=90)
    Image.fromarray(astronaut[:, ::-1]).save(root / "fake" / "good2.jpg", quality=90)
    bomb_png(root / "fake" / "bomb.png")
    (root / "fake" / "notes.jpg").write_text("text\n")
    (root / "fake" / "sub.mp4").mkdir()
    os.symlink(root / "fake" / "loop.png", root / "fake" / "loop.png")
    Image.fromarray(astronaut).save(root / "real" / os.fsdecode(b"caf\xe9.jpg"), quality=90)
    res = prepare_dataset("folder", root, tmp_path / "out", detector="haar", split_ratios=(1.0, 0.0, 0.0))
    assert res.n_media == 7 and res.n_failed == 5
    with open(res.failures_path, newline="", encoding="utf-8") as fh:
        rows = {Path(r["path"]).name: r["reason"] for r in csv.DictReader(fh)}
    assert set(rows) == {"bomb.png", "notes.jpg", "sub.mp4", "loop.png", "caf\\xe9.jpg"}
    assert all(rows.values())
    assert sorted(read_manifest(res.manifest_path)["media_path"].map(lambda p: Path(p).name)) == [
        "good.jpg",
        "good2.jpg",
    ]


def test_unreadable_subfolder_is_a_row(tmp_path, monkeypatch):
    """A folder the process may not list (simulated: tests run as root, which reads everything) gives a row."""
    root = tmp_path / "in"
    (root / "locked").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(root / "ok.png")
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == root / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = dict(scan_media(root))
    assert found[root / "ok.png"] is None
    assert "cannot read folder" in found[root / "locked"] and "Permission denied" in found[root / "locked"]
