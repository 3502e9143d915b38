"""Training benchmark: (a) images/s of fakescope's loop vs a plain PyTorch loop; (b) quality on real faces.

(a) For each model, train and evaluation throughput of ``fakescope.train.engine.train_one_epoch`` /
``score_loader`` (DataLoader over crops on disk, cached after the first read) against a bare loop over the same
batches held in memory (``zero_grad / forward / BCE / backward / step``), measured in the same run; the ratio is
fakescope / plain (1.0 = no overhead).

(b) ``../shared/data/faces`` (CIPLAB real and Photoshop-spliced faces, ``labels.csv``) made into a manifest with a
group-disjoint split (``fakescope.data.splits.assign_splits`` over ``group_id``), then each model is trained with
``fakescope.train.fit`` for a few epochs; validation AUC and balanced accuracy at the validation-chosen threshold
are reported.

Usage: ``python benchmarks/train.py [--out benchmarks/results/train.json] [--models meso4,cnn] [--epochs 3]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from fakescope.data.datasets import create_loader
from fakescope.data.manifest import normalize_manifest, write_manifest
from fakescope.eval.scoring import score_loader
from fakescope.models import create_detector
from fakescope.train import TrainConfig, fit
from fakescope.train.engine import train_one_epoch

REPO = Path(__file__).resolve().parents[1]
MODELS = ("meso4", "mesoinception4", "cnn", "efficientnet_b0")


def _synthetic_manifest(root: Path, n: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    (root / "crops").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        cv2.imwrite(str(root / f"crops/{i}.jpg"), rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
        rows.append({"video_id": f"v{i}", "label": i % 2, "crop_path": f"crops/{i}.jpg", "split": "train"})
    return write_manifest(normalize_manifest(pd.DataFrame(rows)), root / "manifest.parquet")


def throughput(name: str, manifest: Path, batch: int, steps: int) -> dict[str, float]:
    """Images/s of fakescope's train/eval loop and of a plain loop, same model, same batches."""
    df = pd.read_parquet(manifest)
    torch.manual_seed(0)
    model = create_detector(name)
    size = model.cfg.input_size
    loader = create_loader(df, manifest, size, batch, train=True, seed=0, balance=True, augment=False, cache=True)
    eval_loader = create_loader(df, manifest, size, batch, train=False, cache=True)
    batches = [(x, y) for (x, y, _), _ in zip(loader, range(steps), strict=False)]  # warms the crop cache too
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    device = torch.device("cpu")
    n = batch * steps
    out: dict[str, float] = {"input_size": size}

    t = time.perf_counter()
    train_one_epoch(model, loader, opt, loss_fn, device, max_steps=steps)
    out["fakescope_train_ips"] = n / (time.perf_counter() - t)
    model.train()
    t = time.perf_counter()
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    out["plain_train_ips"] = n / (time.perf_counter() - t)

    eval_n = min(len(df), n)
    sub_loader = create_loader(df.head(eval_n), manifest, size, batch, train=False, cache=True)
    list(sub_loader)  # warm cache
    t = time.perf_counter()
    score_loader(model, sub_loader, device)
    out["fakescope_eval_ips"] = eval_n / (time.perf_counter() - t)
    model.eval()
    xs = [x for x, _, _ in sub_loader]
    t = time.perf_counter()
    with torch.no_grad():
        for x in xs:
            torch.sigmoid(model(x))
    out["plain_eval_ips"] = eval_n / (time.perf_counter() - t)
    out["train_ratio"] = out["fakescope_train_ips"] / out["plain_train_ips"]
    out["eval_ratio"] = out["fakescope_eval_ips"] / out["plain_eval_ips"]
    del eval_loader
    return out


def faces_manifest(faces: Path, out: Path, seed: int = 0) -> Path:
    """Manifest over ``faces/labels.csv`` (images are already face crops), split by group_id."""
    from fakescope.data.splits import assign_splits

    lab = pd.read_csv(faces / "labels.csv")
    df = pd.DataFrame(
        {
            "dataset": "ciplab_faces",
            "video_id": lab["path"],
            "source_id": lab["group_id"],
            "group_id": lab["group_id"],
            "label": (lab["label"] == "fake").astype(int),
            "manipulation": lab["generator"].fillna(""),
            "media_path": [str(faces / p) for p in lab["path"]],
            "crop_path": [str(faces / p) for p in lab["path"]],
        }
    )
    df = assign_splits(normalize_manifest(df), seed=seed, ratios=(0.7, 0.15, 0.15))
    return write_manifest(df, out / "manifest.parquet")


