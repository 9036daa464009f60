"""The update gate: a new model goes into service only if it does not break what the old one got right.

Three steps, each a function here and a command (``homeloop models ...``):

- :func:`propose` scores a candidate (a saved NLU version) against the model
  in service on a held-out set: accuracy, negative flip rate with its bootstrap
  interval, McNemar's test and per-slice regressions (by intent and by
  scenario). It registers the candidate if needed, writes a JSON report into
  ``<workspace>/reports/gate/`` and stores the verdict in the database.
- :func:`promote` puts the proposed candidate into service, and refuses with an
  :class:`~homeloop.errors.UpdateGateError` naming each failed check, its value
  and its limit when the gate fails. Limits come from :class:`GateThresholds`;
  passing other limits to ``promote`` re-judges the stored figures with them.
  ``force=True`` overrides the gate, with a loud warning, and is logged.
- :func:`rollback` restores the version the one in service replaced.

Promotion and rollback are single transactions (see
:meth:`homeloop.db.ModelRegistry.promote`). Whatever serves the NLU should load
:func:`serving_model_path`: the promoted version.

The checks are a registry (:data:`GATE_CHECKS`) of functions
``check(summary, thresholds) -> GateCheck`` over the stored figures.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from homeloop.db import ModelRegistry, open_database
from homeloop.db.registry import GateReportRecord, ModelRecord, PromotionRecord
from homeloop.errors import InvalidInputError, MissingInputError, UpdateGateError
from homeloop.graceful.flips import compare_predictions
from homeloop.workspace import Workspace

__all__ = [
    "EVALUATION_SETS",
    "GATE_CHECKS",
    "GateCheck",
    "GateDecision",
    "GateThresholds",
    "evaluate_update",
    "judge",
    "promote",
    "propose",
    "rollback",
    "serving_model_path",
]


def _hwu64_test() -> list[Any]:
    from homeloop.datasets import load_hwu64

    return load_hwu64("test")


def _clinc150_test() -> list[Any]:
    from homeloop.datasets import load_clinc150

    return load_clinc150("test")


#: held-out sets a candidate can be scored on, by name
EVALUATION_SETS: dict[str, Callable[[], list[Any]]] = {"hwu64": _hwu64_test, "clinc150": _clinc150_test}


@dataclass(frozen=True)
class GateThresholds:
    """Limits of the update gate (fractions, not percentages).

    - ``max_negative_flip_rate``: the share of held-out examples the model in
      service gets right and the candidate gets wrong;
    - ``max_error_increase``: how much the candidate's error may exceed the
      current one (default half a point; 0: it must be at least as accurate);
    - ``max_slice_accuracy_drop``: the largest accuracy drop allowed on any
      slice (``slicing``: ``"scenario"`` or ``"intent"``) with at least
      ``min_slice_size`` examples;
    - ``significance``: block a candidate that McNemar's test finds less
      accurate at this level (0 switches the test off).
    """

    max_negative_flip_rate: float = 0.04
    max_error_increase: float = 0.005
    max_slice_accuracy_drop: float = 0.10
    min_slice_size: int = 30
    slicing: str = "scenario"
    significance: float = 0.05

    def __post_init__(self) -> None:
        for name in ("max_negative_flip_rate", "max_error_increase", "max_slice_accuracy_drop", "significance"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise InvalidInputError(f"gate threshold {name}: expected a fraction in [0, 1], got {value!r}")
        if not isinstance(self.min_slice_size, int) or self.min_slice_size < 1:
            raise InvalidInputError(
                f"gate threshold min_slice_size: expected an integer >= 1, got {self.min_slice_size!r}"
            )
        if self.slicing not in ("scenario", "intent"):
            raise InvalidInputError(f"gate threshold slicing: expected 'scenario' or 'intent', got {self.slicing!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GateThresholds:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True)
class GateCheck:
    """One check of the gate: its figure, its limit, and a sentence saying what it means."""

    name: str
    passed: bool
    value: float | None
    limit: float | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _check_negative_flips(summary: Mapping[str, Any], t: GateThresholds) -> GateCheck:
    flips = summary["flips"]
    nfr = flips["metrics"]["negative_flip_rate"]
    count = flips["mcnemar"]["negative_flips"]
    passed = nfr["value"] <= t.max_negative_flip_rate
    message = (
        f"negative flip rate {_pct(nfr['value'])} (95% CI {_pct(nfr['low'])}-{_pct(nfr['high'])}; {count} of "
        f"{flips['n']} held-out utterances the model in service reads right, the candidate reads wrong) "
        f"{'<=' if passed else '>'} limit {_pct(t.max_negative_flip_rate)}"
    )
    if not passed:
        message += (
            "; retrain it with positive-congruent training (homeloop.graceful.pctraining) or raise "
            "max_negative_flip_rate (--max-nfr)"
        )
    return GateCheck("negative_flip_rate", passed, nfr["value"], t.max_negative_flip_rate, message)


def _check_error(summary: Mapping[str, Any], t: GateThresholds) -> GateCheck:
    change = summary["flips"]["metrics"]["error_rate_change"]["value"]
    passed = change <= t.max_error_increase + 1e-12
    message = (
        f"error {_pct(summary['candidate']['error_rate'])} vs {_pct(summary['baseline']['error_rate'])} in service "
        f"({100 * change:+.2f} points) {'within' if passed else 'exceeds'} the allowed increase of "
        f"{100 * t.max_error_increase:.2f} points"
    )
    if not passed:
        message += " (max_error_increase, --max-error-increase)"
    return GateCheck("error_rate", passed, change, t.max_error_increase, message)


def _check_slices(summary: Mapping[str, Any], t: GateThresholds) -> GateCheck:
    slices = summary["flips"]["slices"].get(t.slicing, [])
    big = [s for s in slices if s["n"] >= t.min_slice_size]
    bad = sorted(
        (s for s in big if -s["accuracy_change"] > t.max_slice_accuracy_drop + 1e-12),
        key=lambda s: s["accuracy_change"],
    )
    worst = min((s["accuracy_change"] for s in big), default=0.0)
    if bad:
        listed = ", ".join(
            f"{s['slice']} {_pct(s['old_accuracy'])} -> {_pct(s['new_accuracy'])} (n={s['n']})" for s in bad[:5]
        )
        message = (
            f"{len(bad)} {t.slicing}(s) with >= {t.min_slice_size} examples lose more than "
            f"{100 * t.max_slice_accuracy_drop:.1f} points of accuracy: {listed} "
            "(max_slice_accuracy_drop, --max-slice-drop)"
        )
    else:
        message = (
            f"no {t.slicing} with >= {t.min_slice_size} examples loses more than "
            f"{100 * t.max_slice_accuracy_drop:.1f} points (worst change {100 * worst:+.1f} points over {len(big)} slices)"
        )
    return GateCheck(f"{t.slicing}_regressions", not bad, -worst, t.max_slice_accuracy_drop, message)


def _check_mcnemar(summary: Mapping[str, Any], t: GateThresholds) -> GateCheck:
    m = summary["flips"]["mcnemar"]
    worse = m["negative_flips"] > m["positive_flips"]
    failed = t.significance > 0 and worse and m["p_value"] < t.significance
    message = (
        f"McNemar: {m['negative_flips']} negative vs {m['positive_flips']} positive flips, p = {m['p_value']:.3g}"
        + (
            f" < {t.significance}: the candidate is significantly less accurate (significance, --significance)"
            if failed
            else (" (test switched off)" if t.significance == 0 else "")
        )
    )
    return GateCheck("mcnemar", not failed, m["p_value"], t.significance, message)


#: the gate's checks ``check(summary, thresholds) -> GateCheck``, by name; all must pass
GATE_CHECKS: dict[str, Callable[[Mapping[str, Any], GateThresholds], GateCheck]] = {
    "negative_flip_rate": _check_negative_flips,
    "error_rate": _check_error,
    "slice_regressions": _check_slices,
    "mcnemar": _check_mcnemar,
}


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict: ``passed`` when every check passed (or nothing is in service to regress against)."""

    passed: bool
    checks: list[GateCheck]
    thresholds: GateThresholds
    summary: dict[str, Any] = field(repr=False)

    def explain(self) -> str:
        """One line per check, failed ones marked."""
        if self.summary.get("baseline") is None:
            return "no model in service: nothing to regress against, the candidate may be promoted"
        return "\n".join(f"[{'pass' if c.passed else 'FAIL'}] {c.message}" for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": [c.as_dict() for c in self.checks],
            "thresholds": self.thresholds.as_dict(),
            "summary": self.summary,
        }


