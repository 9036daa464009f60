"""The update experiments behind the benchmark and the report: an old NLU updated plainly and positive-congruently.

:func:`positive_congruent_experiment` trains an old model on part of the
training data, then new models on all of it (different seed): plainly and with
each focal-distillation variant asked for, and scores every update on held-out
data with the flip metrics (:mod:`homeloop.graceful.flips`).

:func:`probe_update_experiment` runs the same update with linear probes on
frozen MiniLM sentence vectors (:mod:`homeloop.nlu.probe`): each training takes
seconds, so it repeats over many seeds (old and new models both change with the
seed) and reports means and spreads instead of one draw; it adds weight
interpolation (:mod:`homeloop.graceful.interpolation`) to the variants.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from homeloop.errors import InvalidInputError
from homeloop.graceful.flips import compare_predictions
from homeloop.graceful.interpolation import interpolate_models
from homeloop.graceful.pctraining import fit_positive_congruent
from homeloop.nlu.model import IntentSlotModel

__all__ = [
    "DEFAULT_VARIANTS",
    "PROBE_VARIANTS",
    "intent_predictions",
    "positive_congruent_experiment",
    "probe_update_experiment",
    "stratified_indices",
    "stratified_subset",
]

#: the updates compared by default: plain training, focal distillation with KL and with logit matching
DEFAULT_VARIANTS: tuple[dict[str, Any], ...] = (
    {"name": "plain"},
    {"name": "pc-kl", "divergence": "kl", "weight": 1.0, "temperature": 1.0},
    {"name": "pc-lm", "divergence": "logit_matching", "weight": 0.1},
)


def stratified_indices(labels: Sequence[Any], fraction: float, *, seed: int = 0) -> list[int]:
    """Sorted positions of a random ``fraction`` of ``labels`` drawn per label (at least one per label)."""
    if not 0 < fraction <= 1:
        raise InvalidInputError(f"fraction: expected a number in (0, 1], got {fraction!r}")
    by_label: dict[Any, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for label in sorted(by_label):
        rows = by_label[label]
        k = max(1, round(fraction * len(rows)))
        keep.extend(rng.choice(rows, size=k, replace=False).tolist())
    return sorted(keep)


def stratified_subset(utterances: Sequence[Any], fraction: float, *, seed: int = 0) -> list[Any]:
    """A random ``fraction`` of ``utterances`` drawn per intent (at least one per intent), in the original order."""
    return [utterances[i] for i in stratified_indices([u.intent for u in utterances], fraction, seed=seed)]


def intent_predictions(model: IntentSlotModel, utterances: Sequence[Any]) -> list[str]:
    """The model's top intent for each labelled utterance (read from its own tokens)."""
    probs, _ = model._infer([tuple(t.lower() for t in u.tokens) for u in utterances])
    return [model.intents_[int(j)] for j in probs.argmax(1)]


