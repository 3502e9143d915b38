"""Peak memory of one analysis: a 1080p clip (baseline) against an 8K clip and a 12000x12000 JPEG.

Each input is analysed in a fresh Python process, once the way ``fakescope predict`` does (``Predictor.analyze``)
and once the way a service job does (``fakescope.serve.worker.run_analysis``); the process samples its resident
memory (VmRSS) every 5 ms during the analysis and reports the peak, the memory with the models loaded, and the
increment between them (the part that could grow with the input). The 8K clip and the big JPEG are made here
(PyAV, Pillow) and are tiny on disk.
Decoding is bounded (:data:`fakescope.data.media.MAX_WORKING_SIDE`), so the peaks should stay near the 1080p
clip's. Prints a table and writes JSON (``--out``).

    .venv/bin/python benchmarks/memory.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from fakescope.utils.io import atomic_write_text
from fakescope.utils.runinfo import run_metadata

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

_DRIVER = r"""
import json, resource, sys, threading, time
from pathlib import Path
from fakescope.predict import Predictor

def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

mode, path, faces = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
with Predictor(detector_weights_dir=faces) as pred:
    base, peak, done = rss_mb(), [0.0], threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.005)
    t = threading.Thread(target=sample)
    t.start()
    if mode == "predict":
        res = pred.analyze(path).to_dict()
    else:
        from fakescope.serve.worker import run_analysis
        res, _ = run_analysis(pred, path, filename=path.name, evidence_dir=None)
    done.set()
    t.join()
print(json.dumps({"verdict": res["verdict"], "error": res.get("error"), "n_faces": res["n_faces"],
                  "loaded_mb": base, "peak_mb": max(peak[0], rss_mb()), "increment_mb": max(peak[0], rss_mb()) - base,
                  "process_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_inputs(folder: Path) -> dict[str, Path]:
    """The 8K clip and the 12000x12000 JPEG (a face pasted on a flat background, so there is a face to find)."""
    import av
    from PIL import Image
    from skimage import data

    face = data.astronaut()
    big = folder / "12000x12000.jpg"
    canvas = Image.new("RGB", (12000, 12000), (70, 90, 110))
    canvas.paste(Image.fromarray(face).resize((9000, 9000)), (1500, 1500))
    canvas.save(big, quality=80)
    clip = folder / "8k.mp4"
    frame = np.full((4320, 7680, 3), 60, np.uint8)
    frame[1000:3000, 2800:4800] = np.asarray(Image.fromarray(face).resize((2000, 2000)))
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 7680, 4320, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30"}
        for _ in range(16):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return {"8K clip": clip, "12000x12000 JPEG": big}


def measure(mode: str, path: Path) -> dict:
    """Peak memory of one analysis in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _DRIVER, mode, str(path), str(SHARED / "weights" / "mediapipe")],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, default=SHARED / "dev" / "videos" / "fake" / "dfdc_abqwwspghj.mp4")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "memory.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inputs = {"1080p clip (baseline)": args.baseline, **make_inputs(Path(tmp))}
        sizes = {k: p.stat().st_size for k, p in inputs.items()}
        rows = []
        for mode in ("predict", "service job"):
            base = None
            for name, path in inputs.items():
                r = measure("predict" if mode == "predict" else "job", path)
                base = base or r["peak_mb"]
                rows.append({"mode": mode, "input": name, "bytes": sizes[name], **r, "ratio": r["peak_mb"] / base})
    print("| mode | input | file size | verdict | faces | RSS loaded MB | peak MB | increment MB | peak vs 1080p |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['input']} | {r['bytes'] / 1e6:.2f} MB | {r['verdict']} | {r['n_faces']} | "
            f"{r['loaded_mb']:.0f} | {r['peak_mb']:.0f} | {r['increment_mb']:.0f} | {r['ratio']:.2f}x |"
        )
    payload = {"benchmark": "memory", "baseline": "1080p clip", "results": rows, **run_metadata()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
