"""Detector quality benchmark: verdicts measured through ``Predictor`` (what ``fakescope predict`` runs) on media files.

Per detector, in one run:

- **DFDC faces test** (group-disjoint): the test rows of a prepared DFDC manifest (``--dfdc-manifest``, made by
  ``fakescope prepare csv ../shared/data/dfdc_faces/labels.csv ... --ratios 0.75,0.05,0.2``; the split the shipped
  detector was held out from), each scored from its original JPEG file: AUC, AP, log-loss, balanced accuracy at the
  detector's own threshold, and how many files gave no face;
- **CIPLAB faces test**: the test rows of a prepared CIPLAB manifest (``--ciplab-manifest``; the split a
  CIPLAB-trained detector was held out from), else a group-disjoint split of ``../shared/data/faces`` made here
  (seed 0, 70/15/15), each scored from its file: AUC;
- **dev media**: the 4 labelled dev videos and 26 dev crops: verdict per file, and how many are right;
- **speed**: model crops per second at batch 32 (inference only, after the crops are cut), and on the 1080p dev
  video the end-to-end ``analyze`` time next to a decode-only pass measured alternately in the same run (PyAV, every
  frame decoded, 32 of them converted to RGB): their ratio is the cost of the detector over decoding.

The baseline (``--baseline``; default ``mesoinception4.mesonet_df``, the default before the DFDC model) is measured in
the same run. Prints a table and
writes JSON (``--out``).

    .venv/bin/python benchmarks/quality.py --dfdc-manifest runs/dfdc160/manifest.parquet
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from _baselines import decode_only
from fakescope.data.adapters import load_records
from fakescope.data.manifest import read_manifest
from fakescope.data.splits import assign_splits
from fakescope.eval.metrics import binary_metrics
from fakescope.predict import Predictor
from fakescope.utils.io import atomic_write_text
from fakescope.utils.runinfo import run_metadata

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
BASELINE = "mesoinception4.mesonet_df"


def ciplab_test(root: Path, limit: int | None, seed: int = 0) -> pd.DataFrame:
    """Files and labels of a group-disjoint test split of the CIPLAB faces."""
    recs = load_records("csv", root / "labels.csv", group_col="group_id")
    df = pd.DataFrame(
        {
            "video_id": [r.video_id for r in recs],
            "source_id": [r.video_id for r in recs],
            "identity": ["" for _ in recs],
            "group_id": [r.group_id for r in recs],
            "label": [r.label for r in recs],
            "media_path": [str(r.media_path) for r in recs],
        }
    )
    test = assign_splits(df, seed=seed)
    test = test[test["split"] == "test"]
    return test.sample(n=min(limit, len(test)), random_state=seed) if limit else test


def dfdc_test(manifest: Path, limit: int | None, seed: int = 0) -> pd.DataFrame:
    """One row per test file of a prepared manifest (DFDC, or CIPLAB with ``--ciplab-manifest``)."""
    df = read_manifest(manifest)
    test = df[df["split"] == "test"].drop_duplicates("media_path")
    return test.sample(n=min(limit, len(test)), random_state=seed) if limit else test


def score_files(pred: Predictor, paths: list[str]) -> tuple[np.ndarray, list[str]]:
    """P(fake) per file (NaN when no face or an error) and the verdicts."""
    probs, verdicts = [], []
    for res in pred.analyze_many(paths):
        probs.append(np.nan if res.fake_prob is None else res.fake_prob)
        verdicts.append(res.verdict)
    return np.asarray(probs, np.float64), verdicts


def scored_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """Metrics over the files that gave a score, plus the no-face count."""
    ok = np.isfinite(p)
    if not ok.any():
        return {"n": len(y), "n_scored": 0, "no_face": len(y), "threshold": threshold, "auc": float("nan")}
    m = binary_metrics(y[ok], p[ok], threshold=threshold)
    keep = ("auc", "ap", "log_loss", "balanced_accuracy", "eer", "fake_recall", "real_recall")
    out = {k: m[k] for k in keep if k in m}
    out.update({"n": len(y), "n_scored": int(ok.sum()), "no_face": int((~ok).sum()), "threshold": threshold})
    return out


def crops_per_second(pred: Predictor, n: int = 64) -> float:
    """Model throughput on ``n`` random crops at the model's input size, batch 32."""
    s = pred.loaded.input_size
    crops = np.random.default_rng(0).integers(0, 256, (n, s, s, 3), dtype=np.uint8)
    pred.score_crops(crops[:32])  # warm-up
    t = time.perf_counter()
    pred.score_crops(crops)
    return n / (time.perf_counter() - t)


def video_speed(pred: Predictor, video: Path, repeats: int = 3) -> dict[str, float]:
    """Median end-to-end and decode-only seconds on one video, measured alternately."""
    pred.analyze(video)  # warm-up (model, detector, caches)
    e2e, dec = [], []
    for _ in range(repeats):
        dec.append(decode_only(video))
        t = time.perf_counter()
        pred.analyze(video)
        e2e.append(time.perf_counter() - t)
    d, e = float(np.median(dec)), float(np.median(e2e))
    return {"video": video.name, "decode_only_s": d, "end_to_end_s": e, "ratio": e / d}


