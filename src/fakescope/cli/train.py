"""``fakescope train``: parse options, resolve the config, call :func:`fakescope.train.fit`, show progress.

Works as a plain command and under ``torchrun --nproc_per_node N -m fakescope train ...`` (the launcher's
environment is read here, never in the library).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("train")(train)


# the command's own options; every other option is named after the TrainConfig field it sets and passed on by name
_RUN_OPTIONS = frozenset({"manifest", "out", "config", "set_", "resume", "quiet"})


def train(
    ctx: typer.Context,
    manifest: Path = typer.Option(
        ..., "--manifest", "-m", help="Manifest (.parquet or its folder) with train/val splits."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (created)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML config (see configs/study, configs/demo)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set epochs=3 --set augment.flip=0."),
    model: str | None = typer.Option(None, "--model", help="Detector name (fakescope models list)."),
    epochs: int | None = typer.Option(None, "--epochs", help="Maximum epochs."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Batch size per process."),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate."),
    optimizer: str | None = typer.Option(None, "--optimizer", help="adam | adamw | rmsprop | sgd."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="none | step | cosine | warmup_cosine."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed."),
    folds: int | None = typer.Option(None, "--folds", help="Train a K-fold ensemble on train+val."),
    device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N."),
    init_checkpoint: Path | None = typer.Option(None, "--weights", help="Start from this fakescope checkpoint."),
    pretrained: bool | None = typer.Option(None, "--pretrained/--no-pretrained", help="ImageNet backbone weights."),
    pretrained_dir: Path | None = typer.Option(
        None, "--from", help="Folder holding the ImageNet file (offline; else torchvision's cache or a download)."
    ),
    patience: int | None = typer.Option(None, "--patience", help="Early-stopping patience in epochs (0: off)."),
    freeze_backbone_epochs: int | None = typer.Option(
        None, "--freeze-epochs", help="Train only the head for N epochs."
    ),
    balance: str | None = typer.Option(None, "--balance", help="sampler | loss | none."),
    num_workers: int | None = typer.Option(None, "--workers", help="DataLoader workers per process."),
    scale_lr: bool | None = typer.Option(None, "--scale-lr/--no-scale-lr", help="Multiply lr by the world size."),
    adv: str | None = typer.Option(None, "--adv", help="Adversarial training attack (fgsm_rs, pgd_linf, ...)."),
    adv_eps: str | None = typer.Option(
        None, "--adv-eps", help="Adversarial training budget (L-inf, [0,1] units): 4/255 or 0.0157."
    ),
    adv_steps: int | None = typer.Option(None, "--adv-steps", help="Adversarial training attack steps (PGD)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in --out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train a detector (or a K-fold ensemble); best checkpoint by validation AUC."""
    values = config_values(ctx.params)
    from rich.console import Console

    from fakescope.train import fit, init_distributed, load_train_config, shutdown_distributed

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    console = Console(stderr=True)
    cfg = load_train_config(config, set_, **values)
    if world_size > 1:
        init_distributed(local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    try:
        show = rank == 0 and not quiet
        with _Progress(console, show) as progress:
            result = fit(cfg, manifest, out, resume=resume, callback=progress)
    finally:
        shutdown_distributed()
    if rank == 0:
        _summary(result)


def config_values(params: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig values of the command's options (``None``: not given): all but :data:`_RUN_OPTIONS`.

    Paths become strings and ``adv_eps`` is read by :func:`parse_adv_eps`.

    Raises:
        typer.BadParameter: a bad ``--adv-eps``.
    """
    values = {k: v for k, v in params.items() if k not in _RUN_OPTIONS}
    values["adv_eps"] = parse_adv_eps(values.get("adv_eps"))
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def parse_adv_eps(text: str | None) -> float | None:
    """The one budget of ``--adv-eps`` (``4/255`` or ``0.0157``) as a float; ``None`` when the option is not given.

    Raises:
        typer.BadParameter: the value is not exactly one non-negative fraction or number.
    """
    if text is None:
        return None
    from fakescope.attacks import parse_eps

    try:
        values = parse_eps(text)
    except ValueError as exc:
        raise typer.BadParameter(f"--adv-eps takes one budget like 4/255 or 0.0157 ({exc})") from exc
    if len(values) != 1:
        raise typer.BadParameter(f"--adv-eps takes one budget like 4/255 or 0.0157, got {len(values)} in {text!r}")
    return values[0]


class _Progress:
    """Rich progress bar fed by the library's callback events."""

    def __init__(self, console: Any, show: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console
        self.show = show
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
            console=console,
            disable=not show,
        )
        self.task: Any = None

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if not self.show:
            return
        if event == "start":
            self.console.print(f"[bold]{info['model']}[/]: {info['balance_message']}", highlight=False)
            self.console.print(
                f"{info['world_size']} process(es), global batch {info['global_batch_size']}, "
                f"lr {info['effective_lr']:g}, device {info['device']}, amp {info['amp']}",
                highlight=False,
            )
        elif event == "fold_start":
            self.console.print(
                f"[bold]fold {info['fold'] + 1}/{info['folds']}[/] ({info['n_train']} train rows, "
                f"{info['n_val']} validation rows)",
                highlight=False,
            )
        elif event == "epoch_start":
            desc = f"epoch {info['epoch'] + 1}/{info['epochs']}"
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(desc, total=None, loss=float("nan"))
        elif event == "step" and self.task is not None:
            self.progress.update(self.task, completed=info["step"], total=info["steps"], loss=info["loss"])
        elif event == "epoch_end":
            mark = " [green]best[/]" if info["improved"] else ""
            self.console.print(
                f"epoch {info['epoch'] + 1}: train loss {info['train_loss']:.4f}  val loss {info['val_loss']:.4f}  "
                f"val AUC {info['val_auc']:.4f}  bal. acc {info['val_balanced_acc']:.4f}{mark}",
                highlight=False,
            )


def _summary(result: Any) -> None:
    from rich.console import Console

    Console().print(
        f"best checkpoint: {result.best_checkpoint}\n"
        f"validation AUC {result.best_val_auc:.4f} (epoch {result.best_epoch + 1 if result.best_epoch >= 0 else '-'}), "
        f"threshold {result.threshold:.3f}; run directory {result.run_dir}",
        highlight=False,
    )
