"""The ``homeloop`` command: a thin layer over the library.

Each group of commands lives in its own module (:data:`homeloop.cli._common.COMMAND_MODULES`) and registers
its commands with :func:`homeloop.cli._common.commands`; this module adds every group to the app. Errors are
handled in one place, the app's root group (:class:`homeloop.cli._common.Boundary`). Every command that
reports figures takes ``--json`` and then prints them as one JSON object on stdout (see
:func:`homeloop.cli._common.emit`); progress bars go to stderr.
"""

from __future__ import annotations

import importlib

import typer

from homeloop.cli import _common

app = typer.Typer(
    name="homeloop",
    cls=_common.Boundary,
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


for _module in _common.COMMAND_MODULES:
    importlib.import_module(f"homeloop.cli.{_module}")
for _group in _common.command_groups():
    app.add_typer(_group)


def run() -> None:  # pragma: no cover - entry point
    app()
