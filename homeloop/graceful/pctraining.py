"""Positive-congruent training: update the NLU without breaking what the old model got right.

Focal distillation (Yan et al., CVPR 2021) adds to the task loss a
distillation term towards the old model, weighted per example by
``alpha + beta * [old model was right]``; with the default ``alpha=0`` the new
model is pulled towards the old one only where the old one was right, so it is
free to fix the old errors but is discouraged from breaking old successes::

    loss = task_loss + weight * mean_i((alpha + beta * old_right_i) * D(new_i, old_i))

``D`` comes from :data:`DIVERGENCES`:

- ``"kl"``: ``T^2 * KL(softmax(z_old / T) || softmax(z_new / T))`` (the FD-KL variant);
- ``"logit_matching"``: mean squared difference of the centred logits (the FD-LM
  variant; logits are centred because a softmax is blind to a constant shift,
  so the old model's log-probabilities stand in for its logits);
- ``"logit_difference_inhibition"``: ELODI's loss (Zhao et al., CVPR 2022): the
  squared excess over a margin ``xi`` of the centred logit differences, on the
  ``k`` classes ranked highest by either model.

:func:`teacher_outputs` reads the old model on the training utterances (several
models give an ensemble: the mean of their centred log-probabilities, as ELODI
distils from an ensemble); :func:`focal_distillation_loss` turns that into a
``loss_fn(network, batch)`` for :func:`homeloop.training.fit` /
``IntentSlotModel.fit(loss_fn=...)``; :func:`fit_positive_congruent` does both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import logsumexp
from torch import nn

from homeloop.errors import InvalidInputError, NoDataError
from homeloop.nlu.model import IntentSlotModel, joint_loss_of_output

__all__ = [
    "DIVERGENCES",
    "TeacherOutputs",
    "fit_positive_congruent",
    "focal_distillation_loss",
    "focal_distillation_term",
    "label_space",
    "teacher_outputs",
]

_UNKNOWN_LOG_PROB = -30.0  # log-probability given to a class the teacher never learnt


def label_space(utterances: Sequence[Any]) -> list[str]:
    """The intents ``IntentSlotModel.fit`` will learn from ``utterances`` (sorted; utterances without words skipped)."""
    return sorted({u.intent for u in utterances if len(u.tokens)})


@dataclass(frozen=True)
class TeacherOutputs:
    """The old model(s) on the training utterances, in the new model's label order.

    ``log_probs``: ``[n, n_labels]`` (row ``i`` is utterance ``i``, as ``batch["index"]``
    counts); ``known``: ``[n_labels]``, the labels the teacher knows (others get
    a negligible probability and are left out of logit matching); ``correct``:
    ``[n]``, whether the teacher's top intent is the utterance's label.
    """

    labels: list[str]
    log_probs: torch.Tensor
    known: torch.Tensor
    correct: torch.Tensor

    @property
    def accuracy(self) -> float:
        return float(self.correct.float().mean())


def teacher_outputs(
    teacher: IntentSlotModel | Sequence[IntentSlotModel],
    utterances: Sequence[Any],
    *,
    labels: Sequence[str] | None = None,
) -> TeacherOutputs:
    """Read ``utterances`` with the old model (or the mean of several, an ensemble), aligned to ``labels``.

    ``labels`` defaults to :func:`label_space` of ``utterances``, the order the
    new model's intent head will have.
    """
    models = [teacher] if isinstance(teacher, IntentSlotModel) else list(teacher)
    if not models:
        raise InvalidInputError("teacher: expected an IntentSlotModel or a non-empty list of them, got an empty list")
    if not utterances:
        raise NoDataError("teacher_outputs: expected training utterances, got none")
    labels = list(labels) if labels is not None else label_space(utterances)
    column = {name: j for j, name in enumerate(labels)}
    token_lists = [tuple(t.lower() for t in u.tokens) for u in utterances]
    total = np.zeros((len(utterances), len(labels)), dtype=np.float64)
    known = np.zeros(len(labels), dtype=bool)
    for model in models:
        if not isinstance(model, IntentSlotModel):
            raise InvalidInputError(f"teacher: expected an IntentSlotModel, got {type(model).__name__}")
        probs, _ = model._infer(token_lists)
        log_probs = np.full((len(utterances), len(labels)), _UNKNOWN_LOG_PROB, dtype=np.float64)
        for k, name in enumerate(model.intents_):
            if name in column:
                log_probs[:, column[name]] = np.log(np.clip(probs[:, k], 1e-12, None))
                known[column[name]] = True
        total += log_probs - log_probs.mean(1, keepdims=True)  # centred: an ensemble averages logits
    mean = total / len(models)
    mean = mean - logsumexp(mean, axis=1, keepdims=True)
    truth = np.array([column.get(u.intent, -1) for u in utterances])
    correct = mean.argmax(1) == truth
    return TeacherOutputs(
        labels=labels,
        log_probs=torch.as_tensor(mean, dtype=torch.float32),
        known=torch.as_tensor(known),
        correct=torch.as_tensor(correct),
    )


# --------------------------------------------------------------------------- divergences


def _centred(z: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    z = z[:, known]
    return z - z.mean(1, keepdim=True)


def kl_divergence(
    new_logits: torch.Tensor, old_log_probs: torch.Tensor, known: torch.Tensor, *, temperature: float = 1.0, **_: Any
) -> torch.Tensor:
    """Per-example ``T^2 * KL(p_old^T || p_new^T)``."""
    t = float(temperature)
    old = F.log_softmax(old_log_probs / t, dim=-1)
    new = F.log_softmax(new_logits / t, dim=-1)
    return (t * t) * (old.exp() * (old - new)).sum(-1)


def logit_matching(
    new_logits: torch.Tensor, old_log_probs: torch.Tensor, known: torch.Tensor, **_: Any
) -> torch.Tensor:
    """Per-example mean squared difference of the centred logits over the classes the old model knows."""
    return (_centred(new_logits, known) - _centred(old_log_probs, known)).pow(2).mean(-1)


def logit_difference_inhibition(
    new_logits: torch.Tensor,
    old_log_probs: torch.Tensor,
    known: torch.Tensor,
    *,
    xi: float = 0.5,
    k: int = 10,
    **_: Any,
) -> torch.Tensor:
    """ELODI's per-example loss: ``sum over top-k classes of max(|z_new - z_old| - xi, 0)^2`` (centred logits)."""
    new, old = _centred(new_logits, known), _centred(old_log_probs, known)
    k = min(int(k), new.shape[1])
    top = torch.cat([new.detach().topk(k, dim=-1).indices, old.topk(k, dim=-1).indices], dim=-1)
    chosen = torch.zeros_like(new, dtype=torch.bool).scatter_(1, top, True)
    excess = F.relu((new - old).abs() - float(xi)).pow(2)
    return (excess * chosen).sum(-1)


