"""Adaptive attacks and whole-pipeline attacks on the bundled default detector (issue 14).

On held-out DFDC faces (the ``test`` split of a group-disjoint manifest the shipped ``mobilenet_v2.dfdc`` was not
trained on), with the detectors fitted on the ``val`` split:

1. the ``adv-detect`` table per attacker (non-adaptive, adaptive-mean, all-branches, penalty, learned, both);
2. the strength checks (eps sweep, adaptive loop vs ART PGD on the undefended model, steps/restarts curve,
   BPDA gradients through every squeezer);
3. black-box transfer: PGD crafted on one detector (or the MesoNet ensemble), tested on the others, against
   random +-eps sign noise on the same crops;
4. the face-detector attack on the dev videos (BlazeFace misses the face; white-box PGD through the PyTorch port
   of BlazeFace, with ``--face-method both`` also the black-box Square Attack as the baseline), and
   ``attack-video`` with the robust EOT attack through H.264 at CRF 18/23/28.

    OMP_NUM_THREADS=1 python benchmarks/adversarial_pipeline.py --out benchmarks/results/adversarial_pipeline.json

Only the face-detector attack, merged into an existing result file (the other sections kept):

    OMP_NUM_THREADS=1 python benchmarks/adversarial_pipeline.py --skip detection,strength,transfer,pipeline_video \
        --face-method both --merge --out benchmarks/results/adversarial_pipeline_attacks.json

``OMP_NUM_THREADS=1`` matters for the face attack: the port's small convolutions ran 70x slower per step with two
threads on a busy two-core machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
MESONETS = ("meso4.mesonet_df", "mesoinception4.mesonet_df", "meso4.mesonet_f2f", "mesoinception4.mesonet_f2f")


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    import torch.nn.functional as F

    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def _load(name: str):
    from fakescope.models import load_model

    model, meta = load_model(name, weights_dir=SHARED / "weights" / "mesonet")
    return model.eval(), float(meta.get("threshold", 0.5))


def images(args, model, split: str, n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Face crops of a manifest split as the model takes them: the manifest's own crops when they were made in the
    model's contract, else each row's source file cut by ``Predictor.face_inputs`` (what ``predict`` scores)."""
    from fakescope.attacks.evaluate import load_images, sample_rows
    from fakescope.data.contract import contract_mismatch
    from fakescope.data.manifest import read_manifest
    from fakescope.predict import Predictor

    if contract_mismatch(model.cfg, args.manifest) is None:
        x, y, _ = load_images(args.manifest, model.cfg.input_size, split, n, seed)
        return x, y
    df = read_manifest(args.manifest)
    df = sample_rows(df[df["split"] == split].drop_duplicates("media_path"), n, seed)
    xs, ys = [], []
    with Predictor(model, detector_weights_dir=SHARED / "weights" / "mediapipe") as pred:
        for path, label in zip(df["media_path"], df["label"], strict=True):
            crops = pred.face_inputs(path)
            if crops:
                xs.append(torch.from_numpy(crops[0].image).permute(2, 0, 1).float() / 255.0)
                ys.append(int(label))
    return torch.stack(xs), np.asarray(ys)