def quality(
    name: str, manifest: Path, out: Path, epochs: int, max_steps: int | None, batch: int, precise_bn: int
) -> dict[str, float]:
    """Train ``name`` on the faces manifest; validation AUC and balanced accuracy of the best checkpoint."""
    cfg = TrainConfig(
        model=name,
        epochs=epochs,
        batch_size=batch,
        lr=1e-3 if name in ("meso4", "mesoinception4", "cnn") else 3e-4,
        max_steps_per_epoch=max_steps,
        patience=0,
        device="cpu",
        cache_images="true",
        precise_bn_batches=precise_bn,
    )
    t = time.perf_counter()
    res = fit(cfg, manifest, out / name)
    best = res.history[res.best_epoch]
    return {
        "val_auc": res.best_val_auc,
        "val_balanced_acc_at_threshold": best["val_balanced_acc_at_threshold"],
        "val_balanced_acc_at_0.5": best["val_balanced_acc"],
        "best_epoch": res.best_epoch,
        "epochs": len(res.history),
        "train_seconds": time.perf_counter() - t,
    }


def main() -> None:
    """Run both parts, print tables, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "train.json")
    ap.add_argument("--models", default=",".join(MODELS), help="models for the throughput part")
    ap.add_argument("--quality-models", default=",".join(MODELS), help="models for the quality part")
    ap.add_argument("--precise-bn", type=int, default=10, help="precise-BN batches before each validation")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per model (throughput)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per model (quality)")
    ap.add_argument("--max-steps", type=int, default=None, help="cap on steps per epoch (quality)")
    ap.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "data" / "faces")
    ap.add_argument("--skip-quality", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    models = [m for m in args.models.split(",") if m]
    report: dict[str, object] = {"torch_threads": torch.get_num_threads(), "batch": args.batch}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        synth = _synthetic_manifest(tmp_path / "synth", max(args.batch * args.steps, 32), 256)
        speed = {}
        report["throughput"] = speed
        for name in models:
            speed[name] = throughput(name, synth, args.batch, args.steps)
            _write(args.out, report)
        print(f"\n(a) images/s on {torch.get_num_threads()} threads, batch {args.batch}")
        print(
            f"{'model':16} {'train fs':>9} {'train plain':>11} {'ratio':>6} "
            f"{'eval fs':>8} {'eval plain':>10} {'ratio':>6}"
        )
        for name, r in speed.items():
            print(
                f"{name:16} {r['fakescope_train_ips']:9.1f} {r['plain_train_ips']:11.1f} {r['train_ratio']:6.2f} "
                f"{r['fakescope_eval_ips']:8.1f} {r['plain_eval_ips']:10.1f} {r['eval_ratio']:6.2f}"
            )
        if not args.skip_quality and (args.faces / "labels.csv").is_file():
            manifest = faces_manifest(args.faces, tmp_path / "faces")
            df = pd.read_parquet(manifest)
            report["faces_split"] = {
                f"{s}_{'fake' if lbl else 'real'}": int(n)
                for (s, lbl), n in df.groupby(["split", "label"]).size().items()
            }
            qual: dict[str, dict[str, float]] = {}
            report["quality"] = qual
            report["quality_settings"] = {
                "epochs": args.epochs,
                "max_steps_per_epoch": args.max_steps,
                "batch": args.batch,
                "precise_bn_batches": args.precise_bn,
            }
            for name in [m for m in args.quality_models.split(",") if m]:
                qual[name] = quality(
                    name, manifest, tmp_path / "runs", args.epochs, args.max_steps, args.batch, args.precise_bn
                )
                _write(args.out, report)
            print(f"\n(b) faces (CIPLAB), group-disjoint split {report['faces_split']}")
            print(f"{'model':16} {'val AUC':>8} {'bal.acc@thr':>11} {'bal.acc@0.5':>11} {'epochs':>6} {'seconds':>8}")
            for name, r in qual.items():
                print(
                    f"{name:16} {r['val_auc']:8.3f} {r['val_balanced_acc_at_threshold']:11.3f} "
                    f"{r['val_balanced_acc_at_0.5']:11.3f} {r['epochs']:6d} {r['train_seconds']:8.0f}"
                )
    _write(args.out, report)
    print(f"\nwrote {args.out}")


def _write(path: Path, report: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
