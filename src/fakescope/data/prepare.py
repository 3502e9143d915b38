"""Prepare a dataset: media -> sampled frames -> faces -> lossless crops -> one leak-free manifest.

Output folder layout (``out_dir``)::

    manifest.parquet                      one row per crop (schema: fakescope.data.manifest)
    failures.csv                          path,reason for every input skipped in the last run
    config.yaml, run.json                 resolved options and provenance
    crops/<dataset>/<video_id>/<frame>_<track>.png
    shards/<dataset>/<video_id>.json      per-video "done" marker holding that video's manifest rows

**Resumable.** A video is done once its shard exists (written atomically *after* all its crops, with a
fingerprint of the options that shape the crops). A re-run skips done videos whose fingerprint matches and
redoes the rest (including inputs that failed before). Before a video is (re)processed its crop folder is
removed, so crops of an interrupted attempt never linger.

**No half-written output.** Every crop, shard, ``failures.csv`` and the manifest are written to a temporary
name and renamed. The manifest is assembled once at the end from the shards, so a killed run leaves no
manifest row for unfinished work, and ``prepare`` can simply be run again.

**Face crops as input.** Images (or video frames) that are already face crops are resized whole to ``size``
(one row per image; :func:`fakescope.data.contract.crop_picture`: whole, or the face cut with ``pictures="cut"``). This
happens when ``cropped=True`` (no detection: ``det_score`` 1.0, box = the whole image), when the adapter knows the
dataset holds crops (``dfdc-faces``) and ``cropped`` is not False, or, with ``cropped=None`` (auto), when
:func:`fakescope.data.contract.face_in_crop` finds that the picture is a face crop — the same rule ``predict``
applies, so a crop file is turned into the same model input by both (an image of at most 400 px whose face covers
a quarter of it; when nothing is found, detection is tried once more inside a black border of half its size,
because detectors often miss a face that touches the image borders).

**Parallel.** ``executor="process"`` with ``workers > 1`` uses a process pool (spawned workers, each creating
its own face detector); ``executor="ray"`` runs the same per-video work as Ray actor calls, on a local Ray
instance or the cluster at ``ray_address`` (``out_dir`` must then be a path every node can write). Each parallel
worker decodes with its share of the cores (``threads_per_worker``): several workers that each start one FFmpeg
thread per core only fight over the same cores.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from fakescope.data.adapters import MediaRecord, load_records
from fakescope.data.options import EXECUTORS as EXECUTORS
from fakescope.data.options import PrepareOptions as PrepareOptions
from fakescope.data.options import RunOptions as RunOptions
from fakescope.data.options import default_threads_per_worker as default_threads_per_worker
from fakescope.data.options import default_workers as default_workers
from fakescope.errors import FakescopeError, MediaError
from fakescope.utils.io import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

STAGES = ("decode", "detect", "crop", "write")
SHARD_VERSION = 1
ProgressFn = Callable[[int, int], None]


@dataclass
class ItemResult:
    """Outcome of one input: done now, done earlier (``skipped``), or failed with a reason."""

    media_path: str
    video_id: str
    dataset: str
    ok: bool
    n_rows: int = 0
    reason: str = ""
    skipped: bool = False
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class PrepareResult:
    """What :func:`prepare_dataset` produced.

    Attributes:
        manifest_path: the Parquet manifest (None when no input gave a crop).
        n_rows: rows (crops) in the manifest.
        n_failed: inputs skipped because of an error (listed in ``failures_path``).
        failures_path: ``failures.csv`` (path,reason).
        n_media: inputs the adapter found.
        n_resumed: inputs finished by an earlier run and reused.
        n_processed: inputs processed successfully in this run.
        elapsed_s: wall time of the processing phase.
        timings: seconds summed over processed inputs per stage (decode, detect, crop, write).
    """

    manifest_path: Path | None
    n_rows: int
    n_failed: int
    failures_path: Path
    n_media: int = 0
    n_resumed: int = 0
    n_processed: int = 0
    elapsed_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def shard_path(out_dir: Path, rec: MediaRecord) -> Path:
    """Per-video done marker (and row store) of ``rec``."""
    return out_dir / "shards" / rec.dataset / f"{rec.video_id}.json"


def crop_dir(out_dir: Path, rec: MediaRecord) -> Path:
    """Folder of ``rec``'s crops."""
    return out_dir / "crops" / rec.dataset / rec.video_id


