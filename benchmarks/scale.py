"""Scale-out benchmark: prepare throughput with 1 and 2 workers for the process pool and for Ray.

The dev videos are listed ``--repeat`` times (each copy is a separate input with its own id and output) so two
workers have enough items to share. Every worker gets ``--threads`` CPU threads (default 1, what each of two
workers gets on a 2-core machine), so "2 workers / 1 worker" measures how the executor scales with workers. The
baseline, measured in the same run after an untimed warm-up (imports, detector start-up), is the process executor
with 1 worker; a second reference row runs 1 worker with the libraries' default threading (FFmpeg: one decoding
thread per core), the best a single worker does on this machine. Reports videos/min, the speed-up of 2 workers
over 1 (target >= 1.7x) and over the all-cores worker, Ray's start-up time (once per session, not counted in
throughput), and Ray's overhead per video: the extra seconds per video of Ray over the process pool at the same
worker count, and the round-trip time of an empty actor call.

    .venv/bin/python benchmarks/scale.py --repeat 3 --frames 16
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from fakescope.data.adapters import load_records
from fakescope.data.prepare import init_ray, prepare_dataset
from fakescope.utils.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


class _Echo:
    def ping(self) -> int:
        return 0


def ray_call_overhead(calls: int = 200) -> float:
    """Seconds per round trip of an empty actor method call (Ray must be initialised)."""
    import ray

    actor = ray.remote(num_cpus=1)(_Echo).remote()
    ray.get(actor.ping.remote())
    t = time.perf_counter()
    for _ in range(calls):
        ray.get(actor.ping.remote())
    per_call = (time.perf_counter() - t) / calls
    ray.kill(actor)
    return per_call


def run_name(executor: str, workers: int, threads: int | None) -> str:
    """Row label, e.g. ``process, 2 workers x 1 thread``."""
    t = "all cores" if threads is None else f"{threads} thread{'s' if threads > 1 else ''}"
    return f"{executor}, {workers} worker{'s' if workers > 1 else ''} x {t}"


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, default=SHARED / "dev" / "videos")
    ap.add_argument("--weights-dir", type=Path, default=SHARED / "weights" / "mediapipe")
    ap.add_argument("--repeat", type=int, default=2, help="list each dev video this many times")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per worker")
    ap.add_argument("--executors", nargs="*", default=["process", "ray"], choices=["process", "ray"])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "scale.json")
    args = ap.parse_args()

    base = load_records("folder", args.dev)
    records = [replace(r, video_id=f"{r.video_id}_copy{k}") for k in range(args.repeat) for r in base]
    n = len(records)
    results: dict[str, dict] = {}
    extra: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: imports, decoder and detector start-up, page cache; not timed
        prepare_dataset(
            "folder",
            args.dev,
            Path(tmp) / "warmup",
            size=args.size,
            num_frames=2,
            weights_dir=args.weights_dir,
            records=base[:1],
        )
        runs = [(ex, w, args.threads) for ex in args.executors for w in (1, 2)]
        runs.insert(1, ("process", 1, None))  # reference: one worker with the libraries' default threading
        for executor, w, threads in runs:
            if executor == "ray" and "ray_init_s" not in extra:
                t = time.perf_counter()
                init_ray(num_cpus=2)
                extra["ray_init_s"] = time.perf_counter() - t
                extra["ray_empty_call_s"] = ray_call_overhead()
            name = run_name(executor, w, threads)
            res = prepare_dataset(
                "folder",
                args.dev,
                Path(tmp) / name.replace(" ", "_").replace(",", ""),
                size=args.size,
                num_frames=args.frames,
                weights_dir=args.weights_dir,
                workers=w,
                executor=executor,
                threads_per_worker=threads,
                records=records,
            )
            results[name] = {
                "executor": executor,
                "workers": w,
                "threads_per_worker": threads,
                "elapsed_s": res.elapsed_s,
                "videos_per_min": 60 * n / res.elapsed_s,
                "stages_s": res.timings,
                "failed": res.n_failed,
            }
            print(f"{name:34s} {res.elapsed_s:8.2f} s", flush=True)
        if "ray" in args.executors:
            import ray

            ray.shutdown()

    baseline = run_name("process", 1, args.threads)
    for r in results.values():
        r["speedup_vs_baseline"] = results[baseline]["elapsed_s"] / r["elapsed_s"]
    scaling = {}
    for executor in args.executors:
        one, two = results.get(run_name(executor, 1, args.threads)), results.get(run_name(executor, 2, args.threads))
        if one and two:
            scaling[executor] = one["elapsed_s"] / two["elapsed_s"]
    all_cores = results.get(run_name("process", 1, None))
    if all_cores:
        for executor in args.executors:
            two = results.get(run_name(executor, 2, args.threads))
            if two:
                extra[f"{executor}_2_workers_over_1_all_cores_worker"] = all_cores["elapsed_s"] / two["elapsed_s"]
    if "process" in args.executors and "ray" in args.executors:
        for w in (1, 2):
            extra[f"ray_overhead_per_video_w{w}_s"] = (
                results[run_name("ray", w, args.threads)]["elapsed_s"]
                - results[run_name("process", w, args.threads)]["elapsed_s"]
            ) / n

    print(
        f"{n} inputs ({len(base)} dev videos x {args.repeat}), {args.frames} frames, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'run':34s} {'elapsed s':>10s} {'videos/min':>10s} {'x base':>7s}")
    for name, r in results.items():
        print(f"{name:34s} {r['elapsed_s']:10.2f} {r['videos_per_min']:10.1f} {r['speedup_vs_baseline']:7.2f}")
    for executor, s in scaling.items():
        print(f"{executor}: 2 workers / 1 worker = {s:.2f}x (target >= 1.7x)")
    for k, v in extra.items():
        print(f"{k}: {v:.4f}")
    payload = {
        "benchmark": "scale",
        "inputs": n,
        "frames": args.frames,
        "size": args.size,
        "threads_per_worker": args.threads,
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "baseline": baseline,
        "results": results,
        "scaling_2_over_1": scaling,
        **extra,
    }
    atomic_write_text(args.out, json.dumps(payload, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