def run_detector(name: str, args: argparse.Namespace, sets: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Every measurement of one detector."""
    t0 = time.perf_counter()
    with Predictor(
        name,
        weights_dir=args.weights_dir,
        detector_weights_dir=SHARED / "weights" / "mediapipe",
        num_frames=args.frames,
    ) as pred:
        row: dict[str, Any] = {"detector": name, "threshold": pred.threshold, "contract": pred.contract.to_dict()}
        for key, df in sets.items():
            if key == "dev":
                continue
            p, _ = score_files(pred, df["media_path"].tolist())
            row[key] = scored_metrics(df["label"].to_numpy(), p, pred.threshold)
        dev = sets["dev"]
        p, verdicts = score_files(pred, dev["media_path"].tolist())
        files = []
        for (_, r), prob, v in zip(dev.iterrows(), p, verdicts, strict=True):
            truth = "fake" if r["label"] else "real"
            files.append(
                {
                    "file": Path(r["media_path"]).name,
                    "kind": r["kind"],
                    "truth": truth,
                    "verdict": v,
                    "fake_prob": None if not np.isfinite(prob) else float(prob),
                }
            )
        row["dev"] = {
            "videos_right": sum(f["verdict"] == f["truth"] for f in files if f["kind"] == "video"),
            "videos": sum(f["kind"] == "video" for f in files),
            "crops_right": sum(f["verdict"] == f["truth"] for f in files if f["kind"] == "image"),
            "crops": sum(f["kind"] == "image" for f in files),
            "files": files,
        }
        row["crops_per_s"] = crops_per_second(pred)
        if args.speed_video is not None:
            row["video_speed"] = video_speed(pred, args.speed_video)
    row["seconds"] = time.perf_counter() - t0
    return row


def dev_set(root: Path) -> pd.DataFrame:
    """The dev videos and crops with labels."""
    labels = pd.read_csv(root / "labels.csv")
    return pd.DataFrame(
        {
            "media_path": [str(root / p) for p in labels["path"]],
            "label": (labels["label"] == "fake").astype(int).to_numpy(),
            "kind": ["video" if p.startswith("videos/") else "image" for p in labels["path"]],
        }
    )


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detectors", nargs="+", default=["mobilenet_v2.dfdc", BASELINE])
    ap.add_argument("--baseline", default=BASELINE, help="detector the others are compared with (measured too)")
    ap.add_argument("--dfdc-manifest", type=Path, required=True, help="prepared DFDC manifest (its test split)")
    ap.add_argument("--dfdc-limit", type=int, default=None, help="score at most this many DFDC test files")
    ap.add_argument("--ciplab-manifest", type=Path, default=None, help="prepared CIPLAB manifest (its test split)")
    ap.add_argument("--ciplab-limit", type=int, default=None, help="score at most this many CIPLAB test files")
    ap.add_argument("--weights-dir", type=Path, default=None, help="offline folder of named pretrained weights")
    ap.add_argument("--frames", type=int, default=32, help="frames sampled per dev video")
    ap.add_argument(
        "--speed-video",
        type=Path,
        default=SHARED / "dev" / "videos" / "fake" / "dfdc_abqwwspghj.mp4",
        help="1080p video for the end-to-end vs decode-only timing (none: skip)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "quality.json")
    args = ap.parse_args()

    sets = {
        "dfdc_test": dfdc_test(args.dfdc_manifest, args.dfdc_limit),
        "ciplab_test": (
            dfdc_test(args.ciplab_manifest, args.ciplab_limit)
            if args.ciplab_manifest
            else ciplab_test(SHARED / "faces", args.ciplab_limit)
        ),
        "dev": dev_set(SHARED / "dev"),
    }
    rows = []
    for name in dict.fromkeys([*args.detectors, args.baseline]):
        weights = args.weights_dir
        if weights is None and name.split(".")[0] in ("meso4", "mesoinception4", "mesonet_ensemble"):
            weights = SHARED / "weights" / "mesonet"
        rows.append(run_detector(name, argparse.Namespace(**{**vars(args), "weights_dir": weights}), sets))
        print(f"{name}: done in {rows[-1]['seconds']:.0f} s", flush=True)
    base = next((r for r in rows if r["detector"] == args.baseline), None)
    head = [
        "detector",
        "DFDC AUC",
        "AP",
        "log-loss",
        "bal.acc",
        "no-face",
        "CIPLAB AUC",
        "dev videos",
        "dev crops",
        "crops/s",
        "1080p / decode",
        "AUC vs baseline",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        d, c, dev = r["dfdc_test"], r["ciplab_test"], r["dev"]
        ratio = d["auc"] / base["dfdc_test"]["auc"] if base else float("nan")
        cells = [
            r["detector"],
            d["auc"],
            d["ap"],
            d["log_loss"],
            d["balanced_accuracy"],
            f"{d['no_face']}/{d['n']}",
            c["auc"],
            f"{dev['videos_right']}/{dev['videos']}",
            f"{dev['crops_right']}/{dev['crops']}",
            r["crops_per_s"],
            r.get("video_speed", {}).get("ratio", float("nan")),
            ratio,
        ]
        print("| " + " | ".join(_fmt(v) for v in cells) + " |")
    payload = {
        "benchmark": "quality",
        "baseline": args.baseline,
        "dfdc_manifest": str(args.dfdc_manifest),
        "ciplab_manifest": str(args.ciplab_manifest) if args.ciplab_manifest else None,
        "sets": {k: len(v) for k, v in sets.items()},
        "results": rows,
        **run_metadata(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(payload, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
