"""Adversarial benchmark: attack cost per model, and robustness / detection tables on the shared face set.

Part 1 (speed): seconds per 100 images for every registered attack on meso4 and efficientnet_b0 (random init),
against the baseline measured in the same run: the plain clean forward pass on the same images (ratio column).
Part 2 (``--faces``): train a detector on ../shared/data/faces (group-disjoint split), then the robustness table
(``fakescope attack`` per attack at 2/4/8/16 / 255) and the detection table (``fakescope adv-detect fit``).

    python benchmarks/adversarial.py --n 16 --out benchmarks/results/adversarial.json
    python benchmarks/adversarial.py --skip-speed --faces --max-images 100
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
ATTACK_KW = {
    "pgd_linf": {"steps": 10},
    "pgd_l2": {"steps": 10},
    "robust_eot": {"steps": 10, "nb_samples": 4},
    "square": {"steps": 100},
}


def speed(models: list[str], n: int, eps: float, seed: int) -> list[dict]:
    from fakescope.attacks import create_attack, list_attacks
    from fakescope.models import create_detector

    rows = []
    for name in models:
        torch.manual_seed(seed)
        model = create_detector(name).eval()
        s = model.cfg.input_size
        x = torch.rand(n, 3, s, s, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            model(x[:2])
            t0 = time.perf_counter()
            y = (model(x) > 0).float()
            base = time.perf_counter() - t0
        rows.append({"model": name, "attack": "clean forward (baseline)", "s_per_100": base * 100 / n, "ratio": 1.0})
        create_attack("fgsm", model, eps=eps, seed=seed)(x[:1], y[:1])  # warm-up: ART import and set-up, untimed
        for attack in list_attacks():
            atk = create_attack(
                attack, model, eps=eps if attack != "pgd_l2" else 0.5, seed=seed, **ATTACK_KW.get(attack, {})
            )
            t0 = time.perf_counter()
            atk(x, y)
            dt = time.perf_counter() - t0
            rows.append(
                {
                    "model": name,
                    "attack": attack,
                    "params": ATTACK_KW.get(attack, {}),
                    "s_per_100": dt * 100 / n,
                    "ratio": dt / base,
                }
            )
            print(f"{name:16s} {attack:12s} {dt * 100 / n:9.2f} s/100 img  x{dt / base:8.1f}", flush=True)
    return rows


def _print_robustness(attack: str, rep: dict) -> None:
    c = rep["clean"]
    secs = rep.get("benchmark_seconds")
    print(
        f"{attack:12s} clean   fake recall {c['fake_recall']:.3f} AUC {c['auc']:.3f} "
        f"bal.acc {c['balanced_accuracy']:.3f} ({rep['n_images']} images, {rep['n_fake']} fake"
        + (f"; {secs:.0f} s)" if secs else ")"),
        flush=True,
    )
    for r in rep["results"]:
        print(
            f"{attack:12s} {r['eps_label']:7s} success {r['attack_success_rate']:.3f} AUC {r['auc']:.3f} "
            f"bal.acc {r['balanced_accuracy']:.3f} SSIM {r['ssim_mean']:.4f}",
            flush=True,
        )


def faces_tables(
    shared: Path, work: Path, config: Path, max_images: int, epochs: int, seed: int, detect_attacks: tuple[str, ...]
) -> dict:
    """Train (or reuse) a detector on the shared faces, then the robustness and detection tables.

    Every finished attack is kept in ``work`` (``attack_<name>/benchmark_report.json``), so a re-run on the same
    ``work`` folder (same options) only does what is missing.
    """
    from fakescope.attacks.evaluate import evaluate_robustness
    from fakescope.data.prepare import prepare_dataset
    from fakescope.defenses.evaluate import fit_from_manifest
    from fakescope.eval.report import json_safe
    from fakescope.train import fit, load_train_config

    manifest = work / "faces" / "manifest.parquet"
    if not manifest.is_file():
        res = prepare_dataset("csv", shared / "faces" / "labels.csv", work / "faces", size=256, cropped=True, seed=seed)
        manifest = res.manifest_path
    ckpt = work / config.stem / "best.safetensors"
    if not ckpt.is_file():
        cfg = load_train_config(config, device="cpu", num_workers=0, epochs=epochs)
        ckpt = fit(cfg, manifest, work / config.stem).best_checkpoint
    robustness = {}
    for attack in ("fgsm", "pgd_linf", "robust_eot", "square"):
        done = work / f"attack_{attack}" / "benchmark_report.json"
        if done.is_file():  # finished by an earlier invocation on the same work folder
            robustness[attack] = rep = json.loads(done.read_text())
            _print_robustness(attack, rep)
            continue
        t0 = time.perf_counter()
        rep = evaluate_robustness(
            ckpt,
            manifest,
            attack,
            [2 / 255, 4 / 255, 8 / 255, 16 / 255],
            "test",
            max_images,
            work / f"attack_{attack}",
            seed=seed,
            **ATTACK_KW.get(attack, {}),
        )
        rep["benchmark_seconds"] = time.perf_counter() - t0
        done.write_text(json.dumps(json_safe(rep), indent=2))
        robustness[attack] = rep
        _print_robustness(attack, rep)
    t0 = time.perf_counter()
    det = fit_from_manifest(
        ckpt, manifest, work / "det.json", max_images=max_images, eval_attacks=detect_attacks, seed=seed
    )
    det["benchmark_seconds"] = time.perf_counter() - t0
    for r in det["results"]:
        print(
            f"{r['attack']:30s} {r['eps_label']:6s} {r['detector']:18s} AUROC {r['auroc']:.3f} "
            f"TPR@5%FPR {r['tpr_at_5fpr']:.3f}",
            flush=True,
        )
    return {"checkpoint": str(ckpt), "robustness": robustness, "detection": det}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="meso4,efficientnet_b0")
    p.add_argument("--n", type=int, default=16, help="images per timing (results scaled to 100)")
    p.add_argument("--eps", type=float, default=8 / 255)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--faces", action="store_true", help="also train on ../shared/data/faces and build the tables")
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--work", type=Path, default=REPO / "benchmarks" / "results" / "adversarial_work")
    p.add_argument("--max-images", type=int, default=100)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--detect-attacks", default="fgsm,pgd_linf", help="attacks of the detection table")
    p.add_argument("--config", type=Path, default=REPO / "configs" / "demo" / "meso4.yaml", help="training config")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "adversarial.json")
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    result: dict = {"n_images": args.n, "eps": args.eps, "threads": torch.get_num_threads()}
    if not args.skip_speed:
        result["speed"] = speed(args.models.split(","), args.n, args.eps, args.seed)
    if args.faces:
        result["faces"] = faces_tables(
            args.shared,
            args.work,
            args.config,
            args.max_images,
            args.epochs,
            args.seed,
            tuple(args.detect_attacks.split(",")),
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(result, indent=2, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
