"""Face-detector benchmark: milliseconds per frame at 720p / 1080p and detection rate on the dev videos.

Compares the default BlazeFace backend (and its variants) against the Haar-cascade baseline, measured in the
same run. Every sampled frame of the dev videos shows a face, so the detection rate is the share of sampled
frames with at least one face. Prints a table and writes JSON (``--out``).

    .venv/bin/python benchmarks/faces.py --frames 32
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from fakescope.data.faces import create_face_detector
from fakescope.data.media import sample_frames
from fakescope.utils.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

CONFIGS = {
    "blazeface": ("blazeface", {}),  # default: full range, tiles only when the whole frame finds nothing
    "blazeface_tiles": ("blazeface", {"tiling": "always"}),
    "blazeface_whole": ("blazeface", {"tiling": "off"}),
    "blazeface_short": ("blazeface", {"variant": "short"}),
    "haar": ("haar", {}),  # baseline: OpenCV Haar cascade on a frame downscaled to 640 px
}
BASELINE = "haar"


def _time_detect(det, images: list[np.ndarray], repeats: int) -> dict:
    det.detect(images[0])  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        for img in images:
            t, c = time.perf_counter(), time.process_time()
            det.detect(img)
            wall.append(1000 * (time.perf_counter() - t))
            cpu.append(1000 * (time.process_time() - c))
    return {"wall_ms": statistics.median(wall), "cpu_ms": statistics.median(cpu)}


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, default=SHARED / "dev" / "videos", help="folder of dev videos")
    ap.add_argument("--weights-dir", type=Path, default=SHARED / "weights" / "mediapipe")
    ap.add_argument("--frames", type=int, default=32, help="frames sampled per video")
    ap.add_argument("--repeats", type=int, default=1, help="timing passes over the 1080p/720p frames")
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "faces.json")
    args = ap.parse_args()

    videos = sorted(args.dev.rglob("*.mp4"))
    if not videos:
        raise SystemExit(f"no videos under {args.dev}")
    frames = {v.name: [f.image for f in sample_frames(v, num_frames=args.frames)] for v in videos}
    hd = [img for imgs in frames.values() for img in imgs if img.shape[:2] == (1080, 1920)][:16]
    if not hd:
        raise SystemExit("no 1080p dev video to time on")
    timing_sets = {
        "1080p": hd,
        "720p": [cv2.resize(img, (1280, 720), interpolation=cv2.INTER_AREA) for img in hd],
    }

    results: dict[str, dict] = {}
    for name in args.configs:
        backend, kw = CONFIGS[name]
        det = create_face_detector(backend, weights_dir=args.weights_dir, **kw)
        try:
            res: dict = {"backend": backend, "options": kw, "timing": {}, "rate": {}}
            for label, images in timing_sets.items():
                res["timing"][label] = _time_detect(det, images, args.repeats)
            for video, imgs in frames.items():
                hits = sum(bool(det.detect(img)) for img in imgs)
                res["rate"][video] = hits / len(imgs)
            res["min_rate"] = min(res["rate"].values())
        finally:
            det.close()
        results[name] = res

    base = results.get(BASELINE)
    header = f"{'detector':<17} {'1080p ms':>9} {'(cpu)':>6} {'720p ms':>8} {'(cpu)':>6} {'x haar':>7} " + " ".join(
        f"{v[:16]:>16}" for v in frames
    )
    print(header)
    print("-" * len(header))
    for name, res in results.items():
        t10, t7 = res["timing"]["1080p"], res["timing"]["720p"]
        speedup = base["timing"]["1080p"]["cpu_ms"] / t10["cpu_ms"] if base else float("nan")
        res["speedup_vs_haar_1080p_cpu"] = speedup
        rates = " ".join(f"{100 * res['rate'][v]:>15.1f}%" for v in frames)
        print(
            f"{name:<17} {t10['wall_ms']:>9.1f} {t10['cpu_ms']:>6.1f} {t7['wall_ms']:>8.1f} {t7['cpu_ms']:>6.1f} "
            f"{speedup:>7.1f} {rates}"
        )
    print("ms = median wall time per frame (cpu = process CPU time); x haar = speed-up over the Haar baseline (CPU).")
    out = {
        "frames_per_video": args.frames,
        "timing_frames": len(hd),
        "targets": {"min_rate": 0.95, "max_ms_1080p": 30.0},
        "results": results,
    }
    atomic_write_text(args.out, json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
