"""``homeloop learn``: learn from implicit feedback in the lake (defects, rephrases, rewrites)."""

from __future__ import annotations

from pathlib import Path

import typer

from homeloop.cli import _common

learn_app = typer.Typer(help="Learn from how people react: defects, rephrases, rewrites.", no_args_is_help=True)

DATASET_OPTION = typer.Option("sim", "--dataset", help="Lake dataset to read (simulated or ingested logs).")


def defects_command(
    ctx: typer.Context,
    dataset: str = DATASET_OPTION,
    train_from: str = typer.Option(
        None,
        "--train-from",
        help="A simulated lake dataset whose ground truth trains a new defect model (held-out homes are scored). "
        "Default: --dataset itself when it is simulated.",
    ),
    model_path: Path = typer.Option(None, "--model", help="Use this saved defect model instead of training one."),
    rules: bool = typer.Option(False, "--rules", help="Label with the rules only (no model)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (home split, model)."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Find the turns that failed from implicit feedback and write the lake table ``defect_labels``.

    Which labeller: --rules; else --model; else a new model trained on the truth of --train-from (or of
    --dataset when it is simulated), saved as a new version; else the newest saved defect model (trained
    on simulated truth, it reads the same signals in real logs); else the rules.
    """
    from homeloop.data.lake import Lake
    from homeloop.selflearn import (
        label_defects,
        latest_defect_model,
        load_defect_model,
        save_defect_model,
        signals_from_lake,
        train_defect_model_on_truth,
    )

    ws = _common.workspace(ctx)
    lake = Lake(ws.lake)
    figures: dict = {"dataset": dataset}
    with _common.progress(quiet=as_json) as bar:
        task = bar.add_task("sessions and signals", total=None)
        signals = signals_from_lake(lake, dataset)
        bar.update(task, total=1, completed=1)
        model = None
        if rules:
            pass
        elif model_path is not None:
            model = load_defect_model(model_path)
            figures["model_path"] = str(model.path_)
        else:
            source = train_from or (dataset if lake.has(dataset, "truth_turns") else None)
            if source is not None:
                task = bar.add_task(f"training on the truth of {source!r}", total=None)
                train_signals = signals if source == dataset else None
                model, held_out = train_defect_model_on_truth(lake, source, seed=seed, signals=train_signals)
                bar.update(task, total=1, completed=1)
                path = save_defect_model(
                    model, ws.models, metrics=held_out, training_data={"dataset": source, "split": "train homes"}
                )
                figures["model_path"] = str(path)
                figures["held_out"] = held_out
            else:
                model = latest_defect_model(ws.models)
                if model is None:
                    _common.console.print(
                        "[yellow]no saved defect model and no simulated truth to train one: labelling with rules"
                    )
                else:
                    figures["model_path"] = str(model.path_)
        task = bar.add_task("labelling", total=None)
        labels = label_defects(lake, dataset, model=model, signals=signals)
        bar.update(task, total=1, completed=1)
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


learn_app.command("defects")(defects_command)


def rephrases_command(
    ctx: typer.Context,
    dataset: str = DATASET_OPTION,
    train_from: str = typer.Option(
        None,
        "--train-from",
        help="A simulated lake dataset whose ground truth fine-tunes a new span model (held-out homes are "
        "scored against the pairwise baseline). Default: --dataset itself when it is simulated.",
    ),
    model_path: Path = typer.Option(None, "--model", help="Use this saved rephrase model instead of training one."),
    examples: int = typer.Option(1200, "--examples", min=10, help="Training examples at most (CPU time)."),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Fine-tuning epochs."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also score the pairwise baseline."),
    output: Path = typer.Option(None, "--output", help="Write the detected pairs here (.parquet, .csv or .json)."),
    show: int = typer.Option(5, "--show", min=0, help="Detected pairs to print."),
    seed: int = typer.Option(0, "--seed", help="Random seed (home split, sampling, fine-tuning)."),
    as_json: bool = _common.JSON_OPTION,
) -> None:
    """Detect rephrases: which of a user's next turns within the window says a request again.

    Which model: --model; else a span model fine-tuned on the truth of --train-from (or of --dataset
    when it is simulated), saved as a new version; else the newest saved rephrase model.
    """
    from homeloop import artifacts
    from homeloop.data.lake import Lake
    from homeloop.errors import MissingInputError
    from homeloop.selflearn.artifacts import (
        REPHRASE_KIND,
        REPHRASE_MODEL_NAME,
        load_rephrase_model,
        save_rephrase_model,
    )
    from homeloop.selflearn.rephrase import (
        detect_rephrases,
        rephrase_examples_from_lake,
        train_rephrase_detector_on_truth,
    )

    ws = _common.workspace(ctx)
    lake = Lake(ws.lake)
    figures: dict = {"dataset": dataset}
    with _common.progress(quiet=as_json) as bar:
        task = bar.add_task("sessions and candidates", total=None)
        found = rephrase_examples_from_lake(lake, dataset)
        bar.update(task, total=1, completed=1)
        if model_path is not None:
            detector = load_rephrase_model(model_path)
        else:
            source = train_from or (dataset if lake.has(dataset, "truth_turns") else None)
            if source is not None:
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
                try:
                    detector = load_rephrase_model(artifacts.latest(ws.models, REPHRASE_KIND, REPHRASE_MODEL_NAME))
                except MissingInputError:
                    raise _common.fail(
                        f"no saved rephrase model in {ws.models / REPHRASE_KIND / REPHRASE_MODEL_NAME} and {dataset!r} "
                        "has no simulated truth to train one: run with --train-from <a simulated dataset> first"
                    ) from None
        figures["model_path"] = str(detector.path_)
        task = bar.add_task("detecting", total=None)
        pairs = detect_rephrases(found, detector)
        bar.update(task, total=1, completed=1)
    figures.update({"requests_with_candidates": len(found), "rephrase_pairs": len(pairs)})
    if show:
        figures["examples"] = {
            f"{i + 1}": f"{r.request_text!r} -> {r.rephrase_text!r} ({r.gap_seconds:.0f} s, {r.score:.2f})"
            for i, r in enumerate(pairs.sort_values("score", ascending=False).head(show).itertuples())
        }
    if output is not None:
        writers = {".parquet": pairs.to_parquet, ".csv": pairs.to_csv, ".json": pairs.to_json}
        if output.suffix not in writers:
            raise _common.fail(f"--output {output}: expected a .parquet, .csv or .json file name")
        kwargs = {"index": False} if output.suffix != ".json" else {"orient": "records"}
        writers[output.suffix](output, **kwargs)
        figures["output"] = str(output)
    _common.emit(figures, as_json=as_json, title=f"rephrases in {dataset!r}")


learn_app.command("rephrases")(rephrases_command)


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
    export: Path = typer.Option(None, "--export", help="Also write the table to this .parquet or .json file."),
    examples: int = typer.Option(10, "--examples", min=0, help="Rewrites to show."),
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
            task = bar.add_task("count chains, solve, publish", total=None)
            table, figures = learn_rewrites(Lake(ws.lake), db, dataset, export=export, **options)
            bar.update(task, total=1, completed=1)
    finally:
        db.dispose()
    for w in caught:
        _common.console.print(f"[yellow]{w.message}")
    figures = {"dataset": dataset, **figures}
    shown = [[r.source, r.target, r.support, r.source_success_prob, r.target_success_prob] for r in table][:examples]
    figures["examples"] = (
        shown if as_json else {f"{s} -> {t}": f"support {n}, P(success) {p:.2f} -> {q:.2f}" for s, t, n, p, q in shown}
    )
    _common.emit(figures, as_json=as_json, title=f"rewrites mined from {dataset!r}, version {figures['version']}")


learn_app.command("rewrites")(rewrites_command)


def register(app: typer.Typer) -> None:
    app.add_typer(learn_app, name="learn")