def read_shard(path: Path, fingerprint: str) -> list[dict[str, Any]] | None:
    """Rows of a finished video, or None when the shard is missing, unreadable or made with other options."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("version") != SHARD_VERSION or data.get("fingerprint") != fingerprint:
        return None
    return list(data["rows"])


class _TimedDetector:
    """Wraps a face detector and adds up the time spent in ``detect``."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.seconds = 0.0

    def detect(self, image: np.ndarray) -> list[Any]:
        t0 = time.perf_counter()
        try:
            return self.detector.detect(image)
        finally:
            self.seconds += time.perf_counter() - t0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.detector, name)


def _encode_png(image_rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image_rgb[..., ::-1]))
    if not ok:  # pragma: no cover - cv2 only fails on invalid arrays
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


class PrepareWorker:
    """Processes media records one at a time; creates its face detector on first need and reuses it.

    Used in-process, inside each process-pool task, and as the state of each Ray actor.

    Args:
        opts: what the crops look like.
        out_dir: the output folder.
        threads: CPU threads this worker may use for video decoding and OpenCV (None: the libraries' defaults,
            one per core). Parallel workers get ``cores // workers`` each so that they do not oversubscribe the
            machine; the crops do not depend on it.
        own_process: the worker runs in a process of its own (pool task, Ray actor), so process-wide settings
            (OpenCV's thread count) may be changed.
    """

    def __init__(
        self, opts: PrepareOptions, out_dir: str | Path, threads: int | None = None, own_process: bool = False
    ) -> None:
        self.opts = opts
        self.out_dir = Path(out_dir)
        self.fingerprint = opts.fingerprint()
        self.threads = threads
        self._detector: _TimedDetector | None = None
        if threads and own_process:
            import cv2

            cv2.setNumThreads(int(threads))

    def _get_detector(self) -> _TimedDetector:
        if self._detector is None:
            from fakescope.data.faces import create_face_detector

            self._detector = _TimedDetector(create_face_detector(self.opts.detector, weights_dir=self.opts.weights_dir))
        return self._detector

    def close(self) -> None:
        """Release the face detector."""
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def run(self, rec: MediaRecord) -> ItemResult:
        """Process one input: skip it if already done, else write its crops and then its shard."""
        base = ItemResult(media_path=str(rec.media_path), video_id=rec.video_id, dataset=rec.dataset, ok=False)
        shard = shard_path(self.out_dir, rec)
        rows = read_shard(shard, self.fingerprint)
        if rows is not None:
            base.ok, base.skipped, base.n_rows = True, True, len(rows)
            return base
        cdir = crop_dir(self.out_dir, rec)
        shutil.rmtree(cdir, ignore_errors=True)  # leftovers of an interrupted or older attempt
        timings = dict.fromkeys(STAGES, 0.0)
        try:
            rows = self._process(rec, cdir, timings)
            t0 = time.perf_counter()
            payload = {"version": SHARD_VERSION, "fingerprint": self.fingerprint, "rows": rows}
            atomic_write_text(shard, json.dumps(payload))
            timings["write"] += time.perf_counter() - t0
        except MediaError as exc:
            base.reason = exc.reason
        except Exception as exc:  # one bad input must not stop the batch
            logger.warning("%s: %s", rec.media_path, exc, exc_info=logger.isEnabledFor(logging.DEBUG))
            base.reason = f"{type(exc).__name__}: {exc}"
        else:
            base.ok, base.n_rows = True, len(rows)
        if not base.ok:
            shutil.rmtree(cdir, ignore_errors=True)
        base.timings = timings
        return base

    def _process(self, rec: MediaRecord, cdir: Path, timings: dict[str, float]) -> list[dict[str, Any]]:
        from fakescope.data.media import Frame, media_kind, read_image, sample_frames

        opts = self.opts
        path = Path(rec.media_path)
        t0 = time.perf_counter()
        kind = media_kind(path)
        if kind == "image":
            frames = [Frame(index=0, timestamp=0.0, image=read_image(path))]
        else:
            frames = sample_frames(
                path, num_frames=opts.num_frames, every=opts.every, per_second=opts.per_second, threads=self.threads
            )
        timings["decode"] += time.perf_counter() - t0
        if not frames:
            raise MediaError(path, "no frame could be decoded")
        faces = self._faces(rec, kind, frames, timings)
        if not faces:
            hint = " (pass cropped=True / --cropped if these are face crops)" if kind == "image" else ""
            raise MediaError(path, f"no face found in {len(frames)} sampled frame(s){hint}")
        rows = []
        for face in faces:
            t0 = time.perf_counter()
            data = _encode_png(face[-1])
            timings["crop"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            crop = cdir / f"{int(face[0]):06d}_{int(face[2]):02d}.png"
            atomic_write_bytes(crop, data)
            timings["write"] += time.perf_counter() - t0
            rows.append(_manifest_row(rec, face, crop.relative_to(self.out_dir).as_posix()))
        return rows

    def _faces(self, rec: MediaRecord, kind: str, frames: list, timings: dict[str, float]) -> list[tuple]:
        """``(frame_index, timestamp, track_id, box, score, crop)`` per face: a face-crop picture as the contract
        says, else every detected face of every frame."""
        from fakescope.data.contract import CropContract, crop_picture, face_in_crop

        opts = self.opts
        contract = CropContract(size=opts.size, margin=opts.margin, align=opts.align, pictures=opts.pictures)
        cropped = opts.cropped if opts.cropped is not None else rec.cropped
        whole_face = None
        if kind == "image" and cropped is not False:  # the rule predict applies to every picture
            det = self._get_detector()
            before = det.seconds
            whole_face = face_in_crop(frames[0].image, det)
            timings["detect"] += det.seconds - before
            if cropped is None:
                cropped = whole_face is not None
        t0 = time.perf_counter()
        if cropped:
            faces = []
            for fr in frames:
                h, w = fr.image.shape[:2]
                cut = whole_face is not None and contract.pictures == "cut"
                box = tuple(whole_face.box) if cut else (0.0, 0.0, float(w), float(h))  # the region cropped
                score = whole_face.score if cut else 1.0
                faces.append((fr.index, fr.timestamp, 0, box, score, crop_picture(fr.image, whole_face, contract)))
        else:
            from fakescope.data.faces import extract_faces

            det = self._get_detector()
            before = det.seconds
            found = extract_faces(
                frames, det, size=opts.size, margin=opts.margin, max_faces=opts.max_faces, align=opts.align
            )
            timings["detect"] += det.seconds - before
            timings["crop"] -= det.seconds - before
            faces = [(c.frame_index, c.timestamp, c.track_id, tuple(c.box), c.score, c.image) for c in found]
        timings["crop"] += time.perf_counter() - t0
        return faces


def _manifest_row(rec: MediaRecord, face: tuple, crop_path: str) -> dict[str, Any]:
    """One manifest row: the record's labels and grouping, the face's place and score, the crop file."""
    frame_index, timestamp, track_id, box, score, _ = face
    return {
        "dataset": rec.dataset,
        "video_id": rec.video_id,
        "source_id": rec.source_id or rec.video_id,
        "identity": rec.identity,
        "group_id": rec.group_id,
        "label": int(rec.label),
        "manipulation": rec.manipulation,
        "compression": rec.compression,
        "split": "",
        "media_path": str(rec.media_path),
        "frame_index": int(frame_index),
        "timestamp": float(timestamp),
        "track_id": int(track_id),
        "box_x1": float(box[0]),
        "box_y1": float(box[1]),
        "box_x2": float(box[2]),
        "box_y2": float(box[3]),
        "det_score": float(score),
        "crop_path": crop_path,
        "official_split": rec.official_split,
    }


def _run_chunk(records: list[MediaRecord], opts: PrepareOptions, out_dir: str, threads: int | None) -> list[ItemResult]:
    """Process-pool task: one detector for a chunk of records."""
    worker = PrepareWorker(opts, out_dir, threads=threads, own_process=True)
    try:
        return [worker.run(rec) for rec in records]
    finally:
        worker.close()


def _chunks(items: Sequence[MediaRecord], size: int) -> list[list[MediaRecord]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _run_process(
    records: list[MediaRecord], opts: PrepareOptions, out_dir: Path, workers: int, threads: int | None
) -> Iterable[ItemResult]:
    if workers <= 1:
        worker = PrepareWorker(opts, out_dir, threads=threads)
        try:
            for rec in records:
                yield worker.run(rec)
        finally:
            worker.close()
        return
    # small chunks keep the pool busy and the progress bar moving; large inputs amortise detector start-up
    chunk = max(1, min(16, len(records) // (workers * 8)))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    try:
        pending = {pool.submit(_run_chunk, c, opts, str(out_dir), threads) for c in _chunks(records, chunk)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield from fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise FakescopeError("executor='ray' needs Ray: pip install 'fakescope[ray]'") from exc
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to Ray (``address``) or start a quiet local instance; return True when this call started it."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:
        kwargs["num_cpus"] = num_cpus
    ray.init(address=address, **kwargs)
    return True


def _run_ray(
    records: list[MediaRecord],
    opts: PrepareOptions,
    out_dir: Path,
    workers: int,
    address: str | None,
    threads: int | None,
) -> Iterable[ItemResult]:
    ray = _import_ray()
    from ray.util import ActorPool

    started = init_ray(address, num_cpus=max(1, workers))
    actors: list[Any] = []
    try:
        actor_cls = ray.remote(num_cpus=1)(PrepareWorker)
        actors = [actor_cls.remote(opts, str(out_dir), threads, True) for _ in range(max(1, workers))]
        pool = ActorPool(actors)
        yield from pool.map_unordered(lambda actor, rec: actor.run.remote(rec), records)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


def _clean_temporaries(out_dir: Path) -> None:
    """Remove temporary files an interrupted run left in the shard folders (crop folders are redone anyway)."""
    shards = out_dir / "shards"
    if shards.is_dir():
        for tmp in shards.rglob(".*.tmp*"):
            tmp.unlink(missing_ok=True)
    for tmp in out_dir.glob(".*.tmp*"):
        tmp.unlink(missing_ok=True)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def write_failures(path: Path, failures: list[ItemResult]) -> Path:
    """Write ``failures.csv`` (path,reason) atomically; header only when nothing failed."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "reason"])
    for f in failures:  # undecodable bytes of a file name shown as \xNN, so the CSV is always UTF-8
        writer.writerow([os.fsencode(f.media_path).decode("utf-8", "backslashreplace"), f.reason])
    atomic_write_text(path, buf.getvalue())
    return path


def assemble_manifest(records: Sequence[MediaRecord], out_dir: Path, fingerprint: str) -> Any:
    """Concatenate the shards of ``records`` (finished ones only) into a manifest DataFrame."""
    import pandas as pd

    from fakescope.data.manifest import empty_manifest, normalize_manifest

    rows: list[dict[str, Any]] = []
    for rec in records:
        got = read_shard(shard_path(out_dir, rec), fingerprint)
        if got:
            rows.extend(got)
    if not rows:
        return empty_manifest()
    df = normalize_manifest(pd.DataFrame(rows))
    df["official_split"] = df["official_split"].fillna("").astype("string")
    return df


def _split_values(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword values -> (PrepareOptions fields, RunOptions fields); an unknown key is a TypeError naming all."""
    crop_keys, run_keys = set(PrepareOptions.__dataclass_fields__), set(RunOptions.__dataclass_fields__)
    unknown = sorted(set(values) - crop_keys - run_keys)
    if unknown:
        raise TypeError(f"prepare_dataset: unknown option(s) {unknown}; valid: {sorted(crop_keys | run_keys)}")
    crop = {k: v for k, v in values.items() if k in crop_keys}
    if crop.get("weights_dir") is not None:
        crop["weights_dir"] = str(crop["weights_dir"])
    return crop, {k: v for k, v in values.items() if k in run_keys}


def _check_options(opts: PrepareOptions) -> None:
    from fakescope.data.contract import PICTURE_MODES

    if opts.size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {opts.size}")
    if opts.pictures not in PICTURE_MODES:
        raise ValueError(f"unknown pictures mode {opts.pictures!r}; choose one of {list(PICTURE_MODES)}")


def _usable_records(recs: list[MediaRecord], kind: str) -> tuple[list[MediaRecord], list[ItemResult]]:
    """Records with a dataset name and UTF-8 names, and a failure row for each one whose name is not UTF-8."""
    recs = [r if r.dataset else replace(r, dataset=kind) for r in recs]
    unnamable = [r for r in recs if not _utf8(str(r.media_path)) or not _utf8(r.video_id)]
    recs = [r for r in recs if r not in unnamable]  # a manifest holds UTF-8 text: such names get a failure row
    if len({(r.dataset, r.video_id) for r in recs}) != len(recs):
        raise ValueError("records must have unique (dataset, video_id) pairs")
    reason = "file name is not valid UTF-8 (rename the file)"
    failures = [ItemResult(str(r.media_path), r.video_id, r.dataset, ok=False, reason=reason) for r in unnamable]
    return recs, failures


def _run_items(
    todo: list[MediaRecord], opts: PrepareOptions, run: RunOptions, out: Path, progress: ProgressFn | None
) -> tuple[list[ItemResult], dict[str, float], int, float]:
    """Process the inputs that need work: (failures, summed stage timings, inputs processed now, seconds)."""
    failures: list[ItemResult] = []
    timings = dict.fromkeys(STAGES, 0.0)
    n_processed = 0
    if progress is not None:
        progress(0, len(todo))
    t_start = time.perf_counter()
    results: Iterable[ItemResult] = ()
    if todo and run.executor == "ray":
        results = _run_ray(todo, opts, out, run.workers, run.ray_address, run.threads)
    elif todo:
        results = _run_process(todo, opts, out, run.workers, run.threads)
    for done, res in enumerate(results, start=1):
        if res.ok:
            n_processed += 0 if res.skipped else 1
        else:
            failures.append(res)
            logger.info("skipped %s: %s", res.media_path, res.reason)
        for k, v in res.timings.items():
            timings[k] = timings.get(k, 0.0) + v
        if progress is not None:
            progress(done, len(todo))
    return failures, timings, n_processed, time.perf_counter() - t_start


def _pending(recs: list[MediaRecord], out: Path, fingerprint: str) -> list[MediaRecord]:
    """The records with no finished shard of these options in ``out`` (the rest resume; logged)."""
    _clean_temporaries(out)
    todo = [r for r in recs if read_shard(shard_path(out, r), fingerprint) is None]
    if len(todo) < len(recs):
        logger.info("resuming: %d of %d inputs already done", len(recs) - len(todo), len(recs))
    return todo


def _record_run(
    out: Path,
    kind: str,
    root: str | Path | None,
    opts: PrepareOptions,
    run: RunOptions,
    adapter_options: dict[str, Any] | None,
) -> None:
    """Write the run record into ``out``: ``config.yaml`` (command, inputs, every resolved option), ``run.json``."""
    from fakescope.utils.runinfo import write_run_info

    root_str = str(Path(root).expanduser().resolve()) if root is not None else None
    config = {"command": "prepare", "kind": kind, "root": root_str, "out_dir": str(out), **asdict(opts)}
    config.update(asdict(run), threads_per_worker=run.threads, split_ratios=list(run.split_ratios))
    write_run_info(out, {**config, "adapter_options": dict(adapter_options or {})})


def prepare_dataset(
    kind: str,
    root: str | Path,
    out_dir: str | Path,
    options: PrepareOptions | None = None,
    *,
    run: RunOptions | None = None,
    adapter_options: dict[str, Any] | None = None,
    records: Sequence[MediaRecord] | None = None,
    progress: ProgressFn | None = None,
    **values: Any,
) -> PrepareResult:
    """Turn the dataset ``kind`` at ``root`` into face crops and a manifest under ``out_dir``.

    Args:
        kind: dataset adapter (``fakescope.data.adapters.list_adapters()``).
        root: dataset folder (for ``csv``: the CSV file or its folder).
        out_dir: output folder (created); re-running on it resumes.
        options: how the crops are made (:class:`PrepareOptions`; default: its defaults).
        run: how the run executes: workers, executor, threads, split seed and ratios (:class:`RunOptions`).
        adapter_options: extra options for the adapter (``csv``: ``group_col`` ...).
        records: use these records instead of calling the adapter (for tests and custom sources).
        progress: called as ``progress(done, total)`` after each input that needed work.
        **values: fields of either options class by name (``size=160, workers=2``), over ``options`` / ``run``.

    Returns:
        A :class:`PrepareResult`.

    Raises:
        ValueError: bad options. TypeError: an option that neither class has.
        FakescopeError: unusable dataset layout, or no input produced a crop.
    """
    from fakescope.data.faces import resolve_blazeface_weights
    from fakescope.data.manifest import MANIFEST_NAME, write_manifest
    from fakescope.data.splits import assign_splits

    crop_values, run_values = _split_values(values)
    opts = replace(options or PrepareOptions(), **crop_values)
    run = replace(run or RunOptions(), **run_values)
    _check_options(opts)
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    recs = list(records) if records is not None else load_records(kind, root, **(adapter_options or {}))
    if opts.detector == "blazeface" and opts.cropped is not True:  # fail once, up front, not once per input
        resolve_blazeface_weights(weights_dir=opts.weights_dir)
    recs, failures = _usable_records(recs, kind)
    n_unnamable = len(failures)
    fingerprint = opts.fingerprint()
    todo = _pending(recs, out, fingerprint)
    n_resumed = len(recs) - len(todo)
    failed, timings, n_processed, elapsed = _run_items(todo, opts, run, out, progress)
    order = {str(r.media_path): i for i, r in enumerate(recs)}
    failures = sorted(failures + failed, key=lambda f: order.get(f.media_path, math.inf))
    failures_path = write_failures(out / "failures.csv", failures)
    df = assemble_manifest(recs, out, fingerprint)
    manifest_path: Path | None = None
    if len(df):
        df = assign_splits(df, seed=run.seed, ratios=run.split_ratios)
        manifest_path = write_manifest(df, out / MANIFEST_NAME)
    _record_run(out, kind, root, opts, run, adapter_options)
    if manifest_path is None:
        raise FakescopeError(f"{root}: no input produced a face crop ({len(failures)} failed; see {failures_path})")
    return PrepareResult(
        manifest_path=manifest_path,
        n_rows=len(df),
        n_failed=len(failures),
        failures_path=failures_path,
        n_media=len(recs) + n_unnamable,
        n_resumed=n_resumed,
        n_processed=n_processed,
        elapsed_s=elapsed,
        timings=timings,
    )
