"""Service latency: concurrent image requests against ``fakescope serve``, versus the library called directly.

Runs, in one process tree and on the same image (the astronaut photo, one face):

1. baseline: ``Predictor.analyze`` called directly, sequentially (after a warm-up);
2. the service (``fakescope serve`` in a subprocess, uvicorn, one worker) answering the same image
   sequentially (one request at a time: the per-request service overhead);
3. the service under ``--concurrency`` simultaneous requests (``--requests`` in all) from a local httpx client
   in threads: p50/p95 latency, throughput and errors.

Ratios are against the direct baseline. Prints a table and writes JSON (``--out``).

    .venv/bin/python benchmarks/serve.py [--requests 20] [--concurrency 20] [--model NAME|CKPT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "weights"


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


def summary(lat: list[float]) -> dict[str, float]:
    return {
        "n": len(lat),
        "p50_ms": 1000 * percentile(lat, 50),
        "p95_ms": 1000 * percentile(lat, 95),
        "mean_ms": 1000 * statistics.fmean(lat),
        "max_ms": 1000 * max(lat),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve_model(args: argparse.Namespace, work: Path) -> tuple[str, Path | None]:
    """The model to serve and its offline weights folder: the default pretrained one when ../shared has it."""
    if args.model:
        return args.model, args.weights_from
    if (SHARED / "mesonet").is_dir():
        from fakescope.predict import DEFAULT_MODEL

        return DEFAULT_MODEL, SHARED / "mesonet"
    import torch

    from fakescope.models import create_detector, save_checkpoint

    torch.manual_seed(0)
    return str(save_checkpoint(create_detector("meso4"), work / "meso4.safetensors")), None


def face_args() -> tuple[str, Path | None]:
    if (SHARED / "mediapipe" / "face_detection_short_range.tflite").is_file():
        return "blazeface", SHARED / "mediapipe"
    return "haar", None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20, help="concurrent-phase requests in all")
    parser.add_argument("--concurrency", type=int, default=20, help="simultaneous requests")
    parser.add_argument("--sequential", type=int, default=10, help="requests in the direct and sequential phases")
    parser.add_argument("--model", default="", help="detector name or checkpoint (default: pretrained, offline)")
    parser.add_argument("--weights-from", type=Path, default=None, help="offline weights folder for --model")
    parser.add_argument("--workers", type=int, default=1, help="service workers (predictor copies)")
    parser.add_argument("--threads", type=int, default=None, help="inference threads, direct and service alike")
    parser.add_argument("--explain", action="store_true", help="render Grad-CAM heatmaps too")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serve.json")
    args = parser.parse_args()

    import httpx
    import numpy as np
    from PIL import Image
    from skimage import data

    from fakescope.predict import Predictor

    work = Path(tempfile.mkdtemp(prefix="fakescope-bench-serve-"))
    image = work / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(image, quality=90)
    model, weights_from = resolve_model(args, work)
    detector, face_weights = face_args()

    # 1. baseline: the library directly
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    predictor = Predictor(
        model,
        detector=detector,
        weights_dir=weights_from,
        detector_weights_dir=face_weights,
        num_threads=args.threads,
    )
    explain_dir = work / "direct-evidence" if args.explain else None
    predictor.analyze(image, explain_dir=explain_dir)  # warm-up
    direct = []
    direct_timings = []
    for _ in range(args.sequential):
        t = time.perf_counter()
        res = predictor.analyze(image, explain_dir=explain_dir)
        direct.append(time.perf_counter() - t)
        direct_timings.append(res.timings)
    direct_prob = res.fake_prob
    predictor.close()

    # 2./3. the service in a subprocess
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "fakescope",
        "serve",
        "--port",
        str(port),
        "--model",
        model,
        "--data-dir",
        str(work / "data"),
        "--face-detector",
        detector,
        "--workers",
        str(args.workers),
        "--log-level",
        "warning",
    ]
    if weights_from:
        cmd += ["--from", str(weights_from)]
    if face_weights:
        cmd += ["--face-weights", str(face_weights)]
    if not args.explain:
        cmd += ["--no-explain"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    server = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    body = image.read_bytes()
    try:
        deadline = time.monotonic() + 180
        with httpx.Client(base_url=base, timeout=300) as client:
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"server exited: {server.stderr.read().decode()[-2000:]}")
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("server did not become healthy in 180 s")
                time.sleep(0.2)

            def one() -> tuple[float, int, float | None, dict[str, float]]:
                t = time.perf_counter()
                r = client.post("/v1/analyze", files={"file": ("astronaut.jpg", body, "image/jpeg")})
                dt = time.perf_counter() - t
                res = r.json().get("result", {}) if r.status_code == 200 else {}
                return dt, r.status_code, res.get("fake_prob"), res.get("timings", {})

            one()  # warm-up
            sequential = [one() for _ in range(args.sequential)]
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                concurrent = list(pool.map(lambda _: one(), range(args.requests)))
            wall = time.perf_counter() - t0
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()

    seq_lat = [r[0] for r in sequential]
    con_lat = [r[0] for r in concurrent]
    errors = sum(1 for r in sequential + concurrent if r[1] != 200)
    probs = {r[2] for r in sequential + concurrent}
    # time inside Predictor.analyze as measured by the library itself, per phase: the rest is service overhead
    analyze_ms = {
        "direct": 1000 * statistics.median(t.get("total", 0.0) for t in direct_timings),
        "service_sequential": 1000 * statistics.median(r[3].get("total", 0.0) for r in sequential),
        "service_concurrent": 1000 * statistics.median(r[3].get("total", 0.0) for r in concurrent),
    }
    overhead_ms = [1000 * (r[0] - r[3].get("total", 0.0)) for r in sequential]
    same_answer = all(p is not None and abs(p - direct_prob) < 1e-6 for p in probs)
    d_sum, s_sum, c_sum = summary(direct), summary(seq_lat), summary(con_lat)
    report: dict[str, Any] = {
        "model": model if not model.endswith(".safetensors") else "meso4 (random init)",
        "face_detector": detector,
        "explain": args.explain,
        "workers": args.workers,
        "threads": args.threads or "default",
        "image": "skimage astronaut 512x512 JPEG (1 face)",
        "direct": d_sum,
        "service_sequential": s_sum,
        "service_concurrent": {
            **c_sum,
            "concurrency": args.concurrency,
            "wall_s": wall,
            "throughput_rps": args.requests / wall,
        },
        "direct_throughput_rps": 1000 / d_sum["mean_ms"],
        "ratios": {
            "sequential_p50_vs_direct_p50": s_sum["p50_ms"] / d_sum["p50_ms"],
            "service_overhead_p50_ms": s_sum["p50_ms"] - d_sum["p50_ms"],
            "concurrent_throughput_vs_direct": (args.requests / wall) / (1000 / d_sum["mean_ms"]),
        },
        "analyze_total_median_ms": analyze_ms,
        "service_overhead_sequential_median_ms": statistics.median(overhead_ms),
        "errors": errors,
        "same_fake_prob_as_direct": same_answer,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"fakescope serve: {report['model']}, {detector}, 1 image, {args.workers} worker(s), "
        f"threads {args.threads or 'default'}"
    )
    for col in ("phase", "n", "p50 ms", "p95 ms", "mean ms", "ratio p50 vs direct"):
        table.add_column(col, justify="right" if col != "phase" else "left")
    for name, s in (
        ("direct Predictor.analyze", d_sum),
        ("service, sequential", s_sum),
        (f"service, {args.concurrency} concurrent", c_sum),
    ):
        table.add_row(
            name,
            str(s["n"]),
            f"{s['p50_ms']:.1f}",
            f"{s['p95_ms']:.1f}",
            f"{s['mean_ms']:.1f}",
            f"{s['p50_ms'] / d_sum['p50_ms']:.2f}x",
        )
    console = Console()
    console.print(table)
    console.print(
        f"throughput: service {args.requests / wall:.2f} req/s under {args.concurrency} concurrent vs direct "
        f"{1000 / d_sum['mean_ms']:.2f} files/s ({report['ratios']['concurrent_throughput_vs_direct']:.2f}x); "
        f"errors: {errors}; same P(fake) as direct: {same_answer}; wrote {args.out}"
    )
    console.print(
        "median time inside Predictor.analyze: "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in analyze_ms.items())
        + f"; service overhead per sequential request (latency - analyze) {statistics.median(overhead_ms):.1f} ms"
    )
    _ = np  # numpy is used through percentile()
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
