"""What every command module shares: how commands are registered, the one error boundary, the options that
recur, the workspace, figures output (a table or ``--json``) and progress bars.

A command module registers its commands in one way::

    group = _common.commands("learn", help="...")   # or _common.commands() for top-level commands

    @group.command("defects")
    def defects(ctx: typer.Context, seed: int = _common.seed_option(), as_json: bool = _common.JSON_OPTION):
        ...

and :mod:`homeloop.cli` adds every group to the ``homeloop`` app. Commands do not catch errors: a
:class:`~homeloop.errors.HomeloopError` raised anywhere below a command, or :func:`fail` (which raises), is
turned into one ``error:`` line on stderr and exit code 2 by :class:`Boundary`, the app's root group.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from homeloop.errors import HomeloopError
from homeloop.workspace import Workspace

# modules under homeloop/cli/ that register commands, in help order
COMMAND_MODULES = ("demo", "simulate", "ingest", "nlu", "db", "learn", "evaluate", "models", "home", "privacy")

console = Console(stderr=True)

# ---------------------------------------------------------------- registering commands

_GROUPS: dict[str | None, typer.Typer] = {}


def commands(group: str | None = None, *, help: str | None = None) -> typer.Typer:
    """The typer app a command module decorates its commands with (``@app.command("name")``).

    ``group`` names the command group (``homeloop learn ...``); ``None`` puts the commands at the top
    (``homeloop demo``). Modules naming the same group share it (``homeloop audit`` can gather audits from
    several modules).
    """
    app = _GROUPS.get(group)
    if app is None:
        app = _GROUPS[group] = typer.Typer(name=group, help=help, no_args_is_help=True)
    elif help and not app.info.help:
        app.info.help = help
    return app


def command_groups() -> list[typer.Typer]:
    """Every group registered with :func:`commands`, in registration order."""
    return list(_GROUPS.values())


# ---------------------------------------------------------------- errors: one boundary


class CommandError(Exception):
    """A command cannot go on (a bad option value, something missing in the workspace); raised by :func:`fail`."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop the command: :class:`Boundary` prints ``error: message`` on stderr and exits with ``code``."""
    raise CommandError(message, code)