def detection(args, model, thr, table: bool = True) -> tuple[dict | None, tuple, torch.Tensor]:
    from fakescope.defenses.evaluate import AdaptiveConfig, detection_report, fit_detectors

    x_fit, y_fit = images(args, model, "val", args.fit_images, args.seed)
    t0 = time.perf_counter()
    squeezing, learned = fit_detectors(model, x_fit, y_fit, eps_list=(4 / 255, 8 / 255), seed=args.seed)
    x, y = images(args, model, "test", args.test_images, args.seed + 1)
    if not table:
        return None, (squeezing, learned, x, y), x[y == 1]
    cfg = AdaptiveConfig(steps=args.steps, restarts=args.restarts)
    rep = detection_report(
        model, squeezing, learned, x, y, ("fgsm", "pgd_linf"), (4 / 255, 8 / 255), thr, adaptive_cfg=cfg
    )
    rep["seconds"] = time.perf_counter() - t0
    rep["fit"] = {"split": "val", "n_images": len(y_fit), "attack": "pgd_linf", "eps": ["4/255", "8/255"]}
    print(f"\n== adv-detect on {args.model} ({rep['n_clean']} clean test, {rep['n_fake_attacked']} fakes)")
    print(f"thresholds {rep['thresholds']}, clean FPR {rep['fpr_at_threshold_clean']}")
    print(f"{'attacker':24s} {'eps':6s} {'detector':18s} success  AUROC  TPR@5%  succ&undet  both")
    for r in rep["results"]:
        print(
            f"{r['attack']:24s} {r['eps_label']:6s} {r['detector']:18s} {r['attack_success_rate']:.3f}   "
            f"{r['auroc']:.3f}  {r['tpr_at_5fpr']:.3f}   {r['success_undetected']:.3f}      "
            f"{r['success_undetected_both']:.3f}",
            flush=True,
        )
    return rep, (squeezing, learned, x, y), x[y == 1]


def strength(args, model, thr, fitted) -> dict:
    """The Tramer et al. checks of the strongest attacker on the fakes the model catches clean."""
    from fakescope.attacks.evaluate import predict_proba
    from fakescope.defenses.evaluate import AdaptiveConfig, strength_checks

    squeezing, learned, x, y = fitted
    cfg = AdaptiveConfig(steps=args.steps, restarts=args.restarts)
    fakes = x[y == 1]
    fakes = fakes[predict_proba(model, fakes) >= thr]  # the strength checks use fakes the model catches clean
    t0 = time.perf_counter()
    checks = strength_checks(
        model, squeezing, learned, fakes, thr, undefended_eps=(0.125 / 255, 0.25 / 255), adaptive_cfg=cfg
    )
    checks["seconds"] = time.perf_counter() - t0
    print(f"\n== strength checks ({checks['attacker']}, {checks['n_fakes']} caught fakes)")
    for r in checks["eps_sweep"]:
        print(f"eps {r['eps_label']:6s} success {r['attack_success_rate']:.3f} both {r['success_undetected_both']:.3f}")
    for r in checks["undefended"]:
        print(f"undefended eps {r['eps_label']}: loop {r['adaptive_loop_success']:.3f} ART {r['art_pgd_success']:.3f}")
    c = checks.get("curve", {})
    print(
        "by step (0,1,2,5,10,25,50,100):",
        [round(c["success_by_step"][min(k, args.steps)], 3) for k in (0, 1, 2, 5, 10, 25, 50, 100)],
    )
    print("by restart:", [round(v, 3) for v in c["success_by_restart"]], "gradients:", checks["gradients"], flush=True)
    return checks


