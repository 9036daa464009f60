"""Helpers shared by the command modules: workspace, figures output, progress, errors."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from homeloop.errors import HomeloopError
from homeloop.workspace import Workspace

# modules under homeloop/cli/ that define ``register(app)``, in help order
COMMAND_MODULES = ("demo", "simulate", "ingest", "nlu", "db", "learn", "evaluate", "models", "home", "privacy")

console = Console(stderr=True)
JSON_OPTION = typer.Option(False, "--json", help="Print the figures as one JSON object on stdout.")


@dataclass
class State:
    workspace_path: str | None = None

    def workspace(self) -> Workspace:
        return Workspace.open(self.workspace_path)


def workspace(ctx: typer.Context) -> Workspace:
    state = ctx.find_root().obj or State()
    return state.workspace()


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


@contextmanager
def progress(*, quiet: bool = False) -> Iterator[Progress]:
    """A rich progress bar on stderr (so ``--json`` output stays clean)."""
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


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def run(app: typer.Typer) -> None:
    """Run the app, turning homeloop's own errors into a one-line message and exit code 2."""
    try:
        app()
    except HomeloopError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(2) from None


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


def stage_progress(bar: Progress):
    """A ``progress(stage, done, total)`` function (as :func:`homeloop.world.simulate` takes) driving one bar
    per stage."""
    tasks: dict[str, int] = {}

    def step(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return step
