"""Metrics of the NLU field: span-level slot F1 over BIO tags (CoNLL / seqeval) and intent accuracy."""

from __future__ import annotations

from collections.abc import Sequence

from homeloop.errors import InvalidInputError

__all__ = ["bio_spans", "span_f1"]


def _split(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in ("B", "I") or not kind:
        raise InvalidInputError(f"BIO tag {tag!r}: expected 'O', 'B-<type>' or 'I-<type>'")
    return prefix, kind


def bio_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The ``(type, start, end)`` chunks (``end`` exclusive) of a BIO tag sequence, as conlleval reads them.

    A chunk starts at ``B-X``, or at ``I-X`` that does not continue a chunk of
    type ``X`` (seqeval's default, non-strict mode); it ends before ``O``, a
    ``B-``, or a tag of another type.
    """
    spans: list[tuple[str, int, int]] = []
    kind: str | None = None
    start = 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, tag_kind = _split(tag)
        begins = prefix == "B" or (prefix == "I" and tag_kind != kind)
        if kind is not None and (prefix == "O" or begins):
            spans.append((kind, start, i))
            kind = None
        if begins:
            kind, start = tag_kind, i
    return spans


def span_f1(true_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro precision, recall and F1 of exactly matching chunks (type, start and end), over all sequences.

    Returns ``precision``, ``recall``, ``f1`` and the counts ``true_spans``,
    ``predicted_spans``, ``correct_spans``. With no chunks at all on either side
    the scores are 0 (as seqeval).
    """
    if len(true_tags) != len(predicted_tags):
        raise InvalidInputError(
            f"span_f1: expected as many predicted tag sequences as true ones, got {len(predicted_tags)} "
            f"for {len(true_tags)}"
        )
    n_true = n_pred = n_correct = 0
    for i, (gold, pred) in enumerate(zip(true_tags, predicted_tags, strict=True)):
        if len(gold) != len(pred):
            raise InvalidInputError(
                f"span_f1: sequence {i} has {len(gold)} true tags but {len(pred)} predicted tags; expected equal lengths"
            )
        gold_spans, pred_spans = set(bio_spans(gold)), set(bio_spans(pred))
        n_true += len(gold_spans)
        n_pred += len(pred_spans)
        n_correct += len(gold_spans & pred_spans)
    precision = n_correct / n_pred if n_pred else 0.0
    recall = n_correct / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_spans": n_true,
        "predicted_spans": n_pred,
        "correct_spans": n_correct,
    }
