"""Dataset adapters: each KIND read from a tiny tree in that dataset's exact layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakescope.data.adapters import list_adapters, load_records, parse_label, safe_id
from fakescope.errors import FakescopeError
from prepare_helpers import BUILDERS


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_every_kind_has_a_builder():
    assert set(list_adapters()) == set(BUILDERS)


def test_unknown_kind_lists_choices(tmp_path):
    with pytest.raises(ValueError, match="celebdf"):
        load_records("nope", tmp_path)


def test_wrong_layout_says_what_is_expected(tmp_path):
    with pytest.raises(FakescopeError, match="Celeb-real"):
        load_records("celebdf", tmp_path)
    with pytest.raises(FakescopeError, match=r"metadata\.json"):
        load_records("dfdc", tmp_path)


def test_celebdf_identities_sources_and_official_test(tmp_path):
    for rel in (
        "Celeb-real/id0_0000.mp4",
        "Celeb-real/id1_0003.mp4",
        "YouTube-real/00042.mp4",
        "Celeb-synthesis/id0_id1_0000.mp4",
    ):
        _touch(tmp_path / rel)
    (tmp_path / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00042.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n"
    )
    recs = {r.video_id: r for r in load_records("celebdf", tmp_path)}
    assert set(recs) == {"id0_0000", "id1_0003", "yt_00042", "id0_id1_0000"}
    fake = recs["id0_id1_0000"]
    assert (fake.label, fake.source_id, fake.identity, fake.official_split) == (1, "id0_0000", "id0", "test")
    assert recs["id1_0003"].identity == "id1"
    assert recs["id1_0003"].official_split == ""
    assert recs["yt_00042"].official_split == "test"
    assert recs["yt_00042"].label == 0
    assert all(r.dataset == "celebdf" for r in recs.values())


def test_celebdf_v1_layout_without_youtube(tmp_path):
    _touch(tmp_path / "Celeb-real" / "id5_0001.mp4")
    _touch(tmp_path / "Celeb-synthesis" / "id5_id7_0001.mp4")
    recs = load_records("celebdf", tmp_path)
    assert [r.label for r in recs] == [0, 1]
    assert recs[1].source_id == recs[0].video_id


def test_dfdc_metadata_labels_and_originals(tmp_path):
    part = tmp_path / "dfdc_train_part_7"
    _touch(part / "aaa.mp4")
    _touch(part / "bbb.mp4")
    meta = {
        "aaa.mp4": {"label": "REAL", "split": "train"},
        "bbb.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
        "missing.mp4": {"label": "FAKE", "split": "train", "original": "aaa.mp4"},
    }
    (part / "metadata.json").write_text(json.dumps(meta))
    recs = {r.video_id: r for r in load_records("dfdc", tmp_path)}
    assert set(recs) == {"aaa", "bbb"}
    assert (recs["bbb"].label, recs["bbb"].source_id) == (1, "aaa")
    assert (recs["aaa"].label, recs["aaa"].source_id) == (0, "aaa")


def test_dfdc_faces_layout(tmp_path):
    BUILDERS["dfdc-faces"](tmp_path)
    recs = {r.video_id: r for r in load_records("dfdc-faces", tmp_path)}
    assert set(recs) == {"aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc"}
    assert recs["bbbbbbbbbb"].label == 1
    assert recs["bbbbbbbbbb"].source_id == "aaaaaaaaaa"
    assert all(r.cropped for r in recs.values())


def test_ffpp_targets_pairs_and_compression(tmp_path):
    for rel in (
        "original_sequences/youtube/c23/videos/000.mp4",
        "original_sequences/youtube/c40/videos/000.mp4",
        "original_sequences/youtube/c23/videos/003.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4",
        "manipulated_sequences/Face2Face/c40/videos/003_000.mp4",
    ):
        _touch(tmp_path / rel)
    recs = {r.video_id: r for r in load_records("ffpp", tmp_path)}
    assert set(recs) == {
        "original/c23/000",
        "original/c40/000",
        "original/c23/003",
        "Deepfakes/c23/000_003",
        "Face2Face/c40/003_000",
    }
    df = recs["Deepfakes/c23/000_003"]
    assert (df.label, df.manipulation, df.compression, df.source_id) == (1, "Deepfakes", "c23", "original/000")
    assert recs["original/c40/000"].source_id == "original/000"
    assert df.group_id == recs["Face2Face/c40/003_000"].group_id == "ffpp_pair_000_003"


def test_folder_real_fake(tmp_path):
    _touch(tmp_path / "Real" / "a.mp4")
    _touch(tmp_path / "fake" / "sub" / "b.jpg")
    _touch(tmp_path / "fake" / "notes.txt")
    recs = load_records("folder", tmp_path)
    assert [(r.video_id, r.label) for r in recs] == [("Real/a", 0), ("fake/sub/b", 1)]


def test_csv_columns_and_label_spellings(tmp_path):
    BUILDERS["csv"](tmp_path)
    recs = load_records("csv", tmp_path, group_col="group_id", identity_col="person")
    assert [r.label for r in recs] == [0, 1, 0, 1]
    assert [r.group_id for r in recs] == ["g0", "g0", "g1", "g1"]
    assert recs[0].identity == "p0"
    assert recs[0].media_path == (tmp_path / "imgs" / "real_0.jpg").resolve()


def test_csv_missing_column_and_bad_label(tmp_path):
    (tmp_path / "t.csv").write_text("path,label\na.jpg,maybe\n")
    with pytest.raises(FakescopeError, match="group_id"):
        load_records("csv", tmp_path / "t.csv", group_col="group_id")
    with pytest.raises(FakescopeError, match="maybe"):
        load_records("csv", tmp_path / "t.csv")


def test_helpers():
    assert parse_label("FAKE", "x") == 1
    assert parse_label(0.0, "x") == 0
    assert safe_id("../a b/c") == "a_b/c"


def test_deepfake_faces_groups_fakes_with_their_original(tmp_path):
    BUILDERS["deepfake-faces"](tmp_path)
    recs = {r.video_id: r for r in load_records("deepfake-faces", tmp_path)}
    assert set(recs) == {"aaaaaaaaaa", "bbbbbbbbbb", "cccccccccc", "dddddddddd"}  # eeeeeeeeee has no image
    assert [recs[v].label for v in sorted(recs)] == [0, 1, 0, 1]
    assert recs["bbbbbbbbbb"].source_id == recs["aaaaaaaaaa"].source_id == "aaaaaaaaaa"
    assert recs["dddddddddd"].source_id == "cccccccccc"
    assert all(r.cropped is None for r in recs.values())  # the face-crop rule of predict decides
    (tmp_path / "metadata.csv").unlink()
    with pytest.raises(FakescopeError, match=r"metadata\.csv"):
        load_records("deepfake-faces", tmp_path)


def test_shared_dfdc_labels_split_by_group(shared_data):
    """The shared DFDC labels.csv through the csv kind: a fake and its original never cross splits."""
    from fakescope.data.splits import assign_splits

    root = shared_data / "dfdc_faces" / "labels.csv"
    recs = load_records("csv", root, group_col="group_id", source_col="original")
    assert len(recs) == 24000
    import pandas as pd

    df = pd.DataFrame(
        {
            "video_id": [r.video_id for r in recs],
            "source_id": [r.source_id or r.video_id for r in recs],
            "identity": [r.identity for r in recs],
            "group_id": [r.group_id for r in recs],
            "label": [r.label for r in recs],
        }
    )
    df = assign_splits(df, seed=0, ratios=(0.75, 0.05, 0.2))
    assert df.groupby("group_id")["split"].nunique().max() == 1
    labels = pd.read_csv(root)
    originals = labels.dropna(subset=["original"])
    split_of = dict(zip(df["video_id"].str.split("/").str[-1], df["split"], strict=True))
    shared = [(f, o) for f, o in zip(originals["video_id"], originals["original"], strict=True) if o in split_of]
    assert shared and all(split_of[f] == split_of[o] for f, o in shared)
