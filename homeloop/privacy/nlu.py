"""Differentially private training of the assistant's NLU, through its ordinary ``fit`` and training loop.

:func:`train_private_nlu` trains an :class:`~homeloop.nlu.IntentSlotModel` with
DP-SGD: ``IntentSlotModel.fit(wrap=...)`` hands its network, optimizer and
loader to :func:`~homeloop.privacy.make_private`, and the loss becomes
:func:`per_example_joint_loss` (the joint loss computed per utterance, so one
utterance's loss never depends on the others in its batch).

- ``encoder="fast"`` uses the convolutional context (``context="cnn"``): the
  default BiGRU has no per-sample gradients in bookkeeping or ghost clipping.
  Its word vocabulary is public (``vocabulary="public"``: the whole words of the
  pretrained MiniLM's WordPiece vocabulary) or empty (``"none"``, hashed n-grams
  only): a vocabulary read from the private data (``"data"``) would escape DP-SGD.
  Its size defaults to :data:`PRIVATE_FAST_ENCODER` (smaller than the ordinary one). ``train_embeddings=False`` keeps the n-gram table
  at its random initialisation (random features, no noise spent on them).
- ``encoder="minilm"`` fine-tunes privately the task heads and the last
  ``minilm_trainable_layers`` transformer layers; the rest of the pretrained
  (public) encoder stays frozen, which keeps both the noise dimension and the
  cost down on a CPU.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from homeloop.errors import InvalidInputError
from homeloop.privacy.calibration import scaled_learning_rate
from homeloop.privacy.engine import PrivateTraining, make_private

__all__ = [
    "PRIVATE_FAST_ENCODER",
    "PRIVATE_MINILM_RECIPE",
    "VOCABULARIES",
    "PrivacyRecord",
    "per_example_joint_loss",
    "public_vocabulary",
    "train_private_assistant_nlu",
    "train_private_nlu",
]

IGNORE_INDEX = -100


def per_example_joint_loss(network: nn.Module, batch: dict[str, Any], *, slot_loss_weight: float = 1.0) -> torch.Tensor:
    """``[batch]``: intent cross-entropy plus ``slot_loss_weight`` times the mean tag cross-entropy of the
    utterance's own words (0 for an utterance without tags)."""
    out = network(batch["inputs"])
    loss = F.cross_entropy(out.intent_logits, batch["intent"], reduction="none")
    tags = batch["tags"]
    if slot_loss_weight:
        valid = tags != IGNORE_INDEX
        per_word = F.cross_entropy(
            out.slot_logits.flatten(0, 1), tags.flatten(), ignore_index=IGNORE_INDEX, reduction="none"
        ).reshape(tags.shape)
        loss = loss + slot_loss_weight * per_word.sum(1) / valid.sum(1).clamp(min=1)
    return loss


@dataclass(frozen=True)
class PrivacyRecord:
    """How a model was trained privately; saved with the model (``training_data.privacy`` in its metadata)."""

    epsilon: float  # spent, PRV accountant (upper bound)
    epsilon_rdp: float  # spent, RDP accountant (cross-check; looser)
    delta: float
    target_epsilon: float | None
    noise_multiplier: float
    max_grad_norm: float  # the clipping norm of the first step
    final_max_grad_norm: float  # of the last step: the same unless the norm was adaptive
    expected_batch_size: float
    sample_rate: float
    steps: int
    epochs: int
    clipping: str
    accountant: str
    training_examples: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, private: PrivateTraining, *, epochs: int, training_examples: int, seconds: float) -> PrivacyRecord:
        """The record of a finished :func:`~homeloop.privacy.make_private` run (its target and what it spent)."""
        spent = private.spent()
        return cls(
            epsilon=spent.epsilon,
            epsilon_rdp=spent.epsilon_rdp,
            delta=spent.delta,
            target_epsilon=private.target_epsilon,
            noise_multiplier=private.noise_multiplier,
            max_grad_norm=private.max_grad_norm,
            final_max_grad_norm=private.current_max_grad_norm,
            expected_batch_size=private.expected_batch_size,
            sample_rate=private.sample_rate,
            steps=private.steps,
            epochs=int(epochs),
            clipping=private.clipping,
            accountant=private.accountant,
            training_examples=int(training_examples),
            seconds=float(seconds),
        )


#: the private fast encoder's default size: smaller than the ordinary one, since DP noise grows with the number
#: of parameters (measured in BENCHMARKS.md)
PRIVATE_FAST_ENCODER = {"ngram_buckets": 4000, "embedding_dim": 64, "hidden_size": 96}

