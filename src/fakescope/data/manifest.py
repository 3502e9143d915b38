"""The manifest: one Parquet table, one row per face crop.

It is the only thing the training, evaluation, attack and scaling code read about a dataset. Columns
(``MANIFEST_COLUMNS`` is the source of truth, with the dtype of each):

=============  ========  ==================================================================================
column         dtype     meaning
=============  ========  ==================================================================================
dataset        string    adapter that produced the row (``celebdf``, ``dfdc``, ``ffpp``, ``folder``, ...)
video_id       string    id of the video (or image) the crop comes from; frame -> video aggregation uses it
source_id      string    the original a fake was made from; a real's own ``video_id``
identity       string    person id where the dataset knows it, else empty
group_id       string    the leakage unit: rows sharing it always land in one split
label          int8      0 = real, 1 = fake
manipulation   string    manipulation method (``Deepfakes``, ``self_blend`` ...); empty for reals
compression    string    ``raw``, ``c23``, ``c40`` or empty when unknown
split          string    ``train``, ``val``, ``test`` or empty (not yet split)
media_path     string    the source video or image, as given to ``prepare``
frame_index    int32     frame number in the video (0 for images)
timestamp      float32   seconds from the start of the video (0 for images)
track_id       int32     person track within the video (0 for the first/only face)
box_x1..y2     float32   face box in source-frame pixels (after rotation), before the margin
det_score      float32   face-detector confidence (1.0 for inputs that were already crops)
crop_path      string    the face crop, relative to the manifest's folder
=============  ========  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from fakescope.errors import ManifestError
from fakescope.utils.io import atomic_path

MANIFEST_COLUMNS: dict[str, str] = {
    "dataset": "string",
    "video_id": "string",
    "source_id": "string",
    "identity": "string",
    "group_id": "string",
    "label": "int8",
    "manipulation": "string",
    "compression": "string",
    "split": "string",
    "media_path": "string",
    "frame_index": "int32",
    "timestamp": "float32",
    "track_id": "int32",
    "box_x1": "float32",
    "box_y1": "float32",
    "box_x2": "float32",
    "box_y2": "float32",
    "det_score": "float32",
    "crop_path": "string",
}
SPLITS = ("train", "val", "test")
MANIFEST_NAME = "manifest.parquet"


def empty_manifest() -> pd.DataFrame:
    """An empty manifest with the right columns and dtypes."""
    return normalize_manifest(pd.DataFrame({c: [] for c in MANIFEST_COLUMNS}))


def normalize_manifest(df: pd.DataFrame) -> pd.DataFrame:
    """Fill optional columns with defaults, cast every column to its dtype, and order the columns.

    Raises:
        ManifestError: a required column (``video_id``, ``label``, ``crop_path``) is missing, or a label is not 0/1.
    """
    df = df.copy()
    for required in ("video_id", "label", "crop_path"):
        if required not in df.columns:
            raise ManifestError(f"manifest lacks the required column {required!r}")
    defaults: dict[str, object] = {
        "frame_index": 0,
        "timestamp": 0.0,
        "track_id": 0,
        "det_score": 1.0,
        "box_x1": 0.0,
        "box_y1": 0.0,
        "box_x2": 0.0,
        "box_y2": 0.0,
    }
    for col, dtype in MANIFEST_COLUMNS.items():
        if col not in df.columns:
            df[col] = defaults.get(col, "") if dtype != "string" else ""
    if "source_id" in df:
        df["source_id"] = df["source_id"].fillna("").astype("string")
        df.loc[df["source_id"] == "", "source_id"] = df["video_id"]
    if "group_id" in df:
        df["group_id"] = df["group_id"].fillna("").astype("string")
        df.loc[df["group_id"] == "", "group_id"] = df["source_id"]
    labels = pd.to_numeric(df["label"], errors="coerce")
    if labels.isna().any() or not labels.isin([0, 1]).all():
        raise ManifestError("manifest column 'label' must hold only 0 (real) and 1 (fake)")
    df["label"] = labels
    for col, dtype in MANIFEST_COLUMNS.items():
        if dtype == "string":
            df[col] = df[col].fillna("").astype("string")
        else:
            df[col] = df[col].astype(dtype)
    extra = [c for c in df.columns if c not in MANIFEST_COLUMNS]
    return df[list(MANIFEST_COLUMNS) + extra].reset_index(drop=True)


def write_manifest(df: pd.DataFrame, path: str | Path) -> Path:
    """Validate the schema and write ``df`` as Parquet atomically (temporary name, then rename)."""
    path = Path(path)
    if path.is_dir() or path.suffix == "":
        path = path / MANIFEST_NAME
    df = normalize_manifest(df)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest (a ``.parquet`` file or a folder holding ``manifest.parquet``; ``.csv`` also accepted)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest here (expected a .parquet file or a folder with {MANIFEST_NAME})")
    try:
        df = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise ManifestError(f"{path}: not a readable manifest ({exc})") from exc
    return normalize_manifest(df)


def resolve_crop_paths(df: pd.DataFrame, manifest_path: str | Path) -> list[Path]:
    """Absolute crop paths of ``df`` (crop_path is stored relative to the manifest's folder)."""
    root = Path(manifest_path)
    root = root if root.is_dir() else root.parent
    return [Path(p) if Path(p).is_absolute() else root / p for p in df["crop_path"]]


def find_leaks(df: pd.DataFrame, keys: Iterable[str] = ("group_id", "source_id", "identity")) -> list[str]:
    """Describe every group that crosses splits (empty list when the split is clean).

    A fake and its source share ``source_id``/``group_id``; all videos of one identity share ``identity``.
    Rows with an empty split or an empty key are ignored.
    """
    problems: list[str] = []
    split_rows = df[df["split"] != ""]
    for key in keys:
        if key not in split_rows:
            continue
        sub = split_rows[split_rows[key] != ""]
        n = sub.groupby(key, observed=True)["split"].nunique()
        for value in n[n > 1].index[:20]:
            splits = sorted(sub.loc[sub[key] == value, "split"].unique())
            problems.append(f"{key}={value!r} appears in splits {splits}")
        if (n > 1).sum() > 20:
            problems.append(f"... and {(n > 1).sum() - 20} more {key} values cross splits")
    return problems


def validate_manifest(df: pd.DataFrame, root: str | Path | None = None, check_files: bool = False) -> list[str]:
    """Return a list of problems: leaks across splits, unknown split names, missing crops (if ``check_files``)."""
    problems = find_leaks(df)
    bad_split = sorted(set(df["split"]) - {*SPLITS, ""})
    if bad_split:
        problems.append(f"unknown split names {bad_split}; expected {list(SPLITS)}")
    if check_files and root is not None:
        missing = [str(p) for p in resolve_crop_paths(df, root) if not p.is_file()]
        if missing:
            problems.append(f"{len(missing)} crop files missing, e.g. {missing[:3]}")
    return problems
