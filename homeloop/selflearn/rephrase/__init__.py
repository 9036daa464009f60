"""Rephrase detection: which of a user's next turns, if any, says a request again in other (or the same) words.

Framed as span prediction, as Alexa describes it: a request and the user's next
turns within a time window (the timestamps limit the candidates) are read
together by a pretrained transformer encoder (the MiniLM of
:func:`homeloop.nlu.encoders.minilm_model_path`, fine-tuned), which gives every
token a probability of starting and of ending the span that rephrases the
request; the first token (``[CLS]``) stands for "no rephrase", as in SQuAD 2.0.
Input::

    [CLS] request [SEP] 4 seconds later: candidate 1 [SEP] 9 seconds later: candidate 2 [SEP] ...

:class:`SpanRephraseDetector` is that model; :class:`PairwiseRephraseDetector`
is the baseline that scores each (request, candidate) pair on its own from the
cosine similarity of their sentence embeddings (the same MiniLM, not fine-tuned)
and the time gap, with a logistic regression. Both follow one interface:
``fit(examples, targets)`` and ``predict(examples) -> [candidate index or None]``;
their classes are None ("no rephrase") and the candidate positions, and
``predict_proba(examples)`` gives an ``(n, 1 + candidates)`` array that holds the
probability that the best candidate rephrases the request in its column and the
rest in column 0.

:func:`rephrase_examples` builds examples from sessions; on simulated logs
:func:`truth_rephrase_targets` gives the true answer (a candidate whose truth is
``kind == "rephrase"`` of the same goal as the request), for training and
measurement only.

Modules: :mod:`~homeloop.selflearn.rephrase.examples` (requests and their candidates, truth, metrics),
:mod:`~homeloop.selflearn.rephrase.encoder` (the pretrained MiniLM both detectors read),
:mod:`~homeloop.selflearn.rephrase.baselines` (the similarity rule and the pairwise detector),
:mod:`~homeloop.selflearn.rephrase.span_model` (the span detector) and
:mod:`~homeloop.selflearn.rephrase.lake` (examples from a lake dataset, detected pairs, training on a
simulated dataset's truth). Their public names are re-exported here. The span detector's saved files are
the format ``homeloop.selflearn.rephrase_span`` of :mod:`homeloop.selflearn.artifacts`.
"""

from homeloop.selflearn.rephrase.baselines import PairwiseRephraseDetector, similarity_rule
from homeloop.selflearn.rephrase.examples import (
    RephraseCandidate,
    RephraseExample,
    rephrase_examples,
    rephrase_metrics,
    truth_rephrase_targets,
)
from homeloop.selflearn.rephrase.lake import (
    detect_rephrases,
    rephrase_examples_from_lake,
    train_rephrase_detector_on_truth,
)
from homeloop.selflearn.rephrase.span_model import SpanRephraseDetector

__all__ = [
    "PairwiseRephraseDetector",
    "RephraseCandidate",
    "RephraseExample",
    "SpanRephraseDetector",
    "detect_rephrases",
    "rephrase_examples",
    "rephrase_metrics",
    "rephrase_examples_from_lake",
    "similarity_rule",
    "train_rephrase_detector_on_truth",
    "truth_rephrase_targets",
]
