"""The ``homeloop`` command: a thin layer over the library.

Each group of commands lives in its own module and registers itself here.
Every command that reports figures takes ``--json`` and then prints them as one
JSON object on stdout (see :func:`homeloop.cli._common.emit`).
"""

from __future__ import annotations

import typer

from homeloop.cli import _common

app = typer.Typer(
    name="homeloop",
    help="homeloop: the self-learning loop behind a smart-home voice assistant.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    workspace: str = typer.Option(
        None, "--workspace", "-w", envvar="HOMELOOP_HOME", help="Workspace folder (default ./homeloop-workspace)."
    ),
) -> None:
    ctx.obj = _common.State(workspace_path=workspace)


def _register() -> None:
    import importlib

    for name in _common.COMMAND_MODULES:
        try:
            module = importlib.import_module(f"homeloop.cli.{name}")
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name != f"homeloop.cli.{name}":
                raise
            continue
        module.register(app)


_register()


def run() -> None:  # pragma: no cover - entry point
    _common.run(app)
