"""End-to-end seconds per video of ``fakescope predict`` against the study's pipeline, split by stage.

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=Path, default=_shared() / "dev" / "videos")
    ap.add_argument("--weights", type=Path, default=_shared() / "weights")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--models", default="meso4.mesonet_df,efficientnet_b0")
    ap.add_argument("--runtimes", default="torch,onnx")
    ap.add_argument("--no-baseline", action="store_true", help="Skip the study pipeline.")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "predict.json")
    args = ap.parse_args()

    import onnxruntime
    import torch
    from rich.console import Console
    from rich.table import Table

    from fakescope.data.media import probe_video
    from fakescope.models import create_detector
    from fakescope.predict import Predictor
    from fakescope.utils.io import atomic_write_text

    videos = sorted(args.videos.rglob("*.mp4"))
    if not videos:
        raise SystemExit(f"no .mp4 videos under {args.videos}")
    models = [m for m in args.models.split(",") if m]
    runtimes = [r for r in args.runtimes.split(",") if r]
    mesonet_dir, face_dir = args.weights / "mesonet", args.weights / "mediapipe"
    load_before = os.getloadavg()
    info = {v.name: probe_video(v) for v in videos}
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(0)
    import tempfile

    from PIL import Image
    from skimage import data

    warm_image = Path(tempfile.mkdtemp()) / "warm.png"
    Image.fromarray(data.astronaut()).save(warm_image)

    for model_name in models:
        for runtime in runtimes:
            with Predictor(
                model_name,
                runtime=runtime,
                num_frames=args.frames,
                weights_dir=mesonet_dir if "." in model_name else None,
                detector_weights_dir=face_dir,
            ) as pred:
                s = pred.loaded.input_size
                pred.score_crops(rng.integers(0, 255, (4, s, s, 3), dtype=np.uint8))  # warm-up (lazy init)
                pred.analyze(warm_image)  # imports and first calls of decoder and face detector
                for v in videos:
                    c0 = time.process_time()
                    r = pred.analyze(v)
                    cpu = time.process_time() - c0
                    t = r.timings
                    rows.append(
                        {
                            "video": v.name,
                            "pipeline": "fakescope",
                            "model": model_name,
                            "runtime": runtime,
                            "decode_s": t.get("decode", 0.0),
                            "detect_s": t.get("detect", 0.0),
                            "infer_s": t.get("infer", 0.0),
                            "total_s": t["total"],
                            "cpu_s": cpu,
                            "n_frames": r.n_frames,
                            "n_faces": r.n_faces,
                            "verdict": r.verdict,
                        }
                    )
    if not args.no_baseline:
        nets = {}
        for m in models:
            nets[m] = create_detector(m, weights_dir=mesonet_dir if "." in m else None).eval()
        for v in videos:
            c0 = time.process_time()
            faces, t_dec, t_det, n_frames = study_decode_detect(v, args.frames)
            cpu_dd = time.process_time() - c0
            for m, net in nets.items():
                c1 = time.process_time()
                t_inf = study_infer(net, faces)
                cpu_inf = time.process_time() - c1
                rows.append(
                    {
                        "video": v.name,
                        "pipeline": "study",
                        "model": m,
                        "runtime": "torch-b1",
                        "decode_s": t_dec,
                        "detect_s": t_det,
                        "infer_s": t_inf,
                        "total_s": t_dec + t_det + t_inf,
                        "cpu_s": cpu_dd + cpu_inf,
                        "n_frames": n_frames,
                        "n_faces": len(faces),
                        "verdict": "",
                    }
                )
    base = {(r["video"], r["model"]): r["total_s"] for r in rows if r["pipeline"] == "study"}
    for r in rows:
        b = base.get((r["video"], r["model"]))
        r["speedup_vs_study"] = (b / r["total_s"]) if b and r["pipeline"] == "fakescope" else None

    table = Table(title=f"predict: seconds per video ({args.frames} frames)")
    for col in (
        "video",
        "WxH",
        "pipeline",
        "model",
        "runtime",
        "decode",
        "detect",
        "infer",
        "total",
        "cpu",
        "faces",
        "x study",
    ):
        table.add_column(col, justify="right" if col not in ("video", "pipeline", "model", "runtime") else "left")
    for r in rows:
        vi = info[r["video"]]
        sp = r["speedup_vs_study"]
        table.add_row(
            r["video"],
            f"{vi.width}x{vi.height}",
            r["pipeline"],
            r["model"],
            r["runtime"],
            f"{r['decode_s']:.2f}",
            f"{r['detect_s']:.2f}",
            f"{r['infer_s']:.2f}",
            f"{r['total_s']:.2f}",
            f"{r['cpu_s']:.2f}",
            str(r["n_faces"]),
            "-" if sp is None else f"{sp:.1f}x",
        )
    console = Console(width=160)
    console.print(table)

    hd = [v.name for v in videos if info[v.name].height >= 1080]
    target_rows = [r for r in rows if r["video"] in hd and r["model"] == "efficientnet_b0" and r["runtime"] == "onnx"]
    summary = {
        "effnet_b0_onnx_1080p_max_s": max((r["total_s"] for r in target_rows), default=None),
        "effnet_b0_onnx_1080p_target_s": 3.0,
        "min_speedup_vs_study": min((r["speedup_vs_study"] for r in rows if r["speedup_vs_study"]), default=None),
        "speedup_target": 3.0,
    }
    load_after = os.getloadavg()
    console.print(summary)
    console.print(f"load average before {load_before[0]:.1f}, after {load_after[0]:.1f} (2-core machine is shared)")
    result = {
        "benchmark": "predict",
        "frames": args.frames,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "onnxruntime": onnxruntime.__version__,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "videos": {k: vars(v) for k, v in info.items()},
        "rows": rows,
        "summary": summary,
    }
    atomic_write_text(args.out, json.dumps(result, indent=2))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
