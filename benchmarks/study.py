"""The study's comparison, rerun with ImageNet starts: from-scratch and pretrained detectors on two face sets.

Every recipe is trained twice, on a DFDC-faces manifest and on a CIPLAB-faces manifest, with the same optimiser
step budget per data set (``--steps-dfdc``, ``--steps-faces``: the CPU budget here, not the recipes' full
length), each model at its recipe's input size (the 160 px crops resized to it), validation AUC after every
``--eval-every`` steps picking the best checkpoint. Both manifests must be prepared with one crop contract
(``prepare ... --size 160 --margin 0 --pictures cut``), so every model is scored on crops made the way it was
trained (``compare --cross`` refuses otherwise).

Rows (the study's models and their pretrained counterparts):

- ``cnn-adam``, ``cnn-rmsprop``: the study's small CNN (``configs/study/cnn-*.yaml``), from scratch;
- ``mesoinception4``: MesoInception-4, from scratch (the study's ensemble member, one model);
- ``mobilenet_v2-scratch``: MobileNetV2 from random weights with the fine-tuning recipe (the ImageNet ablation);
- ``mobilenet_v2-imagenet``, ``efficientnet_lite0-imagenet``: the fine-tuning recipes (``configs/dfdc/``).

The study's ResNet-50, Xception and ViT need ImageNet weights from timm's hub, which this machine cannot reach, and
are too slow from scratch on 2 CPU cores; they are listed as not run.

Outputs (``--out``): one run directory per (recipe, data set); the comparison table of all runs (``compare``);
the cross-dataset AUC matrix (trained on x tested on: a seeded sample of ``--test-rows`` rows of each test
split); the dev-video verdicts of each run through ``Predictor`` (what ``fakescope predict`` runs); and
``study.json``. A summary table is printed.

    .venv/bin/python benchmarks/study.py --dfdc runs/dfdc160cut/manifest.parquet \\
        --faces runs/ciplab160cut/manifest.parquet --out runs/study --json benchmarks/results/study.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from fakescope.data.manifest import read_manifest, write_manifest
from fakescope.eval.compare import compare_runs, cross_dataset_matrix
from fakescope.predict import Predictor
from fakescope.train import fit, load_train_config
from fakescope.utils.io import atomic_write_text
from fakescope.utils.runinfo import run_metadata

REPO = Path(__file__).resolve().parents[1]

#: recipe name -> (config file, overrides, ImageNet start)
RECIPES: dict[str, tuple[str, dict[str, Any], bool]] = {
    "cnn-adam": ("configs/study/cnn-adam.yaml", {}, False),
    "cnn-rmsprop": ("configs/study/cnn-rmsprop.yaml", {}, False),
    "mesoinception4": ("configs/study/mesoinception4-ensemble.yaml", {"folds": 1, "scheduler": "none"}, False),
    "mobilenet_v2-scratch": ("configs/dfdc/mobilenet_v2-cpu.yaml", {"pretrained": False}, False),
    "mobilenet_v2-imagenet": ("configs/dfdc/mobilenet_v2-cpu.yaml", {}, True),
    "efficientnet_lite0-imagenet": ("configs/dfdc/efficientnet_lite0-cpu.yaml", {}, True),
}
NOT_RUN = {
    "resnet50": "ImageNet weights come from timm's hub (unreachable here); from scratch too slow on 2 CPU cores",
    "xception": "ImageNet weights come from timm's hub (unreachable here); from scratch too slow on 2 CPU cores",
    "vit": "ImageNet weights come from timm's hub (unreachable here); from scratch too slow on 2 CPU cores",
}


def _config(recipe: str, steps: int, eval_every: int, imagenet_dir: Path) -> Any:
    path, overrides, pretrained = RECIPES[recipe]
    epochs = max(1, steps // eval_every)
    values = {
        **overrides,
        "epochs": epochs,
        "max_steps_per_epoch": eval_every,
        "batch_size": 32,
        "patience": 0,
        "device": "cpu",
        "num_workers": 0,
        "cache_images": "false",
    }
    if pretrained:
        values["pretrained_dir"] = str(imagenet_dir)
    if RECIPES[recipe][0].startswith("configs/dfdc/"):  # per-step schedules: warm-up at most a tenth of the budget
        values["warmup_steps"] = min(int(overrides.get("warmup_steps", 150)), max(1, steps // 10))
    return load_train_config(REPO / path, overrides=values)


def _test_subset(manifest: Path, n: int, out: Path, seed: int = 0) -> Path:
    """A seeded sample of ``n`` test rows of ``manifest`` (crop paths made absolute; its ``config.yaml`` beside)."""
    df = read_manifest(manifest)
    test = df[df["split"] == "test"]
    if n and len(test) > n:
        test = test.sample(n=n, random_state=seed).sort_index()
    test = test.assign(crop_path=[str((manifest.parent / c).resolve()) for c in test["crop_path"]])
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(manifest.parent / "config.yaml", out / "config.yaml")
    return write_manifest(test.reset_index(drop=True), out / "manifest.parquet")


def _dev_verdicts(checkpoint: Path, shared: Path) -> dict[str, Any]:
    videos = sorted((shared / "dev" / "videos").rglob("*.mp4"))
    out: dict[str, Any] = {}
    with Predictor(checkpoint, detector_weights_dir=shared / "weights" / "mediapipe") as pred:
        for v in videos:
            r = pred.analyze(v)
            label = 1 if v.parent.name == "fake" else 0
            right = r.verdict == ("fake" if label else "real")
            out[v.name] = {"label": label, "fake_prob": r.fake_prob, "verdict": r.verdict, "right": right}
    out["right"] = sum(1 for k, v in out.items() if isinstance(v, dict) and v["right"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dfdc", type=Path, required=True, help="prepared DFDC-faces manifest")
    ap.add_argument("--faces", type=Path, required=True, help="prepared CIPLAB-faces manifest (same contract)")
    ap.add_argument("--out", type=Path, default=Path("runs/study"))
    ap.add_argument("--steps-dfdc", type=int, default=400)
    ap.add_argument("--steps-faces", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=100, help="optimiser steps between validations")
    ap.add_argument("--test-rows", type=int, default=2000, help="seeded sample of each test split (0: all)")
    ap.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated subset of the recipes")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, default=None, help="where to write study.json (default: --out)")
    args = ap.parse_args()

    data = {"dfdc": (args.dfdc, args.steps_dfdc), "faces": (args.faces, args.steps_faces)}
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    runs: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    for recipe in recipes:
        for name, (manifest, steps) in data.items():
            run = args.out / f"{recipe}@{name}"
            cfg = _config(recipe, steps, args.eval_every, args.shared / "weights" / "imagenet")
            if not (run / "result.json").is_file():
                t0 = time.perf_counter()
                fit(cfg, manifest, run, resume=(run / "last_state.safetensors").is_file())
                seconds[run.name] = time.perf_counter() - t0
                print(f"trained {run.name} in {seconds[run.name]:.0f} s", flush=True)
            runs[run.name] = run

    table = compare_runs(list(runs.values()), args.out)
    tests = [_test_subset(m, args.test_rows, args.out / "test_sets" / name) for name, (m, _) in data.items()]
    cross = cross_dataset_matrix(list(runs.values()), tests, args.out)
    cross.columns = ["trained on \\ tested on", "DFDC test AUC", "CIPLAB test AUC"]
    dev = {name: _dev_verdicts(run / "best.safetensors", args.shared) for name, run in runs.items()}
    rows = []
    for (name, run), (_, c) in zip(runs.items(), cross.iterrows(), strict=True):
        summary = json.loads((run / "result.json").read_text())
        rows.append(
            {
                "run": name,
                "val_auc": summary.get("best_val_auc"),
                "dfdc_test_auc": float(c["DFDC test AUC"]),
                "ciplab_test_auc": float(c["CIPLAB test AUC"]),
                "dev_videos_right": dev[name]["right"],
                "train_seconds": seconds.get(name),
            }
        )
    report = {
        "meta": run_metadata(),
        "steps": {"dfdc": args.steps_dfdc, "faces": args.steps_faces, "eval_every": args.eval_every},
        "manifests": {"dfdc": str(args.dfdc), "faces": str(args.faces)},
        "test_rows": {name: len(read_manifest(t)) for name, t in zip(data, tests, strict=True)},
        "rows": rows,
        "dev_videos": dev,
        "not_run": NOT_RUN,
        "comparison": json.loads(table.to_json(orient="records")),
    }
    out_json = args.json or (args.out / "study.json")
    atomic_write_text(out_json, json.dumps(report, indent=2, default=str))
    print(f"{'run':40s} {'val AUC':>8s} {'DFDC':>7s} {'CIPLAB':>7s} {'dev':>4s}")
    for r in rows:
        print(
            f"{r['run']:40s} {r['val_auc']:8.3f} {r['dfdc_test_auc']:7.3f} {r['ciplab_test_auc']:7.3f} "
            f"{r['dev_videos_right']:>2d}/4"
        )
    print(f"wrote {out_json}")


if __name__ == "__main__":
    main()
