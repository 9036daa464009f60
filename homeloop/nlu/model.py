"""The assistant's NLU: a joint intent classifier and BIO slot tagger over a pluggable encoder."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from torch import nn

from homeloop import training
from homeloop.datasets._base import bio_tags
from homeloop.errors import InvalidInputError, NoDataError, NotFittedError
from homeloop.nlu.encoders import Encoder, get_encoder
from homeloop.nlu.metrics import bio_spans, span_f1

__all__ = [
    "NO_INTENT",
    "IntentSlotModel",
    "JointIntentSlotNetwork",
    "NLUPrediction",
    "evaluate",
    "joint_loss",
    "joint_loss_of_output",
    "tokenize",
]

#: intent predicted for an utterance without words (an empty ASR result), with confidence 0.0
NO_INTENT = ""
IGNORE_INDEX = -100


def tokenize(text: str) -> tuple[str, ...]:
    """Lower-case and split on whitespace, as the HWU64 training data is (apostrophes and punctuation stay)."""
    return tuple(text.lower().split())


@dataclass(frozen=True)
class NLUPrediction:
    """The NLU reading of one utterance.

    ``confidence`` is the softmax probability of ``intent``; ``slots`` are the
    ``(name, value)`` pairs read from the predicted BIO tags, in utterance
    order; ``tokens`` are the words the model saw. An utterance without words
    gets ``intent == NO_INTENT`` (``""``) and confidence ``0.0``.
    """

    intent: str
    confidence: float
    slots: tuple[tuple[str, str], ...]
    tokens: tuple[str, ...]


class JointOutput(NamedTuple):
    intent_logits: torch.Tensor  # [batch, n_intents]
    slot_logits: torch.Tensor  # [batch, max_words, n_tags]
    word_mask: torch.Tensor  # [batch, max_words]


class JointIntentSlotNetwork(nn.Module):
    """Encoder, then a linear intent head on the sentence vector and a linear BIO tag head on each word vector."""

    def __init__(self, encoder: Encoder, *, n_intents: int, n_tags: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.intent_head = nn.Linear(encoder.sentence_dim, n_intents)
        self.slot_head = nn.Linear(encoder.word_dim, n_tags)

    def forward(self, inputs: dict[str, torch.Tensor]) -> JointOutput:
        out = self.encoder(inputs)
        return JointOutput(
            intent_logits=self.intent_head(self.dropout(out.sentence)),
            slot_logits=self.slot_head(self.dropout(out.words)),
            word_mask=out.word_mask,
        )


def joint_loss(network: nn.Module, batch: dict[str, Any], *, slot_loss_weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy of the intents plus ``slot_loss_weight`` times the cross-entropy of the word tags (means).

    ``batch`` holds ``inputs`` (the encoder's tensors), ``intent`` (``[batch]``),
    ``tags`` (``[batch, max_words]``, ``-100`` on padding) and ``index`` (each
    example's position in the list given to ``fit``, for losses that look up
    per-example data such as an old model's logits).
    """
    return joint_loss_of_output(network(batch["inputs"]), batch, slot_loss_weight=slot_loss_weight)


def joint_loss_of_output(out: JointOutput, batch: dict[str, Any], *, slot_loss_weight: float = 1.0) -> torch.Tensor:
    """:func:`joint_loss` from an already computed forward pass (for losses that add terms on the same logits)."""
    loss = F.cross_entropy(out.intent_logits, batch["intent"])
    tags = batch["tags"]
    if slot_loss_weight and bool((tags != IGNORE_INDEX).any()):
        loss = loss + slot_loss_weight * F.cross_entropy(
            out.slot_logits.flatten(0, 1), tags.flatten(), ignore_index=IGNORE_INDEX
        )
    return loss


def _tokens_of(utterance: Any, where: str) -> tuple[tuple[str, ...], list[str], str]:
    try:
        tokens, intent, slots = utterance.tokens, utterance.intent, utterance.slots
    except AttributeError:
        raise InvalidInputError(
            f"{where}: expected a LabeledUtterance (tokens, intent, slots), got {type(utterance).__name__}"
        ) from None
    try:
        tags = bio_tags(len(tokens), slots)
    except IndexError:
        raise InvalidInputError(f"{where}: slot spans {slots!r} fall outside its {len(tokens)} tokens") from None
    return tuple(t.lower() for t in tokens), tags, intent


