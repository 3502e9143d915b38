"""``fakescope predict`` against the decode floor, on every core, at start-up, and the study's pipeline.

Sections (all measured in one run, each against its baseline in the same run):

- ``videos``: per dev video, the decode-only time (PyAV, every frame decoded, 32 converted to RGB) and
  fakescope's end-to-end time, measured alternately (``--repeats``, medians), their ratio, per stage; also the
  pipeline as it was before issue 13 (every frame decoded, then detection, then inference, one after another)
  and the opt-in ``keyframes`` sampling, with its verdicts beside the default ones.
- ``folder``: files per minute over a folder of videos with one single-threaded worker, one process using
  every core, and ``--workers`` all cores (worker start-up included).
- ``startup``: process start to exit of ``fakescope predict`` on one small image (default runtime and torch).
- ``service``: p50/p95 of 20 concurrent image uploads (``benchmarks/serve.py``) with 1 worker and with one
  worker per core.
- ``study`` (``--study``): the older comparison below.

Older comparison, end-to-end seconds per video of ``fakescope predict`` against the study's pipeline:

fakescope: PyAV sequential decode keeping only the wanted frames (``sample_frames``), BlazeFace on a downscaled
frame, crops from full resolution, batched inference in eager PyTorch or ONNX Runtime.
Study pipeline (baseline, measured in the same run): ``cv2.VideoCapture`` seeking to every wanted frame with
``CAP_PROP_POS_FRAMES``, OpenCV's Haar cascade on the full-resolution frame, eager PyTorch with batch size 1.
The baseline's decode and detection do not depend on the model, so they are measured once per video and its
inference once per model.

Usage: ``python benchmarks/predict.py [--videos DIR] [--frames 32] [--models meso4.mesonet_df,efficientnet_b0]``.
``efficientnet_b0`` runs with random weights (speed only). Timings on a shared machine are noisy: the load
average before and after is recorded, and so is the CPU time of this process per video (``cpu``: all
threads together; on an idle 2-core machine the wall time lies between ``cpu / 2`` and ``cpu``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from _baselines import decode_only

REPO = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    env = os.environ.get("FAKESCOPE_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def study_decode_detect(video: Path, num_frames: int) -> tuple[list[tuple[np.ndarray, tuple]], float, float, int]:
    """Seek per frame with cv2, Haar on full resolution; return (frame, box) pairs and stage seconds."""
    import cv2

    from fakescope.data.faces import HaarDetector

    haar = HaarDetector(max_side=None)
    t0 = time.perf_counter()
    cap = cv2.VideoCapture(str(video))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for idx in np.linspace(0, n - 1, num_frames).round().astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(idx))
        ok, bgr = cap.read()
        if ok:
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    t1 = time.perf_counter()
    faces = []
    for img in frames:
        for face in haar.detect(img):
            faces.append((img, face.box))
    t2 = time.perf_counter()
    return faces, t1 - t0, t2 - t1, len(frames)


def study_infer(model: Any, faces: list[tuple[np.ndarray, tuple]]) -> float:
    """Eager PyTorch, one crop at a time."""
    import torch

    from fakescope.data.faces import crop_face

    size = model.cfg.input_size
    t0 = time.perf_counter()
    with torch.inference_mode():
        for img, box in faces:
            crop = crop_face(img, box, size)
            x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
            torch.sigmoid(model(x))
    return time.perf_counter() - t0


def before_pipeline(pred: Any, path: Path) -> tuple[float, float | None]:
    """The pre-issue-13 path: decode every frame, then detect and cut, then infer (no overlap)."""
    from fakescope.data.faces import extract_faces
    from fakescope.data.media import sample_frames
    from fakescope.predict import aggregate_tracks

    t = time.perf_counter()
    c = pred.contract
    frames = sample_frames(path, num_frames=pred.num_frames, skip_nonref=False)
    crops = extract_faces(
        frames, pred.face_detector, size=c.cut_size, margin=c.margin, align=c.align, interpolation=c.interpolation
    )
    probs = pred.score_crops(np.stack([c.model_input(x.image) for x in crops])) if crops else []
    from fakescope.predict import FrameScore

    fs = [
        FrameScore(x.frame_index, x.timestamp, x.track_id, x.box, float(p)) for x, p in zip(crops, probs, strict=True)
    ]
    prob = aggregate_tracks(fs, pred.aggregation)[1] if fs else None
    return time.perf_counter() - t, prob


def bench_videos(videos: list[Path], args: argparse.Namespace, face_dir: Path) -> list[dict[str, Any]]:
    """Decode-only vs end to end, alternating, per video and runtime."""
    from fakescope import DEFAULT_DETECTOR
    from fakescope.predict import Predictor

    rows = []
    for runtime in args.runtimes.split(","):
        kw = {"runtime": runtime, "detector_weights_dir": face_dir, "num_frames": args.frames}
        with Predictor(DEFAULT_DETECTOR, **kw) as pred, Predictor(DEFAULT_DETECTOR, sampling="keyframes", **kw) as kf:
            for v in videos:
                pred.analyze(v), kf.analyze(v), decode_only(v)  # warm-up
                dec, e2e, old, key, stages = [], [], [], [], []
                for _ in range(args.repeats):
                    dec.append(decode_only(v))
                    r = pred.analyze(v)
                    e2e.append(r.timings["total"])
                    stages.append(r.timings)
                    t_old, p_old = before_pipeline(pred, v)
                    old.append(t_old)
                    rk = kf.analyze(v)
                    key.append(rk.timings["total"])
                d, e, o, k = (float(np.median(x)) for x in (dec, e2e, old, key))
                rows.append(
                    {
                        "video": v.name,
                        "runtime": pred.runtime,
                        "decode_only_s": d,
                        "end_to_end_s": e,
                        "ratio_vs_decode_only": e / d,
                        "before_s": o,
                        "before_ratio_vs_decode_only": o / d,
                        "speedup_vs_before": o / e,
                        "stages_s": {s: float(np.median([t.get(s, 0.0) for t in stages])) for s in stages[0]},
                        "keyframes_s": k,
                        "keyframes_ratio_vs_decode_only": k / d,
                        "verdict": r.verdict,
                        "fake_prob": r.fake_prob,
                        "before_fake_prob": p_old,
                        "keyframes_verdict": rk.verdict,
                        "keyframes_fake_prob": rk.fake_prob,
                        "keyframes_frames": rk.n_frames,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_folder(videos: list[Path], args: argparse.Namespace, face_dir: Path) -> dict[str, Any]:
    """Files per minute over a folder of videos (each dev video ``--folder-copies`` times)."""
    from fakescope import DEFAULT_DETECTOR
    from fakescope.batch import analyze_files, default_workers

    files = [(v, None) for v in videos] * args.folder_copies
    kw = {"model": DEFAULT_DETECTOR, "runtime": "auto", "detector_weights_dir": face_dir, "num_frames": args.frames}
    cores = default_workers()
    out: dict[str, Any] = {"files": len(files), "cores": cores}
    for label, workers, threads in (
        ("one_worker_one_thread", 1, 1),
        ("one_process_all_cores", 1, None),
        ("all_workers", cores, None),
    ):
        t = time.perf_counter()
        results = list(analyze_files(files, kw, workers=workers, threads=threads))
        wall = time.perf_counter() - t
        out[label] = {
            "workers": workers,
            "threads": threads,
            "wall_s": wall,
            "files_per_minute": 60 * len(files) / wall,
            "errors": sum(r.verdict == "error" for r in results),
        }
        print(label, out[label], flush=True)
    base = out["one_worker_one_thread"]["files_per_minute"]
    out["all_vs_one_single_threaded"] = out["all_workers"]["files_per_minute"] / base
    out["all_vs_one_process_all_cores"] = (
        out["all_workers"]["files_per_minute"] / out["one_process_all_cores"]["files_per_minute"]
    )
    return out


def bench_startup(image: Path, face_dir: Path, repeats: int) -> dict[str, Any]:
    """Seconds from process start to exit of ``fakescope predict IMAGE`` (median of ``repeats``)."""
    import subprocess
    import sys

    env = {**os.environ, "FAKESCOPE_FACE_WEIGHTS_DIR": str(face_dir)}
    out: dict[str, Any] = {}
    for label, extra in (("default", []), ("torch", ["--runtime", "torch"])):
        cmd = [sys.executable, "-m", "fakescope", "predict", str(image), "--json", *extra]
        subprocess.run(cmd, env=env, capture_output=True, check=True)  # first run: caches, ONNX export
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            subprocess.run(cmd, env=env, capture_output=True, check=True)
            times.append(time.perf_counter() - t)
        out[label] = {"median_s": float(np.median(times)), "runs_s": times}
    out["torch_vs_default"] = out["torch"]["median_s"] / out["default"]["median_s"]
    return out


def bench_service(args: argparse.Namespace) -> dict[str, Any]:
    """``benchmarks/serve.py`` with one worker and with one worker per core: p50/p95 of 20 concurrent uploads."""
    import subprocess
    import sys
    import tempfile

    from fakescope.batch import default_workers

    out: dict[str, Any] = {}
    for workers in sorted({1, default_workers()}):
        dest = Path(tempfile.mkdtemp()) / "serve.json"
        cmd = [sys.executable, str(REPO / "benchmarks" / "serve.py"), "--requests", "20", "--concurrency", "20"]
        subprocess.run([*cmd, "--workers", str(workers), "--out", str(dest)], check=True, capture_output=True)
        rep = json.loads(dest.read_text())
        out[f"workers_{workers}"] = {"workers": workers, **rep.get("service_concurrent", {})}
        print("service", workers, out[f"workers_{workers}"], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=Path, default=_shared() / "dev" / "videos")
    ap.add_argument("--weights", type=Path, default=_shared() / "weights")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--runtimes", default="onnx,torch", help="runtimes of the per-video section")
    ap.add_argument("--folder-copies", type=int, default=2, help="each dev video this many times in the folder")
    ap.add_argument("--sections", default="videos,folder,startup,service")
    ap.add_argument("--study", action="store_true", help="also run the older comparison with the study pipeline")
    ap.add_argument("--models", default="meso4.mesonet_df,efficientnet_b0", help="models of --study")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "predict.json")
    args = ap.parse_args()

    from PIL import Image

    from fakescope.data.media import probe_video
    from fakescope.utils.io import atomic_write_text

    videos = sorted(args.videos.rglob("*.mp4"))
    if not videos:
        raise SystemExit(f"no .mp4 videos under {args.videos}")
    face_dir = args.weights / "mediapipe"
    sections = set(args.sections.split(","))
    result: dict[str, Any] = {
        "benchmark": "predict",
        "frames": args.frames,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_before": os.getloadavg(),
        },
        "videos_info": {v.name: vars(probe_video(v)) for v in videos},
    }
    if "startup" in sections:
        import tempfile

        image = Path(tempfile.mkdtemp()) / "face.png"
        src = sorted((_shared() / "dev" / "images").rglob("*.png"))
        Image.open(src[0]).save(image) if src else Image.new("RGB", (128, 128)).save(image)
        result["startup"] = bench_startup(image, face_dir, args.repeats)
        print("startup", result["startup"], flush=True)
    if "videos" in sections:
        result["videos"] = bench_videos(videos, args, face_dir)
    if "folder" in sections:
        result["folder"] = bench_folder(videos, args, face_dir)
    if "service" in sections:
        result["service"] = bench_service(args)
    if args.study:
        result["study"] = study(videos, args)
    result["machine"]["loadavg_after"] = os.getloadavg()
    atomic_write_text(args.out, json.dumps(result, indent=2, default=str))
    print(
        f"wrote {args.out}; load average before {result['machine']['loadavg_before'][0]:.1f}, after "
        f"{result['machine']['loadavg_after'][0]:.1f}"
    )


def study(videos: list[Path], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The older comparison: fakescope against the study pipeline (cv2 seeking, Haar, batch 1)."""
    from fakescope.models import create_detector
    from fakescope.predict import Predictor

    mesonet_dir, face_dir = args.weights / "mesonet", args.weights / "mediapipe"
    models = [m for m in args.models.split(",") if m]
    rows: list[dict[str, Any]] = []
    for model_name in models:
        with Predictor(
            model_name,
            runtime="onnx",
            num_frames=args.frames,
            weights_dir=mesonet_dir if "." in model_name else None,
            detector_weights_dir=face_dir,
        ) as pred:
            pred.analyze(videos[0])
            for v in videos:
                r = pred.analyze(v)
                rows.append({"video": v.name, "pipeline": "fakescope", "model": model_name, **r.timings})
    for v in videos:
        faces, t_dec, t_det, _ = study_decode_detect(v, args.frames)
        for m in models:
            net = create_detector(m, weights_dir=mesonet_dir if "." in m else None).eval()
            t_inf = study_infer(net, faces)
            rows.append({"video": v.name, "pipeline": "study", "model": m, "total": t_dec + t_det + t_inf})
    return rows


if __name__ == "__main__":
    main()