def judge(summary: Mapping[str, Any], thresholds: GateThresholds | None = None) -> GateDecision:
    """Apply every check of :data:`GATE_CHECKS` to the figures in ``summary`` (as :func:`evaluate_update` makes)."""
    thresholds = thresholds or GateThresholds()
    if summary.get("baseline") is None:
        return GateDecision(passed=True, checks=[], thresholds=thresholds, summary=dict(summary))
    checks = [check(summary, thresholds) for check in GATE_CHECKS.values()]
    return GateDecision(
        passed=all(c.passed for c in checks), checks=checks, thresholds=thresholds, summary=dict(summary)
    )


def _intents(model: Any, utterances: Sequence[Any]) -> list[str]:
    probs, _ = model._infer([tuple(t.lower() for t in u.tokens) for u in utterances])
    return [model.intents_[int(j)] for j in probs.argmax(1)]


def evaluate_update(
    baseline: Any | None,
    candidate: Any,
    utterances: Sequence[Any],
    *,
    thresholds: GateThresholds | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> GateDecision:
    """Score ``candidate`` against ``baseline`` (IntentSlotModels; None: nothing in service) on ``utterances``."""
    if not utterances:
        raise InvalidInputError("evaluate_update: expected held-out labelled utterances, got none")
    y = [u.intent for u in utterances]
    new_pred = _intents(candidate, utterances)
    new_error = sum(p != t for p, t in zip(new_pred, y, strict=True)) / len(y)
    summary: dict[str, Any] = {"n": len(y), "candidate": {"error_rate": new_error}, "baseline": None}
    if baseline is not None:
        old_pred = _intents(baseline, utterances)
        slices = {"intent": y, "scenario": [getattr(u, "scenario", "") or "(none)" for u in utterances]}
        report = compare_predictions(y, old_pred, new_pred, slices=slices, n_resamples=n_resamples, seed=seed)
        summary["baseline"] = {"error_rate": report["old_error_rate"]}
        summary["flips"] = report.as_dict()
    return judge(summary, thresholds)


# --------------------------------------------------------------------------- the workflow on a workspace


@dataclass(frozen=True)
class Proposal:
    """What :func:`propose` did: the candidate's registry record, the verdict, where the report is."""

    candidate: ModelRecord
    baseline: ModelRecord | None
    decision: GateDecision
    gate_report: GateReportRecord
    report_path: Path

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.candidate.name,
            "candidate_version": self.candidate.version,
            "candidate_path": str(self.candidate.path),
            "baseline_version": self.baseline.version if self.baseline else None,
            "passed": self.decision.passed,
            "explanation": self.decision.explain(),
            "checks": [c.as_dict() for c in self.decision.checks],
            "thresholds": self.decision.thresholds.as_dict(),
            "gate_report_id": self.gate_report.id,
            "report_path": str(self.report_path),
        }