#: the MiniLM NLU's private recipe where the caller leaves it unset: bigger Poisson batches, more passes and a
#: clipping norm that follows the per-example norms as they shrink (on HWU64 at epsilon 8, intent accuracy 0.808
#: against 0.559 with the generic "auto" batch of 128, 5 epochs and a norm fixed at initialisation; BENCHMARKS.md)
PRIVATE_MINILM_RECIPE: dict[str, Any] = {"batch_size": 512, "epochs": 10, "max_grad_norm": "adaptive"}


def public_vocabulary() -> list[str]:
    """Whole words of the pretrained MiniLM's WordPiece vocabulary (public, installed with the package)."""
    from homeloop.nlu.encoders import minilm_model_path

    words = (minilm_model_path() / "vocab.txt").read_text(encoding="utf-8").split("\n")
    return sorted({w for w in words if w and not w.startswith(("##", "[")) and w.replace("'", "").isalnum()})


#: where the private fast encoder's word vocabulary comes from: public text, none (n-grams only), or the
#: training data itself (which DP-SGD does not cover: a rare word in the vocabulary reveals a training example)
VOCABULARIES: dict[str, Any] = {"public": public_vocabulary, "none": lambda: [], "data": None}


def _use_vocabulary(network: nn.Module, optimizer: torch.optim.Optimizer, words: list[str]) -> None:
    """Give the fast encoder a data-independent word vocabulary (a fresh embedding table) before training."""
    enc = network.encoder
    old = enc.word_embedding.weight
    enc.vocabulary = list(words)
    enc.word_index = {w: i + 2 for i, w in enumerate(enc.vocabulary)}
    enc.word_embedding = nn.Embedding(len(enc.vocabulary) + 2, enc.embedding_dim, padding_idx=enc.PAD)
    new = enc.word_embedding.weight
    for group in optimizer.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]


def _freeze_minilm(network: nn.Module, trainable_layers: int) -> None:
    transformer = network.encoder.transformer
    for p in transformer.parameters():
        p.requires_grad_(False)
    # (the embeddings stay frozen even when every layer trains: position embeddings are broadcast over the
    # batch, so they have no per-example gradient)
    layers = transformer.encoder.layer
    for layer in list(layers)[max(0, len(layers) - trainable_layers) :] if trainable_layers > 0 else []:
        for p in layer.parameters():
            p.requires_grad_(True)


