"""Prepare benchmark: videos/min and seconds per stage (decode, detect, crop, write) on the dev videos.

Runs ``fakescope.data.prepare.prepare_dataset`` with 1 and 2 workers and, in the same run, a baseline that does
what the study did: ``cv2.VideoCapture`` seeking to each wanted frame with ``CAP_PROP_POS_FRAMES``, then face
detection on the full-resolution frame (OpenCV Haar cascade at full resolution, the usual Kaggle-notebook
route; a second baseline row uses BlazeFace on the seeked frames to separate the decode gain from the detector
gain), crops cut and written as PNG. Prints a table and writes JSON (``--out``).

    .venv/bin/python benchmarks/prepare.py --frames 32
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from fakescope.data.adapters import load_records
from fakescope.data.faces import create_face_detector, crop_face
from fakescope.data.prepare import prepare_dataset
from fakescope.utils.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
STAGES = ("decode", "detect", "crop", "write")


def study_baseline(videos: list[Path], frames: int, detector, size: int, out_dir: Path) -> dict:
    """Seek to each frame with cv2, detect on the full-resolution frame, crop, write PNG."""
    timings = dict.fromkeys(STAGES, 0.0)
    n_frames = n_with_face = 0
    t_start = time.perf_counter()
    for v, path in enumerate(videos):
        cap = cv2.VideoCapture(str(path))
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = sorted({round(x) for x in np.linspace(0, total - 1, frames)})
        for idx in wanted:
            t = time.perf_counter()
            cap.set(cv2.CAP_PROP_POS_FRAMES, idx)
            ok, bgr = cap.read()
            timings["decode"] += time.perf_counter() - t
            if not ok:
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            t = time.perf_counter()
            faces = detector.detect(rgb)
            timings["detect"] += time.perf_counter() - t
            n_frames += 1
            n_with_face += bool(faces)
            t = time.perf_counter()
            crops = [cv2.cvtColor(crop_face(rgb, f.box, size, 0.3), cv2.COLOR_RGB2BGR) for f in faces]
            timings["crop"] += time.perf_counter() - t
            t = time.perf_counter()
            for k, crop in enumerate(crops):
                cv2.imwrite(str(out_dir / f"{v}_{idx:06d}_{k}.png"), crop)
            timings["write"] += time.perf_counter() - t
        cap.release()
    elapsed = time.perf_counter() - t_start
    return {"elapsed_s": elapsed, "stages_s": timings, "face_rate": n_with_face / max(n_frames, 1)}


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, default=SHARED / "dev" / "videos", help="folder with real/ and fake/ videos")
    ap.add_argument("--weights-dir", type=Path, default=SHARED / "weights" / "mediapipe")
    ap.add_argument("--frames", type=int, default=32, help="frames sampled per video")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--skip-haar", action="store_true", help="skip the (slow) full-resolution Haar baseline")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "prepare.json")
    args = ap.parse_args()

    records = load_records("folder", args.dev)
    videos = [r.media_path for r in records]
    n = len(videos)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # warm-up (imports, detector start-up, page cache); not timed
        prepare_dataset(
            "folder", args.dev, tmp / "warmup", num_frames=2, weights_dir=args.weights_dir, records=records[:1]
        )
        for w in args.workers:
            res = prepare_dataset(
                "folder",
                args.dev,
                tmp / f"ours_w{w}",
                size=args.size,
                num_frames=args.frames,
                weights_dir=args.weights_dir,
                workers=w,
            )
            results[f"fakescope, {w} worker{'s' if w > 1 else ''}"] = {
                "elapsed_s": res.elapsed_s,
                "stages_s": res.timings,
                "crops": res.n_rows,
                "failed": res.n_failed,
            }
        baselines = [("study: cv2 seek + BlazeFace", create_face_detector("blazeface", weights_dir=args.weights_dir))]
        if not args.skip_haar:
            baselines.insert(0, ("study: cv2 seek + Haar full-res", create_face_detector("haar", max_side=100_000)))
        for name, det in baselines:
            out = tmp / name.replace(" ", "_").replace(":", "").replace("+", "")
            out.mkdir()
            results[name] = study_baseline(videos, args.frames, det, args.size, out)
            det.close()

    base_name = next(k for k in results if k.startswith("study"))
    base = results[base_name]["elapsed_s"]
    for r in results.values():
        r["videos_per_min"] = 60 * n / r["elapsed_s"]
        r["speedup_vs_baseline"] = base / r["elapsed_s"]
        r["per_video_stage_s"] = {k: v / n for k, v in r["stages_s"].items()}

    header = f"{'run':34s} {'videos/min':>10s} {'x base':>7s} " + " ".join(f"{s + ' s/v':>10s}" for s in STAGES)
    print(f"{n} dev videos, {args.frames} frames each, crops {args.size}px, {os.cpu_count()} CPUs")
    print(f"baseline = {base_name!r}; stage seconds are per video, summed over workers")
    print(header)
    for name, r in results.items():
        stages = " ".join(f"{r['per_video_stage_s'][s]:10.3f}" for s in STAGES)
        print(f"{name:34s} {r['videos_per_min']:10.1f} {r['speedup_vs_baseline']:7.2f} {stages}")
    payload = {
        "benchmark": "prepare",
        "videos": [str(v) for v in videos],
        "frames": args.frames,
        "size": args.size,
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "baseline": base_name,
        "results": results,
    }
    atomic_write_text(args.out, json.dumps(payload, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