def _registry(ws: Workspace) -> tuple[Any, ModelRegistry]:
    db = open_database(ws.database_url)
    return db, ModelRegistry(db)


def _register_candidate(ws: Workspace, name: str, path: Path) -> ModelRecord:
    from homeloop.artifacts import register

    return register(ws, path, name=name)


def propose(
    ws: Workspace,
    candidate_path: str | os.PathLike[str],
    *,
    name: str = "nlu",
    evaluation: str = "hwu64",
    thresholds: GateThresholds | None = None,
    n_resamples: int = 1000,
) -> Proposal:
    """Score the saved NLU at ``candidate_path`` against the version of ``name`` in service; record the verdict.

    The candidate is registered (as the next version of ``name``) unless that
    path already is. ``evaluation`` names the held-out set (:data:`EVALUATION_SETS`).
    """
    from homeloop.nlu import load_model

    if evaluation not in EVALUATION_SETS:
        raise InvalidInputError(f"evaluation set {evaluation!r}: expected one of {sorted(EVALUATION_SETS)}")
    path = Path(candidate_path)
    if not path.exists():
        raise MissingInputError(f"candidate model {path}: expected a saved NLU version folder (e.g. models/nlu/nlu/v2)")
    candidate_model = load_model(path)
    path = Path(candidate_model.path_)
    db, registry = _registry(ws)
    try:
        candidate = _register_candidate(ws, name, path)
        baseline = registry.promoted(name)
        if baseline is not None and baseline.version == candidate.version:
            raise InvalidInputError(f"model {name!r} version {candidate.version} is already in service")
        baseline_model = load_model(baseline.path) if baseline is not None else None
        decision = evaluate_update(
            baseline_model,
            candidate_model,
            EVALUATION_SETS[evaluation](),
            thresholds=thresholds,
            n_resamples=n_resamples,
        )
        summary = {
            **decision.summary,
            "evaluation": evaluation,
            "candidate": {**decision.summary["candidate"], "version": candidate.version, "path": str(candidate.path)},
        }
        if baseline is not None:
            summary["baseline"] = {**summary["baseline"], "version": baseline.version, "path": str(baseline.path)}
        decision = GateDecision(decision.passed, decision.checks, decision.thresholds, summary)
        folder = ws.reports / "gate"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        report_path = folder / f"{name}-v{candidate.version}-{stamp}.json"
        tmp = report_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(decision.as_dict(), indent=2, default=str))
        os.replace(tmp, report_path)
        record = registry.record_gate_report(
            name,
            candidate.version,
            baseline_version=baseline.version if baseline else None,
            passed=decision.passed,
            thresholds=decision.thresholds.as_dict(),
            summary=summary,
            report_path=report_path,
        )
        return Proposal(candidate, baseline, decision, record, report_path)
    finally:
        db.dispose()


