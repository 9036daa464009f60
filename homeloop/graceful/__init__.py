"""Graceful model updates: measure regressions, train without them, keep embeddings compatible, gate releases.

- :mod:`homeloop.graceful.flips`: negative/positive flip rates, negative flip
  impact, relative NFR, bootstrap intervals, McNemar's test, per-slice reports;
- :mod:`homeloop.graceful.pctraining`: positive-congruent training (focal
  distillation, KL and logit matching; an ELODI-style ensemble variant) as a
  ``loss_fn`` for :func:`homeloop.training.fit`;
- :mod:`homeloop.graceful.interpolation`: backward-compatible weight interpolation
  (BCWI): the new model's weights moved part of the way back to the old one's;
- :mod:`homeloop.graceful.bct`: backward-compatible embeddings and compatibility
  across model sizes, measured by utterance-to-intent retrieval;
- :mod:`homeloop.graceful.lqf`: linearised quadratic fine-tuning of the NLU head;
- :mod:`homeloop.graceful.gate`: the update gate (propose, promote, rollback) over
  the model registry; serving loads :func:`serving_model_path`;
- :mod:`homeloop.graceful.figures`: error against negative flip rate of updates.

Example::

    from homeloop.graceful import compare_predictions, fit_positive_congruent
    new = fit_positive_congruent(IntentSlotModel(seed=1), train, old=old_model, divergence="kl")
    report = compare_predictions(y, old_predictions, new_predictions, slices={"intent": y})
    report.negative_flip_rate  # Interval(value, low, high, confidence)
"""

from homeloop.graceful.bct import IntentEmbedder, compatibility_matrix, retrieval_scores
from homeloop.graceful.flips import (
    FlipReport,
    compare_predictions,
    mcnemar_test,
    negative_flip_impact,
    negative_flip_rate,
    positive_flip_rate,
    relative_negative_flip_rate,
)
from homeloop.graceful.gate import (
    GateDecision,
    GateThresholds,
    evaluate_update,
    promote,
    propose,
    rollback,
    serving_model_path,
)
from homeloop.graceful.interpolation import interpolate_models, interpolate_weights
from homeloop.graceful.lqf import HeadFineTuner
from homeloop.graceful.pctraining import (
    DIVERGENCES,
    fit_positive_congruent,
    focal_distillation_loss,
    teacher_outputs,
)

__all__ = [
    "DIVERGENCES",
    "FlipReport",
    "GateDecision",
    "GateThresholds",
    "HeadFineTuner",
    "IntentEmbedder",
    "compare_predictions",
    "compatibility_matrix",
    "evaluate_update",
    "fit_positive_congruent",
    "focal_distillation_loss",
    "interpolate_models",
    "interpolate_weights",
    "mcnemar_test",
    "negative_flip_impact",
    "negative_flip_rate",
    "positive_flip_rate",
    "promote",
    "propose",
    "relative_negative_flip_rate",
    "retrieval_scores",
    "rollback",
    "serving_model_path",
    "teacher_outputs",
]
