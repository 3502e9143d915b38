"""``fakescope`` command: assembles the sub-commands defined in the sibling modules.

Each sub-command module exposes ``register(app)`` and imports the (heavy) library lazily inside its commands,
so ``fakescope --help`` stays fast. Errors of type :class:`fakescope.errors.FakescopeError` are printed as one
line without a traceback and exit with code 2.
"""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console

from fakescope import __version__
from fakescope.cli import adversarial, data, demo, evaluate, models, predict, serve, train
from fakescope.errors import FakescopeError

app = typer.Typer(
    name="fakescope",
    help="Tell real faces from deepfakes in images and videos, and stress-test the detectors.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (data, demo, models, train, evaluate, adversarial, predict, serve):
    _module.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fakescope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def main() -> None:
    """Entry point of the ``fakescope`` console script and ``python -m fakescope``."""
    try:
        app()
    except FakescopeError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
