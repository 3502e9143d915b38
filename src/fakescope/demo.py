"""The end-to-end demo on built-in data: data -> prepare -> train two light models -> evaluate -> compare ->
attack the demo model -> fit and score feature squeezing.

Everything runs offline on the CPU. Each stage calls the public library; :func:`run_demo` reports progress through
an optional callback (the CLI prints stage headers from it) and never prints itself.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fakescope.utils.io import atomic_write_text

_logger = logging.getLogger(__name__)

#: ``on_stage(name, info)``: called when a stage starts (``info`` empty) and ends (``info["seconds"]`` set).
StageCallback = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo run.

    Attributes:
        groups: image groups of the demo data (each: real images and their self-blended fakes).
        reals_per_group: real images per group.
        videos: source clips (each written as a real and a fake video).
        num_frames: frames sampled per video.
        epochs: training epochs per model name.
        max_steps_per_epoch: optimiser-step cap per epoch (None: full epochs).
        attack_images: test crops attacked (half fakes where possible).
        attack_steps: PGD steps.
        eps: L-inf budgets of the attack, in [0, 1] units.
        squeeze_images: validation crops used to fit feature squeezing's threshold.
    """

    groups: int = 40
    reals_per_group: int = 3
    videos: int = 3
    num_frames: int = 8
    epochs: dict[str, int] = field(default_factory=lambda: {"meso4": 5, "cnn": 3})
    max_steps_per_epoch: int | None = None
    attack_images: int = 32
    attack_steps: int = 10
    eps: tuple[float, ...] = (4 / 255, 8 / 255)
    squeeze_images: int = 32

    @classmethod
    def quick(cls) -> DemoPlan:
        """A smoke-test sized plan (well under a minute of compute): same stages, tiny data and budgets."""
        return cls(
            groups=12,
            reals_per_group=2,
            videos=2,
            num_frames=4,
            epochs={"meso4": 1, "cnn": 1},
            max_steps_per_epoch=3,
            attack_images=8,
            attack_steps=3,
            squeeze_images=8,
        )