def positive_congruent_experiment(
    train: Sequence[Any],
    test: Sequence[Any],
    *,
    old_fraction: float = 0.5,
    encoder: str = "fast",
    epochs: int | None = None,
    new_encoder: str | None = None,
    new_epochs: int | None = None,
    old_seed: int = 0,
    new_seed: int = 1,
    variants: Sequence[Mapping[str, Any]] = DEFAULT_VARIANTS,
    old_model: IntentSlotModel | None = None,
    n_resamples: int = 1000,
    progress: Callable[[str], None] | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Old model on ``old_fraction`` of ``train`` (seed ``old_seed``), then each update variant on all of ``train``.

    The old model uses ``encoder`` and ``epochs``; the new ones ``new_encoder``
    and ``new_epochs`` (default: the same), so an update can also change the
    architecture (the fast encoder to MiniLM).

    A variant is ``{"name": ..., "divergence": ..., "weight": ..., ...}`` (the
    options of :func:`~homeloop.graceful.pctraining.fit_positive_congruent`);
    without ``divergence`` it is plain training, or an ensemble teacher when it
    has ``ensemble: k`` (``k`` plain new models with other seeds, ELODI-style); with ``interpolate: a`` it is
    the plain update moved ``a`` of the way back to the old model's weights (BCWI,
    :func:`~homeloop.graceful.interpolation.interpolate_models`; needs one architecture and, to work, the
    old model's seed: ``new_seed=old_seed``).
    Returns the old model's error and, per variant, the flip report on ``test``
    (error, NFR with interval, NFI, relative NFR, PFR, McNemar), training
    seconds, and ``nfr_ratio_to_plain`` / ``error_change_vs_plain``.
    ``on_result(results)`` is called after each model (to save partial results).
    """
    say = progress or (lambda message: None)
    y = [u.intent for u in test]
    slices = {"intent": y, "scenario": [getattr(u, "scenario", "") or u.intent.split("_")[0] for u in test]}
    started = time.perf_counter()
    if old_model is None:
        say(f"old model: {encoder}, {old_fraction:.0%} of {len(train)} training utterances")
        old_train = stratified_subset(train, old_fraction, seed=old_seed)
        old_model = IntentSlotModel(encoder=encoder, epochs=epochs, seed=old_seed).fit(old_train)
    old_seconds = time.perf_counter() - started
    old_pred = intent_predictions(old_model, test)
    old_error = float(np.mean([p != t for p, t in zip(old_pred, y, strict=True)]))
    results: dict[str, Any] = {
        "train_size": len(train),
        "test_size": len(test),
        "encoder": encoder,
        "old": {"train_fraction": old_fraction, "error_rate": old_error, "seconds": old_seconds, "seed": old_seed},
        "variants": {},
    }
    new_encoder = new_encoder or encoder
    new_epochs = new_epochs if new_epochs is not None or new_encoder != encoder else epochs
    results["new_encoder"] = new_encoder
    plain_models: list[IntentSlotModel] = []
    for spec in variants:
        spec = dict(spec)
        name = spec.pop("name")
        ensemble = int(spec.pop("ensemble", 0))
        say(f"new model: {name}")
        started = time.perf_counter()
        model = IntentSlotModel(encoder=new_encoder, epochs=new_epochs, seed=new_seed)
        if "interpolate" in spec:  # BCWI: the plain update (trained once) moved back towards the old model
            if not plain_models:
                plain_models.append(model.fit(train))
            model = interpolate_models(old_model, plain_models[0], float(spec["interpolate"]))
        elif "divergence" not in spec:
            model.fit(train)
            plain_models.append(model)
        else:
            teacher: Any = old_model
            if ensemble:
                members = [
                    IntentSlotModel(encoder=new_encoder, epochs=new_epochs, seed=new_seed + 1 + k)
                    for k in range(ensemble)
                ]
                teacher = [m.fit(train) for m in members]
            fit_positive_congruent(model, train, old=teacher, **spec)
        seconds = time.perf_counter() - started
        new_pred = intent_predictions(model, test)
        report = compare_predictions(y, old_pred, new_pred, slices=slices, n_resamples=n_resamples, seed=new_seed)
        results["variants"][name] = {
            "options": {**spec, **({"ensemble": ensemble} if ensemble else {})},
            "seconds": seconds,
            "error_rate": report["new_error_rate"],
            "negative_flip_rate": report.metrics["negative_flip_rate"].as_dict(),
            "negative_flip_impact": report["negative_flip_impact"],
            "relative_negative_flip_rate": report["relative_negative_flip_rate"],
            "positive_flip_rate": report["positive_flip_rate"],
            "mcnemar": report.mcnemar,
            "worst_scenarios": [s.as_dict() for s in report.slices["scenario"][:5]],
        }
        _relative_to_plain(results)
        if on_result is not None:
            on_result(results)
    return results


def _relative_to_plain(results: dict[str, Any]) -> None:
    plain = results["variants"].get("plain")
    if not plain:
        return
    plain_nfr = plain["negative_flip_rate"]["value"]
    for entry in results["variants"].values():
        entry["nfr_ratio_to_plain"] = entry["negative_flip_rate"]["value"] / plain_nfr if plain_nfr else None
        entry["error_change_vs_plain"] = entry["error_rate"] - plain["error_rate"]


#: the probe updates compared by default: plain, focal distillation, weight interpolation, and both
PROBE_VARIANTS: tuple[dict[str, Any], ...] = (
    {"name": "plain"},
    {"name": "pc-kl w=1 T=4", "divergence": "kl", "weight": 1.0, "temperature": 4.0},
    *({"name": f"bcwi {a:g}", "interpolate": a} for a in (0.4, 0.5, 0.6, 0.7)),
    {"name": "pc-kl w=0.5 T=4 + bcwi 0.4", "divergence": "kl", "weight": 0.5, "temperature": 4.0, "interpolate": 0.4},
    {"name": "pc-kl w=1 T=4 + bcwi 0.3", "divergence": "kl", "weight": 1.0, "temperature": 4.0, "interpolate": 0.3},
)


def probe_update_experiment(
    x_train: Any,
    y_train: Sequence[int],
    x_test: Any,
    y_test: Sequence[int],
    *,
    n_classes: int,
    old_fraction: float = 0.5,
    seeds: Sequence[int] = tuple(range(6)),
    variants: Sequence[Mapping[str, Any]] = PROBE_VARIANTS,
    probe_options: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """An old probe on a stratified ``old_fraction`` of the training vectors, updated to probes on all of them.

    For each seed ``s``: the old probe trains on a subset drawn with seed ``s``
    (and initialised with it), every variant's new probe with seed ``1000 + s``.
    A variant is ``{"name": ..., "divergence": ..., "weight": ..., "temperature": ..., "interpolate": a}``:
    focal distillation from the old probe when it names a ``divergence`` (the
    options of :func:`~homeloop.graceful.pctraining.focal_distillation_term`
    plus ``weight``), then, with ``interpolate``, the weights moved a fraction
    ``a`` back towards the old probe's (:func:`~homeloop.graceful.interpolation.interpolate_weights`).
    Returns per variant the mean and standard deviation over seeds of the test
    error and NFR, the per-seed figures, ``nfr_ratio_to_plain`` (mean NFR over
    plain's mean NFR) and ``error_change_vs_plain`` (mean difference).
    ``probe_options`` (``epochs``, ``batch_size``, ``lr``) go to every :func:`~homeloop.nlu.probe.fit_probe`.
    """
    import torch

    from homeloop.graceful.interpolation import interpolate_weights
    from homeloop.graceful.pctraining import TeacherOutputs, focal_distillation_term
    from homeloop.nlu.probe import fit_probe, probe_logits

    if not seeds:
        raise InvalidInputError("seeds: expected at least one seed")
    say = progress or (lambda message: None)
    recipe = dict(probe_options or {})
    x_train, x_test = torch.as_tensor(x_train), torch.as_tensor(x_test)
    y_fit, truth = torch.as_tensor(list(y_train)), np.asarray(list(y_test))
    runs: dict[str, list[dict[str, float]]] = defaultdict(list)
    old_errors = []
    for seed in seeds:
        say(f"seed {seed}")
        half = stratified_indices(y_fit.tolist(), old_fraction, seed=seed)
        old = fit_probe(x_train[half], y_fit[half], n_classes, seed=seed, **recipe)
        with torch.no_grad():
            train_log_probs = torch.log_softmax(probe_logits(old, x_train), 1)
            old_pred = probe_logits(old, x_test).argmax(1).numpy()
        teacher = TeacherOutputs(
            labels=[str(k) for k in range(n_classes)],
            log_probs=train_log_probs,
            known=torch.ones(n_classes, dtype=torch.bool),
            correct=train_log_probs.argmax(1) == y_fit,
        )
        old_errors.append(float(np.mean(old_pred != truth)))
        for spec in variants:
            options = {k: v for k, v in spec.items() if k not in ("name", "interpolate", "weight")}
            extra = None
            if "divergence" in options:
                term = focal_distillation_term(teacher, **options)
                weight = float(spec.get("weight", 1.0))
                extra = lambda logits, index, term=term, weight=weight: weight * term(logits, index)  # noqa: E731
            new = fit_probe(x_train, y_fit, n_classes, seed=1000 + seed, extra_loss=extra, **recipe)
            if spec.get("interpolate"):
                new = interpolate_weights(old, new, float(spec["interpolate"]))
            with torch.no_grad():
                new_pred = probe_logits(new, x_test).argmax(1).numpy()
            runs[spec["name"]].append(
                {
                    "error_rate": float(np.mean(new_pred != truth)),
                    "negative_flip_rate": float(np.mean((old_pred == truth) & (new_pred != truth))),
                    "positive_flip_rate": float(np.mean((old_pred != truth) & (new_pred == truth))),
                }
            )
    results: dict[str, Any] = {
        "train_size": len(y_fit),
        "test_size": len(truth),
        "seeds": list(seeds),
        "probe_options": recipe,
        "old": {"train_fraction": old_fraction, "error_rate": float(np.mean(old_errors)), "error_rates": old_errors},
        "variants": {},
    }
    for spec in variants:
        rows = runs[spec["name"]]
        entry: dict[str, Any] = {"options": {k: v for k, v in spec.items() if k != "name"}, "per_seed": rows}
        for metric in ("error_rate", "negative_flip_rate", "positive_flip_rate"):
            values = [r[metric] for r in rows]
            entry[metric] = float(np.mean(values))
            entry[f"{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        results["variants"][spec["name"]] = entry
    plain = results["variants"].get("plain")
    if plain:
        for entry in results["variants"].values():
            entry["nfr_ratio_to_plain"] = (
                entry["negative_flip_rate"] / plain["negative_flip_rate"] if plain["negative_flip_rate"] else None
            )
            entry["error_change_vs_plain"] = entry["error_rate"] - plain["error_rate"]
    return results