class IntentSlotModel(BaseEstimator):
    """Joint intent classification and slot tagging, trained end to end (sum of the two cross-entropies).

    ``encoder`` names an entry of :data:`homeloop.nlu.ENCODERS` (``"fast"``:
    fastText-like embeddings and a BiGRU, seconds on a CPU; ``"minilm"``: the
    pretrained all-MiniLM-L6-v2, fine-tuned). ``epochs``, ``batch_size``,
    ``lr`` (the encoder's weights), ``head_lr`` (the two heads) and
    ``lr_schedule`` default to the encoder's ``defaults`` when ``None``.
    ``encoder_params`` go to the encoder's ``build``.

    Learned state: ``intents_`` (label space, sorted; also ``classes_``, as an
    array), ``slot_tags_`` (``"O"`` then the ``B-``/``I-`` tags), ``network_``
    (the torch module), ``history_`` (:class:`homeloop.training.TrainingHistory`)
    and ``training_data_`` (size, sources and SHA-256 of the training examples).

    :meth:`parse` reads each text whole (:class:`NLUPrediction`: intent, confidence, slots);
    :meth:`predict` gives the intents alone and :meth:`predict_proba` their probabilities,
    one column per class.
    """

    def __init__(
        self,
        *,
        encoder: str = "fast",
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        head_lr: float | None = None,
        lr_schedule: str | None = None,
        weight_decay: float = 0.01,
        dropout: float = 0.1,
        slot_loss_weight: float = 1.0,
        encoder_params: dict[str, Any] | None = None,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.encoder = encoder
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.head_lr = head_lr
        self.lr_schedule = lr_schedule
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.slot_loss_weight = slot_loss_weight
        self.encoder_params = encoder_params
        self.seed = seed
        self.device = device

    # ------------------------------------------------------------------ training

    def training_settings(self) -> dict[str, Any]:
        """``epochs``, ``batch_size``, ``lr``, ``head_lr`` and ``lr_schedule`` after filling in the encoder's defaults."""
        settings = dict(get_encoder(self.encoder).defaults)
        for key in ("epochs", "batch_size", "lr", "head_lr", "lr_schedule"):
            if getattr(self, key) is not None:
                settings[key] = getattr(self, key)
        return settings

    def _collate(self, encoder: Encoder) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
        def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
            token_lists = [item["tokens"] for item in items]
            max_words = max([len(t) for t in token_lists] + [1])
            tags = torch.full((len(items), max_words), IGNORE_INDEX, dtype=torch.long)
            for b, item in enumerate(items):
                tags[b, : len(item["tags"])] = torch.as_tensor(item["tags"], dtype=torch.long)
            return {
                "inputs": encoder.encode(token_lists),
                "intent": torch.tensor([item["intent"] for item in items], dtype=torch.long),
                "tags": tags,
                "index": torch.tensor([item["index"] for item in items], dtype=torch.long),
            }

        return collate

    def fit(
        self,
        utterances: Sequence[Any],
        *,
        callbacks: Sequence[Any] = (),
        loss_fn: Callable[[nn.Module, dict[str, Any]], torch.Tensor] | None = None,
        wrap: Callable[[nn.Module, torch.optim.Optimizer, Any], tuple[nn.Module, torch.optim.Optimizer, Any]]
        | None = None,
    ) -> IntentSlotModel:
        """Learn the label space, build the encoder and train on ``utterances`` (``LabeledUtterance`` objects).

        ``callbacks`` go to :func:`homeloop.training.fit` (e.g. a progress bar).
        ``loss_fn(network, batch)`` replaces :func:`joint_loss` (add a
        distillation term, say). ``wrap(network, optimizer, loader)`` returns
        the objects to train with instead, as Opacus ``make_private`` does.
        Utterances without words are skipped.
        """
        if isinstance(utterances, (str, bytes)) or not isinstance(utterances, Sequence):
            raise InvalidInputError(f"fit: expected a list of LabeledUtterance, got {type(utterances).__name__}")
        parsed = [(i, *_tokens_of(u, f"utterance {i}")) for i, u in enumerate(utterances)]
        positions = [i for i, tokens, _, _ in parsed if tokens]  # where each example sits in ``utterances``
        examples = [(tokens, tags, intent) for _, tokens, tags, intent in parsed if tokens]
        if not examples:
            raise NoDataError(f"fit: expected utterances with words, got {len(utterances)} without any")
        encoder_cls = get_encoder(self.encoder)
        settings = self.training_settings()
        generator_seed = int(self.seed)
        training.seed_everything(generator_seed)

        intents = sorted({intent for _, _, intent in examples})
        slot_tags = ["O", *sorted({t for _, tags, _ in examples for t in tags} - {"O"})]
        intent_index = {name: i for i, name in enumerate(intents)}
        tag_index = {name: i for i, name in enumerate(slot_tags)}
        encoder = encoder_cls.build([tokens for tokens, _, _ in examples], **(self.encoder_params or {}))
        network = JointIntentSlotNetwork(encoder, n_intents=len(intents), n_tags=len(slot_tags), dropout=self.dropout)
        dataset = [
            {"index": i, "tokens": tokens, "intent": intent_index[intent], "tags": [tag_index[t] for t in tags]}
            for i, (tokens, tags, intent) in zip(positions, examples, strict=True)
        ]
        loader = training.make_loader(
            dataset,
            batch_size=int(settings["batch_size"]),
            shuffle=True,
            seed=generator_seed,
            collate_fn=self._collate(encoder),
        )
        head_params = [*network.intent_head.parameters(), *network.slot_head.parameters()]
        optimizer = training.default_optimizer(
            [
                {"params": list(network.encoder.parameters()), "lr": float(settings["lr"])},
                {"params": head_params, "lr": float(settings["head_lr"])},
            ],
            weight_decay=self.weight_decay,
        )
        model, loader_used = network, loader
        if wrap is not None:
            model, optimizer, loader_used = wrap(network, optimizer, loader)
        history = training.fit(
            model,
            loader_used,
            loss_fn=loss_fn or partial(joint_loss, slot_loss_weight=self.slot_loss_weight),
            optimizer=optimizer,
            epochs=int(settings["epochs"]),
            lr_schedule=settings["lr_schedule"],
            device=self.device,
            callbacks=callbacks,
            seed=generator_seed,
        )
        digest = hashlib.sha256()
        for tokens, tags, intent in examples:
            digest.update(f"{intent}\t{' '.join(tokens)}\t{' '.join(tags)}\n".encode())
        self.intents_ = intents
        self.slot_tags_ = slot_tags
        self.network_ = network.eval()
        self.history_ = history
        self.training_data_ = {
            "size": len(examples),
            "skipped_empty": len(utterances) - len(examples),
            "sources": sorted({str(getattr(u, "source", "") or "") for u in utterances} - {""}),
            "sha256": digest.hexdigest(),
        }
        return self

    # ------------------------------------------------------------------ inference

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit(utterances) before predicting or saving"
            )

    @property
    def classes_(self) -> np.ndarray:
        """The intents, in the order of :meth:`predict_proba`'s columns (``intents_`` as an array)."""
        self._check_fitted()
        return np.asarray(self.intents_)

    @torch.no_grad()
    def _infer(
        self, token_lists: Sequence[Sequence[str]], *, batch_size: int = 256
    ) -> tuple[np.ndarray, list[list[str]]]:
        """Intent probabilities ``[n, n_intents]`` and predicted BIO tags for already tokenised utterances."""
        self._check_fitted()
        network = self.network_
        network.eval()
        network.to(self.device)
        n = len(token_lists)
        probs = np.zeros((n, len(self.intents_)), dtype=np.float32)
        tags: list[list[str]] = [[] for _ in range(n)]
        order = sorted(range(n), key=lambda i: len(token_lists[i]))  # similar lengths share a batch
        for begin in range(0, n, batch_size):
            chunk = order[begin : begin + batch_size]
            chunk_tokens = [token_lists[i] for i in chunk]
            out = network(training.move_to(network.encoder.encode(chunk_tokens), self.device))
            chunk_probs = torch.softmax(out.intent_logits.float(), dim=-1).cpu().numpy()
            chunk_tags = out.slot_logits.argmax(-1).cpu().tolist()
            for row, i in enumerate(chunk):
                probs[i] = chunk_probs[row]
                tags[i] = [self.slot_tags_[t] for t in chunk_tags[row][: len(token_lists[i])]]
        for i, tokens in enumerate(token_lists):
            if not tokens:
                probs[i] = 1.0 / len(self.intents_)
        return probs, tags

    def _texts(self, texts: Sequence[str], where: str) -> list[tuple[str, ...]]:
        if isinstance(texts, (str, bytes)):
            raise InvalidInputError(f"{where}: expected a sequence of strings, got a single string {texts!r:.60}")
        out = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInputError(f"{where}: text {i} should be a string, got {type(text).__name__}")
            out.append(tokenize(text))
        return out

    def parse(self, texts: Sequence[str], *, batch_size: int = 256) -> list[NLUPrediction]:
        """Read each text: intent, its probability, slots and tokens (see :class:`NLUPrediction`)."""
        self._check_fitted()
        token_lists = self._texts(texts, "parse")
        probs, tags = self._infer(token_lists, batch_size=batch_size)
        best = probs.argmax(1) if len(token_lists) else np.zeros(0, dtype=np.int64)
        predictions = []
        for i, tokens in enumerate(token_lists):
            if not tokens:
                predictions.append(NLUPrediction(intent=NO_INTENT, confidence=0.0, slots=(), tokens=()))
                continue
            slots = tuple((name, " ".join(tokens[s:e])) for name, s, e in bio_spans(tags[i]))
            predictions.append(
                NLUPrediction(
                    intent=self.intents_[best[i]], confidence=float(probs[i, best[i]]), slots=slots, tokens=tokens
                )
            )
        return predictions

    def predict(self, texts: Sequence[str], *, batch_size: int = 256) -> np.ndarray:
        """The intent of each text (``[len(texts)]``, from ``classes_``; :data:`NO_INTENT` for a text without
        words), as :meth:`parse` reads it."""
        self._check_fitted()
        token_lists = self._texts(texts, "predict")
        probs, _ = self._infer(token_lists, batch_size=batch_size)
        labels = np.asarray(self.intents_)[probs.argmax(1)]
        labels[[i for i, tokens in enumerate(token_lists) if not tokens]] = NO_INTENT
        return labels

    def predict_proba(self, texts: Sequence[str], *, batch_size: int = 256) -> np.ndarray:
        """Intent probabilities ``[len(texts), len(intents_)]`` (columns in ``intents_`` order; uniform for empty texts)."""
        self._check_fitted()
        probs, _ = self._infer(self._texts(texts, "predict_proba"), batch_size=batch_size)
        return probs


