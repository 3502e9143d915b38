"""Dataset adapters: turn a dataset's folder layout into a list of media records (one per video or image).

One adapter per ``KIND`` of ``fakescope prepare KIND ROOT``. An adapter only reads folder listings and label
files; it never decodes media. Each returns :class:`MediaRecord` objects in a deterministic order.

=============  =======================================================================================
kind           expected layout under ``ROOT``
=============  =======================================================================================
celebdf        Celeb-DF v1/v2: ``Celeb-real/idX_NNNN.mp4``, ``YouTube-real/NNNNN.mp4``,
               ``Celeb-synthesis/idX_idY_NNNN.mp4`` (the face of ``idY`` swapped into ``idX_NNNN``),
               optional ``List_of_testing_videos.txt`` (``<1|0> <folder>/<file>.mp4`` per line; the
               official test split)
dfdc           ``dfdc_train_part_*/metadata.json`` beside the videos (``label`` REAL/FAKE, ``original`` for
               fakes); a single folder holding ``metadata.json`` (``train_sample_videos``) also works
dfdc-faces     Kaggle "deepfake detection faces": ``DeepFakeNN/`` (often ``DeepFakeNN/DeepFakeNN/``) holding
               one face image per video (``<video>.jpg``), and ``metadata/NN.json`` (also accepted:
               ``metadata/metadataN.json``, ``metadataN.json``) mapping ``<video>.mp4`` to ``label``,
               ``split`` and ``original``. Images are treated as face crops.
deepfake-faces Kaggle "deepfake-faces" (DFDC): ``faces_224/<video>.jpg`` (one face per video) and
               ``metadata.csv`` with ``videoname,label,original`` (``original``: the real video a fake was made
               from). A fake is grouped with its original. Crops go through the same face-crop rule as
               ``predict`` (``fakescope.data.contract.face_in_crop``), so training and prediction crops match
ffpp           FaceForensics++: ``original_sequences/youtube/<c>/videos/000.mp4`` and
               ``manipulated_sequences/<method>/<c>/videos/000_003.mp4`` (target 000, source face 003),
               ``<c>`` in raw, c23, c40
folder         ``real/`` and ``fake/`` subfolders (any depth below them) of videos and/or images
csv            a CSV with a path column (relative to the CSV's folder) and a label column (real/fake or
               0/1); optional group/source and identity columns named by options. ``ROOT`` is the CSV file
               or a folder holding exactly one ``*.csv``
=============  =======================================================================================
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fakescope.errors import FakescopeError

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES
_LABELS = {"real": 0, "fake": 1, "0": 0, "1": 1, "original": 0, "pristine": 0, "manipulated": 1}


@dataclass(frozen=True)
class MediaRecord:
    """One input video or image, with everything the dataset says about it.

    Attributes:
        media_path: absolute path of the video or image.
        video_id: id unique within the dataset (may contain ``/``; it becomes a folder under ``crops/``).
        label: 0 = real, 1 = fake.
        dataset: the adapter kind (``celebdf`` ...); filled in by :func:`load_records`.
        source_id: the real video a fake was made from (a real's own id; empty = its own id).
        identity: person id where the dataset knows it.
        group_id: any other leakage unit (empty = none).
        manipulation: manipulation method for fakes.
        compression: ``raw``, ``c23``, ``c40`` or empty.
        official_split: ``train``/``val``/``test`` from an official list, else empty.
        cropped: True when the dataset is known to hold face crops, None = let prepare decide.
    """

    media_path: Path
    video_id: str
    label: int
    dataset: str = ""
    source_id: str = ""
    identity: str = ""
    group_id: str = ""
    manipulation: str = ""
    compression: str = ""
    official_split: str = ""
    cropped: bool | None = None


AdapterFn = Callable[..., list[MediaRecord]]
_ADAPTERS: dict[str, AdapterFn] = {}


def register_adapter(name: str) -> Callable[[AdapterFn], AdapterFn]:
    """Register ``fn(root, **options) -> list[MediaRecord]`` under ``name``."""

    def deco(fn: AdapterFn) -> AdapterFn:
        _ADAPTERS[name] = fn
        return fn

    return deco


def list_adapters() -> list[str]:
    """Names of the dataset kinds ``prepare`` understands."""
    return sorted(_ADAPTERS)


def load_records(kind: str, root: str | Path, **options: object) -> list[MediaRecord]:
    """Records of every video/image of dataset ``kind`` under ``root``.

    Args:
        kind: one of :func:`list_adapters`.
        root: the dataset folder (for ``csv``: the CSV file or its folder).
        **options: adapter options (``csv``: ``path_col``, ``label_col``, ``group_col``, ``identity_col``,
            ``source_col``); options set to None are ignored.

    Raises:
        ValueError: unknown kind.
        FakescopeError: the layout is not the one the adapter expects (the message says what is missing).
    """
    if kind not in _ADAPTERS:
        raise ValueError(f"unknown dataset kind {kind!r}; choose one of {list_adapters()}")
    root = Path(root).expanduser().resolve()
    if not root.exists():
        raise FakescopeError(f"{root}: no such file or folder")
    opts = {k: v for k, v in options.items() if v is not None}
    records = _ADAPTERS[kind](root, **opts)
    if not records:
        raise FakescopeError(f"{root}: no media found for dataset kind {kind!r} (see `fakescope prepare --help`)")
    records = [_with(r, dataset=kind) for r in records]
    return _unique_ids(records)


def _with(rec: MediaRecord, **changes: object) -> MediaRecord:
    from dataclasses import replace

    return replace(rec, **changes)


def _unique_ids(records: list[MediaRecord]) -> list[MediaRecord]:
    seen: dict[str, int] = {}
    out = []
    for rec in records:
        vid = safe_id(rec.video_id)
        if vid in seen:
            seen[vid] += 1
            vid = f"{vid}~{seen[vid]}"
        else:
            seen[vid] = 0
        out.append(rec if vid == rec.video_id else _with(rec, video_id=vid))
    return out


def safe_id(text: str) -> str:
    """Make ``text`` usable as a relative folder path: keep letters, digits, ``._-~/``; no empty or dot parts."""
    text = re.sub(r"[^A-Za-z0-9._~/-]+", "_", text.replace("\\", "/"))
    parts = [p for p in text.split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "_"


def _media_files(folder: Path, suffixes: frozenset[str] = MEDIA_SUFFIXES) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and not p.name.startswith("."))


def parse_label(value: object, where: str) -> int:
    """Map ``real``/``fake``/``0``/``1`` (any case, also REAL/FAKE) to 0/1."""
    key = str(value).strip().lower()
    if key.endswith(".0"):
        key = key[:-2]
    if key not in _LABELS:
        raise FakescopeError(f"{where}: label {value!r} is not one of real/fake/0/1")
    return _LABELS[key]


# --------------------------------------------------------------------------------------------------- celebdf
_CELEB_REAL = re.compile(r"^(id\d+)_(\d+)$")
_CELEB_FAKE = re.compile(r"^(id\d+)_(id\d+)_(\d+)$")


@register_adapter("celebdf")
def celebdf_records(root: Path) -> list[MediaRecord]:
    """Celeb-DF v1 and v2.

    Identities come from the file names: ``id0_0001.mp4`` shows ``id0``; the fake ``id0_id1_0001.mp4`` is
    ``id0_0001`` with the face of ``id1`` swapped in, so its ``source_id`` is ``id0_0001`` and its identity
    ``id0``. The donor identity (``id1``) is not linked: swaps connect nearly every celebrity, so linking
    donors would leave one group. ``YouTube-real`` videos have no identity. Videos named in
    ``List_of_testing_videos.txt`` get ``official_split="test"``.
    """
    folders = {"Celeb-real": 0, "YouTube-real": 0, "Celeb-synthesis": 1}
    if not any((root / f).is_dir() for f in folders):
        raise FakescopeError(f"{root}: not a Celeb-DF folder (expected Celeb-real/, Celeb-synthesis/, YouTube-real/)")
    test: set[str] = set()
    listing = root / "List_of_testing_videos.txt"
    if listing.is_file():
        for line in listing.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if parts:
                test.add(parts[-1].replace("\\", "/"))
    records = []
    for folder, label in folders.items():
        for path in _media_files(root / folder, VIDEO_SUFFIXES):
            stem = path.stem
            identity, source = "", stem
            if label == 1 and (m := _CELEB_FAKE.match(stem)):
                identity, source = m.group(1), f"{m.group(1)}_{m.group(3)}"
            elif folder == "Celeb-real" and (m := _CELEB_REAL.match(stem)):
                identity = m.group(1)
            vid = stem if folder != "YouTube-real" else f"yt_{stem}"
            rel = f"{folder}/{path.relative_to(root / folder).as_posix()}"
            records.append(
                MediaRecord(
                    media_path=path,
                    video_id=vid,
                    label=label,
                    source_id=source if folder != "YouTube-real" else vid,
                    identity=identity,
                    manipulation="celebdf_faceswap" if label else "",
                    official_split="test" if rel in test else "",
                )
            )
    if test and not any(r.official_split for r in records):
        logger.warning("%s: List_of_testing_videos.txt names none of the videos found", listing)
    return records


# ------------------------------------------------------------------------------------------------------ dfdc
def _dfdc_record(path: Path, vid: str, label: int, original: str, **extra: object) -> MediaRecord:
    """A DFDC video or face image: a fake is linked to the real video it was made from (its ``source_id``)."""
    original = "" if not label or original.lower() in ("", "nan", "none") else original
    return MediaRecord(
        media_path=path,
        video_id=vid,
        label=label,
        source_id=original or vid,
        manipulation="dfdc" if label else "",
        **extra,
    )


@register_adapter("dfdc")
def dfdc_records(root: Path) -> list[MediaRecord]:
    """DFDC: every ``metadata.json`` under ``root`` (``dfdc_train_part_*/metadata.json``) with its videos.

    ``original`` (for fakes) becomes ``source_id``; a video listed in metadata but missing on disk is skipped
    with a log message (the part may be partially downloaded).
    """
    metas = sorted(root.glob("dfdc_train_part_*/metadata.json")) or sorted(root.rglob("metadata.json"))
    if not metas:
        raise FakescopeError(f"{root}: not a DFDC folder (expected dfdc_train_part_*/metadata.json)")
    records = []
    for meta_path in metas:
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FakescopeError(f"{meta_path}: unreadable metadata.json ({exc})") from exc
        for name, info in sorted(meta.items()):
            path = meta_path.parent / name
            if not path.is_file():
                logger.info("%s: listed in %s but missing", path, meta_path)
                continue
            label = parse_label(info.get("label", ""), f"{meta_path}[{name}]")
            vid = Path(name).stem
            split = str(info.get("split", "") or "")
            original = Path(str(info.get("original") or "")).stem
            records.append(
                _dfdc_record(path, vid, label, original, official_split=split if split in ("val", "test") else "")
            )
    return records


# ------------------------------------------------------------------------------------------------ dfdc-faces
def _dfdc_faces_metadata(root: Path, folder: Path) -> Path | None:
    digits = re.sub(r"\D", "", folder.name) or "0"
    n = int(digits)
    candidates = [
        root / "metadata" / f"{digits}.json",
        root / "metadata" / f"{n:02d}.json",
        root / "metadata" / f"{n}.json",
        root / "metadata" / f"metadata{n}.json",
        root / "metadata" / f"metadata{n:02d}.json",
        root / f"metadata{n}.json",
        root / f"metadata{n:02d}.json",
        folder / "metadata.json",
    ]
    return next((c for c in candidates if c.is_file()), None)


@register_adapter("dfdc-faces")
def dfdc_faces_records(root: Path) -> list[MediaRecord]:
    """Kaggle "deepfake detection faces": ``DeepFakeNN/`` folders of face images plus per-folder metadata JSON.

    The image ``abc.jpg`` is looked up as ``abc.mp4`` in the folder's metadata (``label``, ``split``,
    ``original``). Records are marked ``cropped=True`` (the images are already faces).
    """
    folders = sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"(?i)deepfake\d+", p.name))
    if not folders:
        raise FakescopeError(f"{root}: not a dfdc-faces folder (expected DeepFake00/, DeepFake01/ ... and metadata/)")
    records = []
    for folder in folders:
        meta_path = _dfdc_faces_metadata(root, folder)
        if meta_path is None:
            raise FakescopeError(f"{folder}: no metadata JSON found (expected {root / 'metadata'}/NN.json)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        for path in _media_files(folder, IMAGE_SUFFIXES):
            info = meta.get(f"{path.stem}.mp4") or meta.get(path.name)
            if info is None:
                logger.info("%s: not in %s, skipped", path, meta_path)
                continue
            label = parse_label(info.get("label", ""), f"{meta_path}[{path.stem}]")
            original = Path(str(info.get("original") or "")).stem
            records.append(_dfdc_record(path, path.stem, label, original, cropped=True))
    return records


# -------------------------------------------------------------------------------------------- deepfake-faces
@register_adapter("deepfake-faces")
def deepfake_faces_records(root: Path) -> list[MediaRecord]:
    """Kaggle "deepfake-faces": ``faces_224/*.jpg`` and ``metadata.csv`` (``videoname,label,original``).

    ``videoname`` ``abc.mp4`` is the image ``faces_224/abc.jpg``; a fake's ``original`` (``xyz.mp4``) becomes its
    ``source_id``, so the fake and its original (and every other fake of it) share a split.
    """
    meta_path = root / "metadata.csv"
    folder = next((p for p in (root / "faces_224", root) if p.is_dir() and any(p.glob("*.jpg"))), None)
    if not meta_path.is_file() or folder is None:
        raise FakescopeError(f"{root}: not a deepfake-faces folder (expected faces_224/*.jpg and metadata.csv)")
    with meta_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("videoname", "label") if c not in (reader.fieldnames or [])]
        if missing:
            raise FakescopeError(f"{meta_path}: no column {missing[0]!r} (columns: {reader.fieldnames})")
        rows = list(reader)
    records = []
    for i, row in enumerate(rows):
        vid = Path((row.get("videoname") or "").strip()).stem
        if not vid:
            raise FakescopeError(f"{meta_path} line {i + 2}: no videoname")
        path = folder / f"{vid}.jpg"
        if not path.is_file():
            logger.info("%s: listed in %s but missing", path, meta_path)
            continue
        label = parse_label(row.get("label") or "", f"{meta_path} line {i + 2}")
        records.append(_dfdc_record(path, vid, label, Path((row.get("original") or "").strip()).stem))
    return records


# ------------------------------------------------------------------------------------------------------ ffpp
@register_adapter("ffpp")
def ffpp_records(root: Path) -> list[MediaRecord]:
    """FaceForensics++: originals and every manipulation method and compression present.

    Originals get ``video_id`` ``original/<c>/000``; fakes ``<method>/<c>/000_003`` with
    ``source_id`` ``original/<c>/000`` (the target video; the same id across methods, so every fake of a
    target lands with it). Identity is the target's 3-digit id; a fake's ``group_id`` names the pair
    (``ffpp_pair_000_003``), so the target, the donor and both fakes of a pair share a split, as in the
    official FF++ pair splits. Only ``original_sequences/youtube`` originals are read.
    """
    records = []
    orig = root / "original_sequences"
    manip = root / "manipulated_sequences"
    if not orig.is_dir() and not manip.is_dir():
        raise FakescopeError(
            f"{root}: not a FaceForensics++ folder (expected original_sequences/, manipulated_sequences/)"
        )
    for comp_dir in sorted(p for p in (orig / "youtube").glob("*") if p.is_dir()):
        for path in _media_files(comp_dir / "videos", VIDEO_SUFFIXES):
            vid = f"original/{comp_dir.name}/{path.stem}"
            records.append(
                MediaRecord(
                    media_path=path,
                    video_id=vid,
                    label=0,
                    source_id=f"original/{path.stem}",
                    identity=f"ffpp_{path.stem}",
                    compression=comp_dir.name,
                )
            )
    for method_dir in sorted(p for p in manip.glob("*") if p.is_dir()):
        for comp_dir in sorted(p for p in method_dir.glob("*") if p.is_dir()):
            for path in _media_files(comp_dir / "videos", VIDEO_SUFFIXES):
                parts = path.stem.split("_")
                target = parts[0]
                pair = "_".join(sorted(parts[:2])) if len(parts) >= 2 else target
                records.append(
                    MediaRecord(
                        media_path=path,
                        video_id=f"{method_dir.name}/{comp_dir.name}/{path.stem}",
                        label=1,
                        source_id=f"original/{target}",
                        identity=f"ffpp_{target}",
                        group_id=f"ffpp_pair_{pair}",
                        manipulation=method_dir.name,
                        compression=comp_dir.name,
                    )
                )
    return records


# ---------------------------------------------------------------------------------------------------- folder
@register_adapter("folder")
def folder_records(root: Path) -> list[MediaRecord]:
    """``real/`` and ``fake/`` subfolders (case-insensitive) of videos and/or images."""
    subs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    if "real" not in subs and "fake" not in subs:
        raise FakescopeError(f"{root}: expected real/ and fake/ subfolders")
    records = []
    for name, label in (("real", 0), ("fake", 1)):
        if name not in subs:
            continue
        for path in _media_files(subs[name]):
            rel = path.relative_to(root).with_suffix("").as_posix()
            records.append(
                MediaRecord(media_path=path, video_id=rel, label=label, manipulation="unknown" if label else "")
            )
    return records


# ------------------------------------------------------------------------------------------------------- csv
@register_adapter("csv")
def csv_records(
    root: Path,
    path_col: str = "path",
    label_col: str = "label",
    group_col: str | None = None,
    identity_col: str | None = None,
    source_col: str | None = None,
    manipulation_col: str | None = None,
    split_col: str | None = None,
) -> list[MediaRecord]:
    """A CSV table: ``path`` (relative to the CSV's folder, or absolute) and ``label`` (real/fake/0/1).

    ``group_col`` (e.g. ``group_id``) and ``source_col`` link rows that must share a split;
    ``identity_col`` names the person. ``manipulation_col`` and ``split_col`` (an official split) are optional.
    """
    if root.is_dir():
        tables = sorted(root.glob("*.csv"))
        if len(tables) != 1:
            raise FakescopeError(f"{root}: expected exactly one *.csv here, found {len(tables)}; pass the CSV file")
        root = tables[0]
    with root.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        for name in (path_col, label_col, group_col, identity_col, source_col, manipulation_col, split_col):
            if name is not None and name not in cols:
                raise FakescopeError(f"{root}: no column {name!r} (columns: {cols})")
        rows = list(reader)
    base = root.parent
    records = []
    for i, row in enumerate(rows):
        rel = row[path_col].strip()
        path = Path(rel) if Path(rel).is_absolute() else base / rel
        label = parse_label(row[label_col], f"{root} line {i + 2}")
        vid = Path(rel).with_suffix("").as_posix() if not Path(rel).is_absolute() else path.stem
        split = (row[split_col].strip().lower() if split_col else "") or ""
        records.append(
            MediaRecord(
                media_path=path,
                video_id=vid,
                label=label,
                source_id=(row[source_col].strip() if source_col else "") or "",
                identity=(row[identity_col].strip() if identity_col else "") or "",
                group_id=(row[group_col].strip() if group_col else "") or "",
                manipulation=(row[manipulation_col].strip() if manipulation_col else "")
                or ("unknown" if label else ""),
                official_split=split if split in ("train", "val", "test") else "",
            )
        )
    return records
