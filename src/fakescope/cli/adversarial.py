"""CLI for adversarial robustness: ``attacks list``, ``attack``, ``attack-video`` and ``adv-detect fit|score``."""

from __future__ import annotations

from pathlib import Path

import typer

attacks_app = typer.Typer(help="Registered adversarial attacks.", no_args_is_help=True)
adv_detect_app = typer.Typer(
    help="Detect adversarial inputs (feature squeezing, learned detector).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(attacks_app, name="attacks")
    app.command("attack")(attack)
    app.command("attack-video")(attack_video)
    app.add_typer(adv_detect_app, name="adv-detect")


def _eps(text: str) -> list[float]:
    from fakescope.attacks import parse_eps

    try:
        return parse_eps(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


@attacks_app.command("list")
def attacks_list() -> None:
    """List the attacks with their threat model and options."""
    from rich.console import Console
    from rich.table import Table

    from fakescope.attacks import get_attack_info, list_attacks

    table = Table("name", "description", "options")
    for name in list_attacks():
        info = get_attack_info(name)
        opts = ", ".join(f"{k}={v}" for k, v in info["params"].items() if k != "batch_size")
        table.add_row(name, info["description"], opts)
    Console().print(table)


def attack(
    checkpoint: Path = typer.Argument(..., help="fakescope checkpoint (.safetensors)."),
    manifest: Path = typer.Argument(..., help="Manifest (.parquet or its folder)."),
    attack_name: str = typer.Option("pgd_linf", "--attack", "-a", help="Attack name (fakescope attacks list)."),
    eps: str = typer.Option("2/255,4/255,8/255,16/255", "--eps", help="Budgets, comma separated (8/255 or 0.03)."),
    split: str = typer.Option("test", "--split", help="Manifest split to attack."),
    max_images: int | None = typer.Option(None, "--max-images", help="At most N images (half real, half fake)."),
    steps: int | None = typer.Option(None, "--steps", help="Attack steps / queries (attack default if omitted)."),
    seed: int = typer.Option(0, "--seed", help="Attack seed."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per attack call."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Report folder (report.json/.md, curve PNG)."),
    save_examples: bool = typer.Option(False, "--save-examples", help="Write the adversarial images as PNG."),
) -> None:
    """Attack a detector on a manifest split at several budgets; report success rate, AUC, SSIM."""
    from rich.console import Console
    from rich.table import Table

    from fakescope.attacks.evaluate import evaluate_robustness

    eps_list = _eps(eps)
    if save_examples and out is None:
        raise typer.BadParameter("--save-examples needs --out")
    try:
        report = evaluate_robustness(
            checkpoint,
            manifest,
            attack_name,
            eps_list,
            split,
            max_images,
            out,
            save_examples,
            seed,
            batch_size,
            device,
            steps=steps,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    c = report["clean"]
    table = Table(title=f"{report['model']} under {report['attack']} ({report['n_images']} images, split {split})")
    for col in ("eps", "success on fakes", "fake recall", "AUC", "bal. acc.", "L-inf", "L2", "SSIM"):
        table.add_column(col, justify="right")
    table.add_row(
        "clean", "-", f"{c['fake_recall']:.3f}", f"{c['auc']:.3f}", f"{c['balanced_accuracy']:.3f}", "0", "0", "1"
    )
    for r in report["results"]:
        table.add_row(
            r["eps_label"],
            f"{r['attack_success_rate']:.3f}",
            f"{r['fake_recall']:.3f}",
            f"{r['auc']:.3f}",
            f"{r['balanced_accuracy']:.3f}",
            f"{r['linf_mean']:.4f}",
            f"{r['l2_mean']:.3f}",
            f"{r['ssim_mean']:.4f}",
        )
    console = Console()
    console.print(table)
    if out is not None:
        console.print(f"report: {out / 'report.md'}, curve: {out / 'robustness_curve.png'}")


def attack_video(
    checkpoint: Path = typer.Argument(..., help="fakescope checkpoint (.safetensors)."),
    video: Path = typer.Argument(..., help="A fake video to attack."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (attacked MP4 + video_attack.json)."),
    eps: str = typer.Option("8/255", "--eps", help="L-inf budget on the face crop."),
    attack_name: str = typer.Option("pgd_linf", "--attack", "-a", help="Attack (robust_eot survives compression)."),
    crf: str = typer.Option("23", "--crf", help="H.264 constant rate factor(s), comma separated (18,23,28)."),
    detector: str = typer.Option("blazeface", "--detector", help="Face detector: blazeface | haar."),
    steps: int | None = typer.Option(None, "--steps", help="Attack steps."),
    num_frames: int = typer.Option(32, "--num-frames", help="Frames the prediction pipeline samples."),
    max_frames: int | None = typer.Option(None, "--max-frames", help="Attack only the first N frames."),
    seed: int = typer.Option(0, "--seed", help="Attack seed."),
) -> None:
    """Attack a video's faces, paste back, re-encode (H.264) and run the full prediction pipeline again."""
    from rich.console import Console

    from fakescope.video_attack import attack_video as run

    eps_list = _eps(eps)
    if len(eps_list) != 1:
        raise typer.BadParameter("attack-video takes one --eps")
    try:
        crfs = [int(c) for c in _names(crf)]
    except ValueError as exc:
        raise typer.BadParameter(f"--crf takes integers such as 18,23,28, got {crf!r}") from exc
    r = run(
        checkpoint,
        video,
        out,
        eps_list[0],
        attack_name,
        crfs[0],
        detector,
        num_frames=num_frames,
        seed=seed,
        steps=steps,
        crfs=crfs,
        max_frames=max_frames,
    )
    console = Console()
    c = r["crop"]
    console.print(
        f"{r['n_crops']} face crops in {r['n_frames']} frames attacked with {r['attack']} eps {r['eps_label']}"
    )
    console.print(
        f"crop level: success {c['success_rate']:.3f} (float), {c['success_rate_after_paste']:.3f} "
        f"(pasted into 8-bit frames); mean P(fake) {c['mean_fake_prob_clean']:.3f} -> "
        f"{c['mean_fake_prob_adv']:.3f}"
    )
    rows = [("original", r["original"])]
    for c in r["per_crf"]:
        rows += [(f"clean crf {c['crf']}", c["reencoded_clean"]), (f"attacked crf {c['crf']}", c["attacked"])]
    for key, s in rows:
        fp = "n/a" if s["fake_prob"] is None else f"{s['fake_prob']:.3f}"
        console.print(f"{key:16s} verdict {s['verdict']:8s} P(fake) {fp}  faces {s['n_faces']}")
    for c in r["per_crf"]:
        console.print(f"attack survives H.264 crf {c['crf']} + re-detection: [bold]{c['survives_reencoding']}[/]")
        console.print(f"attacked video: {c['attacked_video']}")


@adv_detect_app.command("fit")
def adv_detect_fit(
    checkpoint: Path = typer.Argument(..., help="fakescope checkpoint (.safetensors)."),
    manifest: Path = typer.Argument(..., help="Manifest with the fit and test splits."),
    out: Path = typer.Option(..., "--out", "-o", help="Detectors file to write (DET.json)."),
    fit_split: str = typer.Option("val", "--fit-split", help="Split the detectors are fitted on."),
    test_split: str = typer.Option("test", "--test-split", help="Held-out split they are measured on."),
    max_images: int | None = typer.Option(200, "--max-images", help="At most N images per split."),
    attack_name: str = typer.Option("pgd_linf", "--attack", help="Attack that makes the learned detector's data."),
    eval_attacks: str = typer.Option("fgsm,pgd_linf", "--eval-attacks", help="Attacks measured on the test split."),
    eps: str = typer.Option("4/255,8/255", "--eps", help="Budgets."),
    steps: int = typer.Option(10, "--steps", help="Attack steps."),
    adaptive: bool = typer.Option(True, "--adaptive/--no-adaptive", help="Also run attackers that know the detector."),
    attackers: str = typer.Option(
        "adaptive_mean,adaptive_all_branches,adaptive_penalty,adaptive_joint,adaptive_learned,adaptive_both",
        "--attackers",
        help="Adaptive attackers (see docs: adaptive attacks).",
    ),
    adaptive_steps: int = typer.Option(100, "--adaptive-steps", help="Steps per restart of the strong attackers."),
    adaptive_restarts: int = typer.Option(5, "--adaptive-restarts", help="Random restarts of the strong attackers."),
    seed: int = typer.Option(0, "--seed", help="Seed."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N."),
) -> None:
    """Fit feature squeezing and a feature-space detector; report evasion and detection per attacker."""
    from rich.console import Console
    from rich.table import Table

    from fakescope.defenses.evaluate import ADAPTIVE_ATTACKERS, AdaptiveConfig, fit_from_manifest

    names = tuple(_names(attackers))
    unknown = sorted(set(names) - set(ADAPTIVE_ATTACKERS))
    if unknown:
        raise typer.BadParameter(f"unknown attackers {unknown}; choose from {list(ADAPTIVE_ATTACKERS)}")
    cfg = AdaptiveConfig(steps=adaptive_steps, restarts=adaptive_restarts, attackers=names)

    report = fit_from_manifest(
        checkpoint,
        manifest,
        out,
        fit_split,
        test_split,
        max_images,
        attack_name,
        _names(eval_attacks),
        _eps(eps),
        steps,
        adaptive,
        seed,
        device,
        adaptive_cfg=cfg,
    )
    table = Table(
        title=f"detection on split {test_split} ({report['n_clean']} clean, {report['n_fake_attacked']} attacked fakes)"
    )
    for col in ("attack", "eps", "detector", "success", "AUROC", "TPR@5%FPR", "TPR@thr", "succ.&undet.", "both"):
        table.add_column(col)
    for r in report["results"]:
        table.add_row(
            r["attack"],
            r["eps_label"],
            r["detector"],
            f"{r['attack_success_rate']:.3f}",
            f"{r['auroc']:.3f}",
            f"{r['tpr_at_5fpr']:.3f}",
            f"{r.get('tpr_at_threshold', float('nan')):.3f}",
            f"{r['success_undetected']:.3f}",
            f"{r['success_undetected_both']:.3f}",
        )
    Console().print(table)
    Console().print(f"detectors: {out}; report: {out.with_suffix('')}.report.md")


@adv_detect_app.command("score")
def adv_detect_score(
    detectors: Path = typer.Argument(..., help="Detectors file from adv-detect fit."),
    checkpoint: Path = typer.Argument(..., help="The checkpoint the detectors were fitted for."),
    inputs: list[Path] = typer.Argument(..., help="A manifest, or face-crop images / folders."),
    split: str = typer.Option("test", "--split", help="Split, when the input is a manifest."),
    max_images: int | None = typer.Option(None, "--max-images", help="At most N manifest rows."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the scores as CSV."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N."),
) -> None:
    """Adversarial-suspicion scores (feature squeezing and learned detector) per image."""
    from rich.console import Console
    from rich.table import Table

    from fakescope.defenses.evaluate import score_inputs
    from fakescope.utils.io import atomic_path

    df = score_inputs(detectors, checkpoint, inputs, split, max_images, device)
    if out is not None:
        with atomic_path(out) as tmp:
            df.to_csv(tmp, index=False)
    table = Table("path", "P(fake)", "squeeze", "flag", "learned", "flag", "error")
    for r in df.head(50).itertuples():
        table.add_row(
            str(r.path),
            f"{r.fake_prob:.3f}",
            f"{r.squeeze_score:.3f}",
            str(bool(r.squeeze_flag)),
            f"{r.learned_score:.3f}",
            str(bool(r.learned_flag)),
            r.error,
        )
    console = Console()
    console.print(table)
    console.print(
        f"{int(df['squeeze_flag'].sum())} of {len(df)} flagged by feature squeezing, "
        f"{int(df['learned_flag'].sum())} by the learned detector"
    )
    if (df["error"] != "").any():
        raise typer.Exit(1)