@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes:
        out_dir: the demo folder.
        manifest: the prepared manifest.
        runs: run directory per model name.
        comparison: the comparison table (also ``comparison.{md,csv,html}`` in ``out_dir``).
        attack_summary: one row per budget: attack success rate, AUC and balanced accuracy under attack, and
            feature squeezing's detection AUROC and TPR at 5 % FPR (also ``attack_summary.{md,csv,html}``).
        seconds: wall time per stage.
    """

    out_dir: Path
    manifest: Path
    runs: dict[str, Path]
    comparison: pd.DataFrame
    attack_summary: pd.DataFrame | None
    seconds: dict[str, float] = field(default_factory=dict)


def _train_config(model: str, epochs: int, plan: DemoPlan, seed: int) -> Any:
    from fakescope.train import load_train_config

    # the values of configs/demo/<model>.yaml, kept here so the installed package needs no repository files
    values: dict[str, Any] = {
        "model": model,
        "epochs": epochs,
        "batch_size": 16,
        "lr": 1e-3,
        "optimizer": "adam",
        "balance": "sampler",
        "patience": 4,
        "precise_bn_batches": 10 if model == "meso4" else 0,
        "seed": seed,
        "device": "cpu",
        "max_steps_per_epoch": plan.max_steps_per_epoch,
    }
    augment = {"flip": 0.5, "rotate_p": 0.0, "color_p": 0.0, "blur_p": 0.0, "jpeg_p": 0.0}
    return load_train_config(None, {f"augment.{k}": v for k, v in augment.items()}, **values)


def attack_and_squeeze(
    checkpoint: str | Path, manifest: str | Path, out_dir: str | Path, plan: DemoPlan, seed: int = 0
) -> pd.DataFrame:
    """PGD (L-inf) on the test crops at each budget, and feature squeezing fitted on clean validation crops.

    Writes ``attack/`` (the robustness report of :func:`fakescope.attacks.evaluate.evaluate_robustness`) and
    ``feature_squeezing.json`` + ``feature_squeezing.report.json`` into ``out_dir``; returns the summary table.
    """
    from fakescope.attacks.evaluate import evaluate_robustness, load_images, run_attack
    from fakescope.defenses import FeatureSqueezing
    from fakescope.defenses.evaluate import detection_stats
    from fakescope.models import load_checkpoint

    out = Path(out_dir)
    robust = evaluate_robustness(
        checkpoint,
        manifest,
        "pgd_linf",
        plan.eps,
        split="test",
        max_images=plan.attack_images,
        out_dir=out / "attack",
        seed=seed,
        steps=plan.attack_steps,
    )
    model, _meta = load_checkpoint(checkpoint)
    size = model.cfg.input_size
    x_fit, _, _ = load_images(manifest, size, "val", plan.squeeze_images, seed)
    squeezing = FeatureSqueezing(model).fit(x_fit, fpr=0.05)
    atomic_write_text(out / "feature_squeezing.json", json.dumps(squeezing.to_dict(), indent=2))
    x_test, y_test, _ = load_images(manifest, size, "test", plan.attack_images, seed)
    clean_scores = squeezing.score(x_test)
    fakes = x_test[y_test == 1]
    rows = []
    for k, (eps, res) in enumerate(zip(plan.eps, robust["results"], strict=True)):
        x_adv = run_attack(
            model, fakes, np.ones(len(fakes), int), "pgd_linf", eps, seed=seed + 100 + k, steps=plan.attack_steps
        )
        det = detection_stats(clean_scores, squeezing.score(x_adv), squeezing.threshold)
        rows.append(
            {
                "attack": "pgd_linf",
                "eps": res["eps_label"],
                "attack success rate": res["attack_success_rate"],
                "AUC under attack": res["auc"],
                "balanced accuracy under attack": res["balanced_accuracy"],
                "fake recall under attack": res["fake_recall"],
                "squeezing AUROC": det["auroc"],
                "squeezing TPR@5%FPR": det["tpr_at_5fpr"],
            }
        )
    clean = robust["clean"]
    rows.insert(
        0,
        {
            "attack": "none (clean)",
            "eps": "0",
            "attack success rate": float("nan"),
            "AUC under attack": clean["auc"],
            "balanced accuracy under attack": clean["balanced_accuracy"],
            "fake recall under attack": clean["fake_recall"],
            "squeezing AUROC": float("nan"),
            "squeezing TPR@5%FPR": float("nan"),
        },
    )
    table = pd.DataFrame(rows)
    report = {
        "checkpoint": str(checkpoint),
        "threshold": squeezing.threshold,
        "n_fit": len(x_fit),
        "n_test": len(x_test),
        "rows": table.replace({np.nan: None}).to_dict("records"),
    }
    atomic_write_text(out / "feature_squeezing.report.json", json.dumps(report, indent=2))
    return table


class _Stages:
    """Runs the demo's stages, timing each (``seconds``) and reporting its start and end to ``on_stage``."""

    def __init__(self, on_stage: StageCallback | None) -> None:
        self.notify = on_stage or (lambda *_: None)
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run stage ``name`` (``fn()``) and return its value."""
        self.notify(name, {})
        t0 = time.perf_counter()
        value = fn()
        self.seconds[name] = round(time.perf_counter() - t0, 2)
        self.notify(name, {"seconds": self.seconds[name]})
        _logger.info("demo stage %s: %.1f s", name, self.seconds[name])
        return value


def run_demo(
    out_dir: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    plan: DemoPlan | None = None,
    with_attacks: bool = True,
    on_stage: StageCallback | None = None,
) -> DemoResult:
    """Run the whole demo into ``out_dir``.

    Layout: ``data/`` (media and prepared crops + manifest), ``runs/<model>/`` (training runs, each with an
    ``eval-test/`` report), ``comparison.{md,csv,html}``, ``attack/`` and ``feature_squeezing*.json``,
    ``attack_summary.{md,csv,html}`` and ``demo.json`` (stage timings and result paths).

    Args:
        out_dir: the demo folder (created; an earlier demo there is overwritten stage by stage).
        quick: tiny data and budgets (a smoke test of every stage); ignored when ``plan`` is given.
        seed: seed of the data, the split, training and the attacks.
        plan: explicit sizes.
        with_attacks: run the attack and feature-squeezing stages.
        on_stage: progress callback (see :data:`StageCallback`).
    """
    from fakescope.data.synth import DemoSpec, build_demo_manifest
    from fakescope.eval import compare_runs, evaluate_checkpoint
    from fakescope.eval.compare import write_tables
    from fakescope.train import fit

    plan = plan or (DemoPlan.quick() if quick else DemoPlan())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stage = _Stages(on_stage)
    seconds = stage.seconds
    spec = DemoSpec(groups=plan.groups, reals_per_group=plan.reals_per_group, videos=plan.videos)
    manifest = stage(
        "data", lambda: build_demo_manifest(out / "data", seed=seed, spec=spec, num_frames=plan.num_frames)
    )
    runs: dict[str, Path] = {}
    for model, epochs in plan.epochs.items():
        cfg = _train_config(model, epochs, plan, seed)
        result = stage(
            f"train {model} ({epochs} epochs)", lambda cfg=cfg, model=model: fit(cfg, manifest, out / "runs" / model)
        )
        runs[model] = Path(result.run_dir)

    def evaluate_all() -> None:
        for run in runs.values():
            evaluate_checkpoint(run / "best.safetensors", manifest, "test", out_dir=run / "eval-test")

    stage("evaluate", evaluate_all)
    comparison = stage("compare", lambda: compare_runs(list(runs.values()), out))
    summary = None
    if with_attacks:
        first = next(iter(runs.values()))
        summary = stage(
            "attack + feature squeezing",
            lambda: attack_and_squeeze(first / "best.safetensors", manifest, out, plan, seed=seed),
        )
        write_tables(summary, out, "attack_summary", f"PGD L-inf on {first.name}, and feature squeezing")
    info = {
        "manifest": str(manifest),
        "runs": {k: str(v) for k, v in runs.items()},
        "seconds": seconds,
        "quick": quick,
        "seed": seed,
    }
    atomic_write_text(out / "demo.json", json.dumps(info, indent=2))
    return DemoResult(out, Path(manifest), runs, comparison, summary, seconds)