class Boundary(TyperGroup):
    """The ``homeloop`` root group: the one place errors are handled. A :class:`CommandError` or a
    :class:`~homeloop.errors.HomeloopError` from any command below becomes one ``error:`` line on stderr and
    its exit code (2); any other exception is a bug and keeps its traceback."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CommandError as exc:
            _error(str(exc))
            raise typer.Exit(exc.code) from None
        except HomeloopError as exc:
            _error(str(exc))
            raise typer.Exit(2) from None


def _error(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


# ---------------------------------------------------------------- the options that recur

JSON_OPTION = typer.Option(False, "--json", help="Print the figures as one JSON object on stdout.")


def seed_option(help: str = "Random seed: the same seed gives the same result.") -> Any:
    """``--seed`` (default 0)."""
    return typer.Option(0, "--seed", help=help)


def model_option(help: str = "A saved model version folder (default: the one in service).") -> Any:
    """``--model PATH``: the saved model to use instead of the default one (the one in service)."""
    return typer.Option(None, "--model", help=help)


def output_option(help: str = "Write the result to this file.") -> Any:
    """``--output PATH``: the one name for writing a file."""
    return typer.Option(None, "--output", help=help)


def show_option(default: int = 10, help: str = "Rows to show.") -> Any:
    """``--show N``: how many rows (examples, pairs, rewrites) to print; ``--json`` carries the same rows."""
    return typer.Option(default, "--show", min=0, help=help)


# the update gate's thresholds (homeloop.graceful.gate.GateThresholds); None keeps the gate's default
MAX_NFR_OPTION = typer.Option(None, "--max-nfr", help="Largest negative flip rate allowed (fraction, default 0.04).")
MAX_ERROR_OPTION = typer.Option(None, "--max-error-increase", help="Error increase allowed (fraction, default 0.005).")
MAX_SLICE_DROP_OPTION = typer.Option(
    None, "--max-slice-drop", help="Accuracy drop allowed on a slice (fraction, default 0.10)."
)
MIN_SLICE_SIZE_OPTION = typer.Option(
    None, "--min-slice-size", help="Slices smaller than this are not checked (default 30)."
)
SLICING_OPTION = typer.Option(None, "--slicing", help="Slices checked: scenario (default) or intent.")
SIGNIFICANCE_OPTION = typer.Option(None, "--significance", help="McNemar level that blocks a worse candidate (0: off).")


def gate_thresholds(
    *,
    max_nfr: float | None,
    max_error_increase: float | None,
    max_slice_drop: float | None,
    min_slice_size: int | None,
    slicing: str | None,
    significance: float | None,
):
    """The :class:`~homeloop.graceful.gate.GateThresholds` the gate options give (``None``: all defaults)."""
    from homeloop.graceful.gate import GateThresholds

    given = {
        "max_negative_flip_rate": max_nfr,
        "max_error_increase": max_error_increase,
        "max_slice_accuracy_drop": max_slice_drop,
        "min_slice_size": min_slice_size,
        "slicing": slicing,
        "significance": significance,
    }
    values = {k: v for k, v in given.items() if v is not None}
    return GateThresholds(**values) if values else None


# ---------------------------------------------------------------- the workspace and "the default model"


@dataclass
class State:
    workspace_path: str | None = None

    def workspace(self) -> Workspace:
        return Workspace.open(self.workspace_path)


def workspace(ctx: typer.Context) -> Workspace:
    state = ctx.find_root().obj or State()
    return state.workspace()


def in_service(ctx: typer.Context, kind: str = "nlu", name: str = "nlu") -> Path:
    """The default model of every command: the version folder of ``<kind>/<name>`` in service (promoted in
    the model registry, else the newest saved; :func:`homeloop.artifacts.in_service`)."""
    from homeloop.artifacts import in_service

    return in_service(workspace(ctx), kind, name)


# ---------------------------------------------------------------- figures: a table, or --json


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def emit(figures: Mapping[str, Any], *, as_json: bool, title: str = "") -> None:
    """Print ``figures`` as JSON on stdout, or as a table on the terminal."""
    if as_json:
        sys.stdout.write(json.dumps(_clean(figures), indent=2, sort_keys=False) + "\n")
        return
    table = Table(title=title or None, show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in _flatten(figures):
        if isinstance(value, float):
            value = f"{value:.4g}"
        table.add_row(key, str(value))
    Console().print(table)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        if isinstance(v, Mapping) and len(v) <= 20:
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


# ---------------------------------------------------------------- progress bars (stderr), each with a total


@contextmanager
def progress(*, quiet: bool = False) -> Iterator[Progress]:
    """Rich progress bars on stderr (so ``--json`` output stays clean); every bar added gets a total:
    batches and epochs (:class:`TrainingProgress`), a library's stages (:func:`stage_progress`), bytes or
    rows read, or the command's own steps (:class:`Steps`)."""
    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=quiet,
    )
    with bar:
        yield bar


class TrainingProgress:
    """A training-loop callback (see :class:`homeloop.training.TrainingCallback`): epochs and the batches of
    the current epoch as rich progress bars."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.epochs = self.batches = None

    def on_train_begin(self, state) -> None:
        self.epochs = self.bar.add_task("epochs", total=state.epochs)
        self.batches = self.bar.add_task("batches", total=state.batches_per_epoch)

    def on_epoch_begin(self, state) -> None:
        self.bar.reset(self.batches, total=state.batches_per_epoch, description=f"epoch {state.epoch + 1}")

    def on_batch_end(self, state) -> None:
        self.bar.update(self.batches, advance=1, description=f"epoch {state.epoch + 1} loss {state.loss:.3f}")

    def on_epoch_end(self, state) -> None:
        self.bar.update(self.epochs, advance=1, description=f"epochs (last loss {state.epoch_loss:.3f})")


class Steps:
    """One bar over a command's own steps, their number as its total: ``steps = Steps(bar, 3)``, then each
    step runs inside ``with steps.step("reading the lake"):``."""

    def __init__(self, bar: Progress, total: int, description: str = "") -> None:
        self.bar = bar
        self.task = bar.add_task(description, total=total)

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        self.bar.update(self.task, description=description)
        yield
        self.bar.advance(self.task)


def stage_progress(bar: Progress):
    """A ``progress(stage, done, total)`` function (as :func:`homeloop.world.simulate` takes) driving one bar
    per stage."""
    tasks: dict[str, int] = {}

    def step(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return step