def evaluate(model: IntentSlotModel, utterances: Sequence[Any], *, batch_size: int = 256) -> dict[str, Any]:
    """Held-out quality with the field's metrics.

    Returns ``n_examples``, ``intent_accuracy``, span-level micro
    ``slot_precision``/``slot_recall``/``slot_f1`` (exact match of type, start
    and end over BIO chunks, as CoNLL and seqeval), and
    ``per_intent_accuracy`` (true intent -> accuracy on its examples).
    Utterances use their own ``tokens``, so the tags line up.
    """
    if not utterances:
        raise NoDataError("evaluate: expected at least one labelled utterance, got none")
    examples = [_tokens_of(u, f"utterance {i}") for i, u in enumerate(utterances)]
    token_lists = [tokens for tokens, _, _ in examples]
    probs, predicted_tags = model._infer(token_lists, batch_size=batch_size)
    correct_by_intent: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    correct = 0
    for i, (tokens, _, intent) in enumerate(examples):
        predicted = model.intents_[int(probs[i].argmax())] if tokens else NO_INTENT
        hit = int(predicted == intent)
        correct += hit
        correct_by_intent[intent][0] += hit
        correct_by_intent[intent][1] += 1
    slots = span_f1([tags for _, tags, _ in examples], predicted_tags)
    return {
        "n_examples": len(examples),
        "intent_accuracy": correct / len(examples),
        "slot_precision": slots["precision"],
        "slot_recall": slots["recall"],
        "slot_f1": slots["f1"],
        "per_intent_accuracy": {k: v[0] / v[1] for k, v in sorted(correct_by_intent.items())},
    }