def train_private_nlu(
    utterances: Sequence[Any],
    *,
    target_epsilon: float,
    delta: float | None = None,
    encoder: str = "fast",
    epochs: int | None = None,
    batch_size: int | str | None = None,
    max_grad_norm: float | str | None = None,
    clipping: str = "auto",
    encoder_params: dict[str, Any] | None = None,
    minilm_trainable_layers: int = 2,
    train_embeddings: bool = True,
    vocabulary: str = "public",
    lr: float | None = None,
    head_lr: float | None = None,
    seed: int = 0,
    callbacks: Sequence[Any] = (),
    model_params: dict[str, Any] | None = None,
) -> tuple[Any, PrivacyRecord]:
    """Train the assistant's NLU on ``utterances`` with DP-SGD at ``(target_epsilon, delta)``.

    ``batch_size`` is the expected Poisson batch size (``"auto"``: the least noisy that leaves enough steps);
    learning rates tuned for the encoder's usual batch size are scaled to it (square-root rule).
    ``epochs``, ``batch_size`` and ``max_grad_norm`` left as None take the encoder's private defaults:
    :data:`PRIVATE_MINILM_RECIPE` for MiniLM (its batch capped at a quarter of the data), ``"auto"`` batch and
    clipping norm with the encoder's epochs for the fast encoder.
    ``target_epsilon=float("inf")`` trains without privacy through the same per-example loss (the baseline).
    Returns the fitted model (with ``privacy_``) and its :class:`PrivacyRecord` (``None`` without privacy).
    """
    from functools import partial

    from homeloop.nlu import IntentSlotModel

    if encoder == "minilm":
        epochs = PRIVATE_MINILM_RECIPE["epochs"] if epochs is None else epochs
        if batch_size is None:
            batch_size = max(1, min(int(PRIVATE_MINILM_RECIPE["batch_size"]), len(utterances) // 4))
        max_grad_norm = PRIVATE_MINILM_RECIPE["max_grad_norm"] if max_grad_norm is None else max_grad_norm
    batch_size = "auto" if batch_size is None else batch_size
    max_grad_norm = "auto" if max_grad_norm is None else max_grad_norm
    params = dict(encoder_params or {})
    if encoder == "fast":
        params.setdefault("context", "cnn")
        for key, value in PRIVATE_FAST_ENCODER.items():
            params.setdefault(key, value)
        if vocabulary not in VOCABULARIES:
            raise InvalidInputError(f"vocabulary {vocabulary!r}: expected one of {sorted(VOCABULARIES)}")
        if vocabulary != "data":  # the vocabulary is swapped in before training (see wrap)
            params.setdefault("min_count", 2**62)
    model = IntentSlotModel(
        encoder=encoder,
        epochs=epochs,
        lr=lr,
        head_lr=head_lr,
        encoder_params=params or None,
        seed=seed,
        **(model_params or {}),
    )
    settings = model.training_settings()
    loss = partial(per_example_joint_loss, slot_loss_weight=model.slot_loss_weight)
    started = time.perf_counter()
    if target_epsilon == float("inf"):

        def same_vocabulary(network: nn.Module, optimizer: torch.optim.Optimizer, loader: Any):
            if encoder == "fast" and vocabulary != "data":
                _use_vocabulary(network, optimizer, VOCABULARIES[vocabulary]())
            return network, optimizer, loader

        model.fit(
            utterances,
            callbacks=callbacks,
            loss_fn=lambda net, batch: loss(net, batch).mean(),
            wrap=same_vocabulary,
        )
        model.privacy_ = None
        return model, None
    if not (isinstance(target_epsilon, (int, float)) and target_epsilon > 0):
        raise InvalidInputError(f"target_epsilon: expected a positive number or inf, got {target_epsilon!r}")
    holder: dict[str, PrivateTraining] = {}

    def wrap(network: nn.Module, optimizer: torch.optim.Optimizer, loader: Any):
        if encoder == "fast" and vocabulary != "data":
            _use_vocabulary(network, optimizer, VOCABULARIES[vocabulary]())
        if encoder == "minilm":
            _freeze_minilm(network, minilm_trainable_layers)
        elif not train_embeddings:  # random, data-independent features: no noise spent on them
            for p in network.encoder.parameters():
                if p.dim() == 2 and p.shape[1] == network.encoder.embedding_dim:
                    p.requires_grad_(False)
        private = make_private(
            network,
            optimizer,
            loader,
            epochs=int(settings["epochs"]),
            target_epsilon=target_epsilon,
            target_delta=delta,
            max_grad_norm=max_grad_norm,
            batch_size=batch_size,
            per_example_loss=loss,
            clipping=clipping,
            seed=seed,
        )
        for group in optimizer.param_groups:
            group["lr"] = scaled_learning_rate(
                group["lr"], from_batch_size=int(settings["batch_size"]), to_batch_size=private.expected_batch_size
            )
            group["initial_lr"] = group["lr"]
        holder["private"] = private
        return private.module, private.optimizer, private.data_loader

    def private_loss(network: nn.Module, batch: dict[str, Any]) -> Any:
        return holder["private"].loss(loss)(network, batch)

    try:
        model.fit(utterances, callbacks=callbacks, loss_fn=private_loss, wrap=wrap)
    finally:
        if "private" in holder:
            holder["private"].detach()
    for p in model.network_.parameters():
        p.requires_grad_(True)
    private = holder["private"]
    record = PrivacyRecord.of(
        private,
        epochs=int(settings["epochs"]),
        training_examples=len(private.data_loader.dataset) if hasattr(private.data_loader, "dataset") else 0,
        seconds=time.perf_counter() - started,
    )
    model.privacy_ = record.as_dict()
    return model, record


def train_private_assistant_nlu(
    ws: Any,
    *,
    target_epsilon: float,
    delta: float | None = None,
    encoder: str = "fast",
    epochs: int | None = None,
    seed: int = 0,
    callbacks: Sequence[Any] = (),
    **options: Any,
) -> tuple[Any, Any, dict[str, Any]]:
    """The private twin of ``homeloop.serving.train_assistant_nlu``: train on HWU64 train with DP-SGD, score on
    HWU64 test, save the model (its :class:`PrivacyRecord` under ``training_data.privacy`` in the metadata)
    and register it in the model registry. Returns ``(model, path, metrics)``."""
    from homeloop.artifacts import register
    from homeloop.datasets.hwu64 import load_hwu64
    from homeloop.nlu import evaluate, save_model

    started = time.perf_counter()
    model, record = train_private_nlu(
        load_hwu64("train"),
        target_epsilon=target_epsilon,
        delta=delta,
        encoder=encoder,
        epochs=epochs,
        seed=seed,
        callbacks=callbacks,
        **options,
    )
    seconds = time.perf_counter() - started
    privacy = record.as_dict() if record else {"epsilon": float("inf")}
    metrics = {
        **evaluate(model, load_hwu64("test")),
        "dataset": "hwu64",
        "split": "test",
        "training_seconds": round(seconds, 2),
        "epsilon": privacy["epsilon"],
        "delta": privacy.get("delta"),
    }
    data = {"name": "hwu64", "split": "train", "privacy": privacy}
    path = save_model(model, ws.models, metrics=metrics, training_data=data)
    register(ws, path)
    return model, path, metrics