def promote(
    ws: Workspace,
    *,
    name: str = "nlu",
    version: int | None = None,
    thresholds: GateThresholds | None = None,
    force: bool = False,
    _after_retire: Callable[[], None] | None = None,
) -> tuple[PromotionRecord, GateDecision]:
    """Put the proposed ``version`` of ``name`` (default: the last proposed) into service if the gate passes.

    The newest gate report of that version is re-judged with ``thresholds``
    (default: the ones it was proposed with). Raises
    :class:`~homeloop.errors.UpdateGateError` when it fails, was never proposed,
    or was proposed against another version than the one now in service.
    """
    db, registry = _registry(ws)
    try:
        if version is None:
            reports = registry.gate_reports(name)
            if not reports:
                raise UpdateGateError(
                    f"model {name!r}: no candidate was proposed; run `homeloop models propose <model folder>` first"
                )
            version = reports[-1].candidate_version
        report = registry.latest_gate_report(name, version)
        if report is None:
            raise UpdateGateError(
                f"model {name!r} version {version}: never proposed, so the gate has not evaluated it; run "
                "`homeloop models propose` on it first"
            )
        in_service = registry.promoted(name)
        if (in_service.version if in_service else None) != report.baseline_version:
            raise UpdateGateError(
                f"model {name!r} version {version} was evaluated against version {report.baseline_version}, but "
                f"version {in_service.version if in_service else None} is in service now; propose it again"
            )
        decision = judge(report.summary, thresholds or GateThresholds.from_dict(report.thresholds))
        if not decision.passed:
            if not force:
                raise UpdateGateError(
                    f"the update gate refuses to promote model {name!r} version {version} over version "
                    f"{report.baseline_version}:\n{decision.explain()}\n(report: {report.report_path})"
                )
            warnings.warn(
                f"PROMOTING {name!r} version {version} ALTHOUGH THE UPDATE GATE FAILED (force=True):\n"
                f"{decision.explain()}",
                UserWarning,
                stacklevel=2,
            )
        record = registry.promote(
            name, version, gate_report_id=report.id, forced=force and not decision.passed, _after_retire=_after_retire
        )
        return record, decision
    finally:
        db.dispose()


def rollback(ws: Workspace, *, name: str = "nlu", _after_retire: Callable[[], None] | None = None) -> PromotionRecord:
    """Put back the version that the one in service of ``name`` replaced (one transaction)."""
    db, registry = _registry(ws)
    try:
        return registry.rollback(name, _after_retire=_after_retire)
    finally:
        db.dispose()


def serving_model_path(ws: Workspace, *, name: str = "nlu") -> Path:
    """The saved version of NLU ``name`` that serving should load (:func:`homeloop.artifacts.in_service`):
    the promoted one, else the newest saved version. Raises :class:`~homeloop.errors.MissingInputError`
    when there is no model at all."""
    from homeloop.artifacts import in_service

    return in_service(ws, "nlu", name)