def transfer(args, fakes: torch.Tensor) -> dict:
    """PGD-10 at eps crafted on a source, success on every target, against +-eps sign noise on the same crops."""
    from fakescope.attacks.evaluate import predict_proba, run_attack

    eps = 8 / 255
    names = ("mobilenet_v2.dfdc", *MESONETS, "mesonet_ensemble")
    models = {n: _load(n) for n in names}
    gen = torch.Generator().manual_seed(args.seed)
    noise = (fakes + eps * torch.sign(torch.rand(fakes.shape, generator=gen) - 0.5)).clamp(0, 1)
    crafted = {"random_sign_noise": noise}
    for src in ("mobilenet_v2.dfdc", "mesonet_ensemble"):
        m, _ = models[src]
        xs = _resize(fakes, m.cfg.input_size)
        adv = run_attack(m, xs, np.ones(len(xs), int), "pgd_linf", eps, seed=args.seed, steps=10)
        # the perturbation, brought back to the 160 px crops
        crafted[f"pgd_linf@{src}"] = (fakes + _resize(adv, 160) - _resize(xs, 160)).clamp(0, 1)
    rows = []
    for tgt in names:
        m, thr = models[tgt]
        p_clean = predict_proba(m, _resize(fakes, m.cfg.input_size))
        caught = p_clean >= thr
        for src, x_adv in crafted.items():
            p = predict_proba(m, _resize(x_adv, m.cfg.input_size))
            rows.append(
                {
                    "source": src,
                    "target": tgt,
                    "white_box": src.endswith(tgt),
                    "n_fakes": len(fakes),
                    "n_caught_clean": int(caught.sum()),
                    "fake_recall_clean": float(caught.mean()),
                    "fake_recall_adv": float((p >= thr).mean()),
                    "success_on_caught": float((p[caught] < thr).mean()) if caught.any() else float("nan"),
                    "linf": float((x_adv - fakes).abs().amax()),
                }
            )
    print("\n== transfer (8/255 L-inf, PGD-10; success = caught fakes turned real)")
    for r in rows:
        print(
            f"{r['source']:32s} -> {r['target']:28s} caught {r['n_caught_clean']:3d} "
            f"success {r['success_on_caught']:.3f}{' (white box)' if r['white_box'] else ''}",
            flush=True,
        )
    return {
        "eps": eps,
        "attack": "pgd_linf",
        "steps": 10,
        "resize": "bilinear (antialias) between input sizes",
        "rows": rows,
    }


