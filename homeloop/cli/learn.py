"""``homeloop learn``: learn from implicit feedback in the lake (defects, rephrases, rewrites)."""

from __future__ import annotations

from pathlib import Path

import typer

from homeloop.cli import _common

app = _common.commands("learn", help="Learn from how people react: defects, rephrases, rewrites.")

DATASET_OPTION = typer.Option("sim", "--dataset", help="Lake dataset to read (simulated or ingested logs).")


@app.command("defects")
def defects_command(
    ctx: typer.Context,
    dataset: str = DATASET_OPTION,
    train_from: str = typer.Option(
        None,
        "--train-from",
        help="A simulated lake dataset whose ground truth trains a new defect model (held-out homes are scored). "
        "Default: --dataset itself when it is simulated.",
    ),
    model_path: Path = _common.model_option("Use this saved defect model instead of training one."),
    rules: bool = typer.Option(False, "--rules", help="Label with the rules only (no model)."),
    seed: int = _common.seed_option("Random seed (home split, model)."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Find the turns that failed from implicit feedback and write the lake table ``defect_labels``.

    Which labeller: --rules; else --model; else a new model trained on the truth of --train-from (or of
    --dataset when it is simulated), saved as a new version; else the defect model in service (trained
    on simulated truth, it reads the same signals in real logs); else the rules.
    """
    from homeloop.data.lake import Lake
    from homeloop.selflearn import (
        label_defects,
        load_defect_model,
        save_defect_model,
        signals_from_lake,
        train_defect_model_on_truth,
    )

    ws = _common.workspace(ctx)
    lake = Lake(ws.lake)
    figures: dict = {"dataset": dataset}
    with _common.progress(quiet=as_json) as bar:
        steps = _common.Steps(bar, 3)
        with steps.step("sessions and signals"):
            signals = signals_from_lake(lake, dataset)
        model = None
        if rules:
            with steps.step("labelling with the rules"):
                pass
        elif model_path is not None:
            with steps.step(f"loading {model_path}"):
                model = load_defect_model(model_path)
            figures["model_path"] = str(model.path_)
        else:
            source = train_from or (dataset if lake.has(dataset, "truth_turns") else None)
            if source is not None:
                with steps.step(f"training on the truth of {source!r}"):
                    train_signals = signals if source == dataset else None
                    model, held_out = train_defect_model_on_truth(lake, source, seed=seed, signals=train_signals)
                    path = save_defect_model(
                        model, ws.models, metrics=held_out, training_data={"dataset": source, "split": "train homes"}
                    )
                figures["model_path"] = str(path)
                figures["held_out"] = held_out
            else:
                with steps.step("loading the defect model in service"):
                    model = _defect_model_in_service(ws)
                if model is None:
                    _common.console.print(
                        "[yellow]no saved defect model and no simulated truth to train one: labelling with rules"
                    )
                else:
                    figures["model_path"] = str(model.path_)
        with steps.step("labelling"):
            labels = label_defects(lake, dataset, model=model, signals=signals)
    flags = labels["defect"].to_numpy(zero_copy_only=False)
    figures.update(
        {
            "labeller": "model" if model is not None else "rules",
            "turns": labels.num_rows,
            "sessions": int(signals["session"].nunique()),
            "defects": int(flags.sum()),
            "defect_rate": round(float(flags.mean()), 4),
            "duplicates_dropped": signals.attrs.get("duplicates_dropped", 0),
            "table": str(lake.path(dataset, "defect_labels")),
        }
    )
    _common.emit(figures, as_json=as_json, title=f"defects in {dataset!r}")


@app.command("rephrases")
def rephrases_command(
    ctx: typer.Context,
    dataset: str = DATASET_OPTION,
    train_from: str = typer.Option(
        None,
        "--train-from",
        help="A simulated lake dataset whose ground truth fine-tunes a new span model (held-out homes are "
        "scored against the pairwise baseline). Default: --dataset itself when it is simulated.",
    ),
    model_path: Path = _common.model_option("Use this saved rephrase model instead of training one."),
    examples: int = typer.Option(1200, "--examples", min=10, help="Training examples at most (CPU time)."),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Fine-tuning epochs."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also score the pairwise baseline."),
    output: Path = _common.output_option("Write the detected pairs here (.parquet, .csv or .json)."),
    show: int = _common.show_option(5, "Detected pairs to show."),
    seed: int = _common.seed_option("Random seed (home split, sampling, fine-tuning)."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Detect rephrases: which of a user's next turns within the window says a request again.

    Which model: --model; else a span model fine-tuned on the truth of --train-from (or of --dataset
    when it is simulated), saved as a new version; else the rephrase model in service.
    """
    from homeloop.data.lake import Lake
    from homeloop.selflearn.artifacts import load_rephrase_model, save_rephrase_model
    from homeloop.selflearn.rephrase import (
        detect_rephrases,
        rephrase_examples_from_lake,
        train_rephrase_detector_on_truth,
    )

    ws = _common.workspace(ctx)
    lake = Lake(ws.lake)
    figures: dict = {"dataset": dataset}
    with _common.progress(quiet=as_json) as bar:
        steps = _common.Steps(bar, 3)
        with steps.step("sessions and candidates"):
            found = rephrase_examples_from_lake(lake, dataset)
        if model_path is not None:
            with steps.step(f"loading {model_path}"):
                detector = load_rephrase_model(model_path)
        else:
            source = train_from or (dataset if lake.has(dataset, "truth_turns") else None)
            if source is not None:
                with steps.step(f"fine-tuning on the truth of {source!r}"):
                    detector, held_out = train_rephrase_detector_on_truth(
                        lake,
                        source,
                        max_examples=examples,
                        epochs=epochs,
                        seed=seed,
                        baseline=baseline,
                        callbacks=(_common.TrainingProgress(bar),),
                        examples=found if source == dataset else None,
                    )
                    detector.path_ = save_rephrase_model(
                        detector, ws.models, metrics=held_out, training_data={"dataset": source, "split": "train homes"}
                    )
                figures["held_out"] = held_out
            else:
                with steps.step("loading the rephrase model in service"):
                    detector = _rephrase_model_in_service(ws, dataset)
        figures["model_path"] = str(detector.path_)
        with steps.step("detecting"):
            pairs = detect_rephrases(found, detector)
    figures.update({"requests_with_candidates": len(found), "rephrase_pairs": len(pairs)})
    if show:
        shown = pairs.sort_values("score", ascending=False).head(show).itertuples()
        rows = [
            {"request": r.request_text, "rephrase": r.rephrase_text, "gap_seconds": r.gap_seconds, "score": r.score}
            for r in shown
        ]
        figures["examples"] = (
            rows
            if as_json
            else {
                f"{i + 1}": f"{r['request']!r} -> {r['rephrase']!r} ({r['gap_seconds']:.0f} s, {r['score']:.2f})"
                for i, r in enumerate(rows)
            }
        )
    if output is not None:
        writers = {".parquet": pairs.to_parquet, ".csv": pairs.to_csv, ".json": pairs.to_json}
        if output.suffix not in writers:
            _common.fail(f"--output {output}: expected a .parquet, .csv or .json file name")
        kwargs = {"index": False} if output.suffix != ".json" else {"orient": "records"}
        writers[output.suffix](output, **kwargs)
        figures["output"] = str(output)
    _common.emit(figures, as_json=as_json, title=f"rephrases in {dataset!r}")


def _defect_model_in_service(ws):
    """The defect model in service (promoted, else the newest saved), or None when there is none."""
    from homeloop import artifacts
    from homeloop.errors import MissingInputError
    from homeloop.selflearn.artifacts import DEFECT_KIND, DEFECT_MODEL_NAME, load_defect_model

    try:
        return load_defect_model(artifacts.in_service(ws, DEFECT_KIND, DEFECT_MODEL_NAME))
    except MissingInputError:
        return None


def _rephrase_model_in_service(ws, dataset: str):
    """The rephrase model in service (promoted, else the newest saved); a clear error when there is none."""
    from homeloop import artifacts
    from homeloop.errors import MissingInputError
    from homeloop.selflearn.artifacts import REPHRASE_KIND, REPHRASE_MODEL_NAME, load_rephrase_model

    try:
        path = artifacts.in_service(ws, REPHRASE_KIND, REPHRASE_MODEL_NAME)
    except MissingInputError:
        _common.fail(
            f"no saved rephrase model in {ws.models / REPHRASE_KIND / REPHRASE_MODEL_NAME} and {dataset!r} has no "
            "simulated truth to train one: run with --train-from <a simulated dataset> first"
        )
    return load_rephrase_model(path)


@app.command("rewrites")
def rewrites_command(
    ctx: typer.Context,
    dataset: str = DATASET_OPTION,
    min_support: int = typer.Option(3, "--min-support", min=1, help="Rephrase chains a rewrite needs."),
    min_users: int = typer.Option(2, "--min-users", min=1, help="Distinct users behind those chains."),
    min_improvement: float = typer.Option(
        0.3, "--min-improvement", help="How much more likely the target must succeed than the source."
    ),
    prior_strength: float = typer.Option(2.0, "--prior-strength", min=0.0, help="Pseudo-turns smoothing each state."),
    scorer: str = typer.Option(
        "absorption", "--scorer", help="Target choice: absorption (default), eventual or frequency (the baseline)."
    ),
    pool_by: str = typer.Option(
        "text", "--pool-by", help="Chain states: text (utterances) or interpretation (NLU intent and slots)."
    ),
    labels: str = typer.Option("auto", "--labels", help="Defect labels: auto, defect_labels or rules."),
    ray_address: str = typer.Option(
        None, "--ray-address", help="Count on this Ray cluster ('local' starts one here); needs homeloop[ray]."
    ),
    output: Path = _common.output_option("Also write the table to this .parquet or .json file."),
    show: int = _common.show_option(10, "Rewrites to show."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Mine query rewrites from rephrase chains (absorbing Markov chain) and publish them as a new version.

    Reads the lake's turns (and its defect_labels table when `homeloop learn defects` wrote one; otherwise
    rule labels). The new version replaces the table in service in one database transaction.
    """
    import warnings

    from homeloop.data.lake import Lake
    from homeloop.db import open_database
    from homeloop.selflearn.rewrites import learn_rewrites

    ws = _common.workspace(ctx)
    options = {
        "min_support": min_support,
        "min_users": min_users,
        "min_improvement": min_improvement,
        "prior_strength": prior_strength,
        "target_scorer": scorer,
        "pool_by": pool_by,
        "labels": labels,
    }
    if ray_address:
        options.update(backend="ray", ray_address=ray_address)
    db = open_database(ws.database_url)
    try:
        with _common.progress(quiet=as_json) as bar, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            steps = _common.Steps(bar, 1)
            with steps.step("count chains, solve, publish"):
                table, figures = learn_rewrites(Lake(ws.lake), db, dataset, export=output, **options)
    finally:
        db.dispose()
    for w in caught:
        _common.console.print(f"[yellow]{w.message}")
    figures = {"dataset": dataset, **figures}
    shown = [
        {
            "source": r.source,
            "target": r.target,
            "support": r.support,
            "source_success_prob": r.source_success_prob,
            "target_success_prob": r.target_success_prob,
        }
        for r in list(table)[:show]
    ]
    figures["examples"] = (
        shown
        if as_json
        else {
            f"{r['source']} -> {r['target']}": f"support {r['support']}, P(success) {r['source_success_prob']:.2f}"
            f" -> {r['target_success_prob']:.2f}"
            for r in shown
        }
    )
    _common.emit(figures, as_json=as_json, title=f"rewrites mined from {dataset!r}, version {figures['version']}")
