"""The update experiments behind the benchmark and the report: an old NLU updated plainly and positive-congruently.

:func:`positive_congruent_experiment` trains an old model on part of the
training data, then new models on all of it (different seed): plainly and with
each focal-distillation variant asked for, and scores every update on held-out
data with the flip metrics (:mod:`homeloop.graceful.flips`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from homeloop.errors import InvalidInputError
from homeloop.graceful.flips import compare_predictions
from homeloop.graceful.pctraining import fit_positive_congruent
from homeloop.nlu.model import IntentSlotModel

__all__ = ["DEFAULT_VARIANTS", "intent_predictions", "positive_congruent_experiment", "stratified_subset"]

#: the updates compared by default: plain training, focal distillation with KL and with logit matching
DEFAULT_VARIANTS: tuple[dict[str, Any], ...] = (
    {"name": "plain"},
    {"name": "pc-kl", "divergence": "kl", "weight": 1.0, "temperature": 1.0},
    {"name": "pc-lm", "divergence": "logit_matching", "weight": 0.1},
)


def stratified_subset(utterances: Sequence[Any], fraction: float, *, seed: int = 0) -> list[Any]:
    """A random ``fraction`` of ``utterances`` drawn per intent (at least one per intent), in the original order."""
    if not 0 < fraction <= 1:
        raise InvalidInputError(f"fraction: expected a number in (0, 1], got {fraction!r}")
    by_intent: dict[str, list[int]] = defaultdict(list)
    for i, u in enumerate(utterances):
        by_intent[u.intent].append(i)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for intent in sorted(by_intent):
        rows = by_intent[intent]
        k = max(1, round(fraction * len(rows)))
        keep.extend(rng.choice(rows, size=k, replace=False).tolist())
    return [utterances[i] for i in sorted(keep)]


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
    has ``ensemble: k`` (``k`` plain new models with other seeds, ELODI-style).
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
        if "divergence" not in spec:
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