def pipeline(args) -> dict:
    from fakescope.attacks.face_detector import face_attack_videos
    from fakescope.video_attack import attack_video

    videos = sorted((SHARED / "dev" / "videos").glob("*/*.mp4"))
    methods = ("pgd", "square") if args.face_method == "both" else (args.face_method,)
    out: dict = {}
    for method in methods:
        t0 = time.perf_counter()
        faces = face_attack_videos(
            videos,
            8 / 255,
            args.face_frames,
            args.face_queries,
            SHARED / "weights" / "mediapipe",
            crf=18,
            seed=args.seed,
            method=method,
            steps=args.face_steps,
            restarts=args.face_restarts,
        )
        faces["seconds"] = time.perf_counter() - t0
        print(
            f"\n== face-detector attack ({method}): {faces['n_attacked']} frames, hidden {faces['hidden_rate']:.3f}, "
            f"after H.264 CRF 18 {faces['hidden_rate_after_h264']:.3f}"
        )
        for v in faces["videos"]:
            print(v, flush=True)
        # the first method is the reported attack; a second one (Square) is kept beside it as the baseline
        out["face_detector" if method == methods[0] else f"face_detector_baseline_{method}"] = faces
    if "pipeline_video" in set(args.skip.split(",")):
        return out
    out["video"] = []
    work = Path(args.work)
    for attack, kw in (("pgd_linf", {"steps": 10}), ("robust_eot", {"steps": 20, "nb_samples": 4})):
        t0 = time.perf_counter()
        rep = attack_video(
            "mobilenet_v2.dfdc",
            SHARED / "dev" / "videos" / "fake" / args.video,
            work / f"video_{attack}",
            8 / 255,
            attack,
            detector_weights_dir=SHARED / "weights" / "mediapipe",
            crfs=(18, 23, 28),
            max_frames=args.video_frames,
            seed=args.seed,
            **kw,
        )
        rep["seconds"] = time.perf_counter() - t0
        out["video"].append(rep)
        c = rep["crop"]
        print(f"\n== attack-video {attack}: crops {rep['n_crops']}, success float {c['success_rate']:.3f}")
        print(f"original {rep['original']['verdict']} {rep['original']['fake_prob']}")
        for e in rep["per_crf"]:
            print(
                f"crf {e['crf']}: clean {e['reencoded_clean']['verdict']} {e['reencoded_clean']['fake_prob']:.3f} "
                f"attacked {e['attacked']['verdict']} {e['attacked']['fake_prob']:.3f} "
                f"frame recall {e['attacked']['frame_fake_recall']} survives {e['survives_reencoding']}",
                flush=True,
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mobilenet_v2.dfdc", help="detector attacked by detection/strength")
    p.add_argument("--manifest", type=Path, default=REPO.parent / "runs" / "dfdc160cut" / "manifest.parquet")
    p.add_argument("--fit-images", type=int, default=160, help="val images (half fake) fitting the detectors")
    p.add_argument("--test-images", type=int, default=96, help="held-out test images (half fake)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--restarts", type=int, default=5)
    p.add_argument("--face-frames", type=int, default=8, help="frames per dev video for the face-detector attack")
    p.add_argument("--face-queries", type=int, default=500, help="Square Attack queries per frame")
    p.add_argument(
        "--face-method", choices=("pgd", "square", "both"), default="pgd", help="both: PGD, and Square as baseline"
    )
    p.add_argument("--face-steps", type=int, default=100, help="PGD steps per restart (face-detector attack)")
    p.add_argument("--face-restarts", type=int, default=2, help="PGD restarts (face-detector attack)")
    p.add_argument("--video", default="dfdc_abofeumbvv.mp4")
    p.add_argument("--video-frames", type=int, default=48)
    p.add_argument(
        "--skip",
        default="",
        help="comma list of parts to skip: detection,strength,transfer,pipeline,pipeline_video (attack-video only)",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="update --out in place: replace only the sections run now, keep the others and their run info",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("/tmp/fakescope_adv_pipeline"))
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "adversarial_pipeline.json")
    args = p.parse_args()
    from fakescope.eval.report import json_safe
    from fakescope.utils.runinfo import run_metadata

    skip = set(args.skip.split(","))
    model, thr = _load(args.model)
    result: dict = {"model": args.model, "model_threshold": thr, "threads": torch.get_num_threads()}
    result.update(args={k: str(v) for k, v in vars(args).items()}, **run_metadata())
    t0 = time.perf_counter()
    fakes = None
    if "detection" not in skip or "strength" not in skip:
        rep, fitted, fakes = detection(args, model, thr, table="detection" not in skip)
        if rep is not None:
            result["detection"] = rep
        if "strength" not in skip:
            result["strength_checks"] = strength(args, model, thr, fitted)
        _write(args.out, result, json_safe)
    if "transfer" not in skip:
        if fakes is None:
            from fakescope.attacks.evaluate import load_images

            x, y, _ = load_images(args.manifest, 160, "test", args.test_images, args.seed + 1)
            fakes = x[y == 1]
        result["transfer"] = transfer(args, fakes)
        _write(args.out, result, json_safe)
    if "pipeline" not in skip:
        result["pipeline"] = pipeline(args)
    result["seconds"] = time.perf_counter() - t0
    if args.merge:
        result = _merged(args.out, result)
    _write(args.out, result, json_safe)
    print(f"wrote {args.out} ({time.perf_counter() - t0:.0f} s)")


_SECTIONS = ("detection", "strength_checks", "transfer", "pipeline")


def _merged(path: Path, result: dict) -> dict:
    """The results already in ``path`` with the sections of ``result`` put in (``pipeline`` key by key).

    The top-level run info stays that of the original run; this run's info is appended to ``merged_runs``.
    """
    if not path.exists():
        return result
    old = json.loads(path.read_text())
    parts = [k for k in _SECTIONS if k in result]
    for key in parts:
        if key == "pipeline" and isinstance(old.get(key), dict):
            old[key].update(result[key])
        else:
            old[key] = result[key]
    run = {k: v for k, v in result.items() if k not in _SECTIONS}
    updated = [f"pipeline.{k}" for k in result.get("pipeline", {})] + [k for k in parts if k != "pipeline"]
    old.setdefault("merged_runs", []).append({"updated": updated, **run})
    return old


def _write(path: Path, result: dict, json_safe) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(result), indent=2))


if __name__ == "__main__":
    main()
