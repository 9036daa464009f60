"""``homeloop simulate``: simulate a neighbourhood into the lake."""

from __future__ import annotations

import typer

from homeloop.cli import _common


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        ctx: typer.Context,
        homes: int = typer.Option(20, "--homes", help="Number of homes."),
        days: int = typer.Option(14, "--days", help="Number of days."),
        seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same world."),
        dataset: str = typer.Option("sim", "--dataset", help="Lake dataset to write (an older run is replaced)."),
        workers: int = typer.Option(1, "--workers", help="Processes living chunks of homes side by side."),
        as_json: bool = _common.JSON_OPTION,
    ) -> None:
        """Simulate homes, residents and their assistant; write logs and ground truth into the lake.

        The assistant's NLU is the newest model in the workspace (trained with the fast encoder first if
        there is none).
        """
        from homeloop.data.lake import Lake
        from homeloop.serving import assistant_nlu
        from homeloop.world import WorldConfig, simulate_to_lake

        ws = _common.workspace(ctx)
        config = WorldConfig(homes=homes, days=days, seed=seed)
        model, path, _ = assistant_nlu(ws)
        with _common.progress(quiet=as_json) as bar:
            step = _common.stage_progress(bar)
            sim = simulate_to_lake(config, Lake(ws.lake), dataset, nlu=model, progress=step, workers=workers)
        figures = {**sim, "dataset": dataset, "lake": str(ws.lake / dataset), "nlu_model": str(path)}
        _common.emit(figures, as_json=as_json, title="simulation")