#: per-example distillation divergences ``f(new_logits, old_log_probs, known, **options) -> [batch]``, by name
DIVERGENCES: dict[str, Callable[..., torch.Tensor]] = {
    "kl": kl_divergence,
    "logit_matching": logit_matching,
    "logit_difference_inhibition": logit_difference_inhibition,
}


def focal_distillation_term(
    teacher: TeacherOutputs,
    *,
    divergence: str = "kl",
    alpha: float = 0.0,
    beta: float = 1.0,
    **divergence_options: Any,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``term(new_logits, index) -> scalar``: the batch mean of ``(alpha + beta * old_right) * D(new, old)``.

    ``index`` holds each example's row in ``teacher`` (``batch["index"]``). Any model with intent logits can add
    it to its task loss: :func:`focal_distillation_loss` does for the NLU, the linear probe of
    :mod:`homeloop.graceful.probe_updates` for its own.
    """
    if divergence not in DIVERGENCES:
        raise InvalidInputError(f"divergence {divergence!r}: expected one of {sorted(DIVERGENCES)}")
    if alpha < 0 or beta < 0:
        raise InvalidInputError(f"alpha, beta: expected non-negative numbers, got {alpha}, {beta}")
    fn = partial(DIVERGENCES[divergence], **divergence_options)

    def term(new_logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        index = index.cpu()
        old = teacher.log_probs[index].to(new_logits.device)
        if old.shape[1] != new_logits.shape[1]:
            raise InvalidInputError(
                f"teacher outputs have {old.shape[1]} labels but the network predicts {new_logits.shape[1]}: "
                "build them with teacher_outputs(old, utterances) on the same utterances the new model trains on"
            )
        focus = alpha + beta * teacher.correct[index].to(old.dtype).to(old.device)
        return (focus * fn(new_logits, old, teacher.known.to(old.device))).mean()

    return term


def focal_distillation_loss(
    teacher: TeacherOutputs,
    *,
    divergence: str = "kl",
    weight: float = 1.0,
    alpha: float = 0.0,
    beta: float = 1.0,
    slot_loss_weight: float = 1.0,
    **divergence_options: Any,
) -> Callable[[nn.Module, dict[str, Any]], torch.Tensor]:
    """A ``loss_fn(network, batch)``: the NLU's joint loss plus ``weight`` times :func:`focal_distillation_term`.

    ``divergence`` names an entry of :data:`DIVERGENCES` (``divergence_options``
    such as ``temperature``, ``xi`` or ``k`` go to it). ``alpha=1, beta=0``
    distils everywhere (plain knowledge distillation, ELODI's setting); the
    default ``alpha=0, beta=1`` only where the old model was right. Batches
    must carry ``index`` (positions into the utterances ``teacher`` read), as
    ``IntentSlotModel.fit`` provides.
    """
    if weight < 0:
        raise InvalidInputError(f"weight: expected a non-negative number, got {weight}")
    term = focal_distillation_term(teacher, divergence=divergence, alpha=alpha, beta=beta, **divergence_options)

    def loss_fn(network: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        out = network(batch["inputs"])
        loss = joint_loss_of_output(out, batch, slot_loss_weight=slot_loss_weight)
        if weight == 0:
            return loss
        return loss + weight * term(out.intent_logits, batch["index"])

    return loss_fn


def fit_positive_congruent(
    model: IntentSlotModel,
    utterances: Sequence[Any],
    *,
    old: IntentSlotModel | Sequence[IntentSlotModel],
    divergence: str = "kl",
    weight: float = 1.0,
    alpha: float = 0.0,
    beta: float = 1.0,
    callbacks: Sequence[Any] = (),
    **divergence_options: Any,
) -> IntentSlotModel:
    """Fit the unfitted ``model`` on ``utterances`` with focal distillation from ``old``; returns ``model``.

    ``old`` is the model in service (or an ensemble, see :func:`teacher_outputs`).
    """
    teacher = teacher_outputs(old, utterances)
    loss_fn = focal_distillation_loss(
        teacher,
        divergence=divergence,
        weight=weight,
        alpha=alpha,
        beta=beta,
        slot_loss_weight=model.slot_loss_weight,
        **divergence_options,
    )
    model.fit(utterances, loss_fn=loss_fn, callbacks=callbacks)
    if list(model.intents_) != teacher.labels:  # pragma: no cover - label_space mirrors fit
        raise InvalidInputError("the new model's label space differs from the teacher outputs' labels")
    model.distillation_ = {
        "divergence": divergence,
        "weight": weight,
        "alpha": alpha,
        "beta": beta,
        "teacher_train_accuracy": teacher.accuracy,
        **divergence_options,
    }
    return model
