"""Leak-free splits: fakes with their sources, identities together, official lists honoured, deterministic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fakescope.data.manifest import find_leaks, normalize_manifest, read_manifest, validate_manifest, write_manifest
from fakescope.data.splits import assign_splits, video_components


def _manifest(n_real: int = 40, fakes_per_real: int = 2, crops: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_real):
        identity = f"id{r // 4}"  # 4 videos per person
        videos = [(f"real{r}", 0, f"real{r}")] + [(f"fake{r}_{k}", 1, f"real{r}") for k in range(fakes_per_real)]
        for vid, label, source in videos:
            for c in range(crops):
                rows.append(
                    {
                        "dataset": "t",
                        "video_id": vid,
                        "source_id": source,
                        "identity": identity,
                        "label": label,
                        "frame_index": c,
                        "crop_path": f"crops/{vid}/{c}.png",
                        "det_score": float(rng.random()),
                    }
                )
    return normalize_manifest(pd.DataFrame(rows))


def test_split_keeps_fake_with_source_and_identity_together():
    df = assign_splits(_manifest(), seed=3)
    assert find_leaks(df) == []
    assert set(df["split"]) == {"train", "val", "test"}
    for _, g in df.groupby("source_id"):
        assert g["split"].nunique() == 1
    for _, g in df.groupby("identity"):
        assert g["split"].nunique() == 1


def test_split_is_deterministic_and_seed_matters():
    df = _manifest()
    a = assign_splits(df, seed=1)["split"].tolist()
    assert assign_splits(df, seed=1)["split"].tolist() == a
    assert any(assign_splits(df, seed=s)["split"].tolist() != a for s in range(2, 6))


def test_split_ratios_roughly_respected_and_stratified():
    df = assign_splits(_manifest(n_real=200), seed=0, ratios=(0.6, 0.2, 0.2))
    vids = df.drop_duplicates("video_id")
    frac = vids["split"].value_counts(normalize=True)
    assert abs(frac["train"] - 0.6) < 0.05
    assert abs(frac["val"] - 0.2) < 0.05
    for split in ("train", "val", "test"):
        fake_share = vids.loc[vids["split"] == split, "label"].mean()
        assert abs(fake_share - 2 / 3) < 0.05


def test_transitive_links_through_group_id():
    rows = [
        {"video_id": "a", "label": 0, "crop_path": "a.png", "identity": "p1"},
        {"video_id": "b", "label": 1, "crop_path": "b.png", "identity": "p1", "group_id": "g"},
        {"video_id": "c", "label": 0, "crop_path": "c.png", "group_id": "g"},
        {"video_id": "d", "label": 0, "crop_path": "d.png"},
    ]
    df = normalize_manifest(pd.DataFrame(rows))
    comp = video_components(df)
    assert comp[0] == comp[1] == comp[2] != comp[3]


def test_official_test_list_is_honoured():
    df = _manifest(n_real=20)
    df["official_split"] = ""
    df.loc[df["video_id"] == "real0", "official_split"] = "test"
    out = assign_splits(df, seed=0)
    # real0's whole component (its fakes and its identity id0) is test, and nothing else is
    comp = out[out["identity"] == "id0"]
    assert set(comp["split"]) == {"test"}
    assert set(out.loc[out["identity"] != "id0", "split"]) == {"train", "val"}
    assert find_leaks(out) == []


def test_leak_check_catches_planted_leak(tmp_path):
    df = assign_splits(_manifest(), seed=0)
    assert validate_manifest(df) == []
    leaked = df.copy()
    fake_rows = leaked.index[leaked["video_id"] == "fake0_0"]
    other = "train" if leaked.loc[fake_rows[0], "split"] != "train" else "test"
    leaked.loc[fake_rows, "split"] = other
    problems = validate_manifest(leaked)
    assert any("source_id='real0'" in p for p in problems)


def test_manifest_round_trip_keeps_splits_and_extra_columns(tmp_path):
    df = assign_splits(_manifest(n_real=8), seed=0)
    df["official_split"] = ""
    path = write_manifest(df, tmp_path)
    back = read_manifest(path)
    assert back["split"].tolist() == df["split"].tolist()
    assert back["det_score"].tolist() == pytest.approx(df["det_score"].tolist())
    assert "official_split" in back


def test_bad_ratios():
    with pytest.raises(ValueError, match="three"):
        assign_splits(_manifest(n_real=2), ratios=(0.5, 0.5))
