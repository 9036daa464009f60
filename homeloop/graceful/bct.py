"""Backward-compatible embeddings (BCT): upgrade an embedding model without re-indexing the gallery.

Shen et al. (CVPR 2020, "Towards Backward-Compatible Representation
Learning") train the new embedding model with the *old* model's classifier,
frozen, as an extra "influence" loss on the new embeddings::

    loss = CE(new_head(phi_new(x)), y) + influence_weight * CE(old_head(phi_new(x)), y)

so new embeddings stay where the old classifier (and so the old embedding
space) expects each class. Queries embedded by the new model can then be
compared with a gallery embedded by the old one, and an index built with the
old model keeps working after the upgrade, without backfilling. The criterion
of compatibility is ``M(new query, old gallery) > M(old query, old gallery)``
for a retrieval metric ``M``.

The same loss with a large model's classifier trains a *small* model (say for
the device) into the large one's space: heterogeneous compatibility.

:class:`IntentEmbedder` is the embedding model (an NLU encoder, a projection
to ``embedding_dim``, an intent classifier); :func:`retrieval_scores` and
:func:`compatibility_matrix` measure utterance-to-intent retrieval (1-NN
intent accuracy and mean average precision over the gallery).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from torch import nn

from homeloop import training
from homeloop.errors import InvalidInputError, NoDataError, NotFittedError
from homeloop.nlu.encoders import get_encoder

__all__ = [
    "EmbeddingNetwork",
    "IntentEmbedder",
    "compatibility_experiment",
    "compatibility_matrix",
    "influence_loss",
    "retrieval_scores",
]


class EmbeddingNetwork(nn.Module):
    """Encoder, a linear projection of its sentence vector (the embedding), and an intent classifier on it."""

    def __init__(self, encoder: nn.Module, *, embedding_dim: int, n_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.projection = nn.Linear(encoder.sentence_dim, embedding_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(embedding_dim, n_classes)

    def forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.projection(self.encoder(inputs).sentence)
        return embedding, self.classifier(self.dropout(embedding))


def influence_loss(
    old_classifier: nn.Linear, old_label_of: torch.Tensor, *, influence_weight: float = 1.0
) -> Callable[[nn.Module, dict[str, Any]], torch.Tensor]:
    """A ``loss_fn(network, batch)``: cross-entropy plus the BCT influence loss through ``old_classifier`` (frozen).

    ``old_label_of[j]`` is the old classifier's index of the new label ``j``
    (``-1`` for labels the old model never saw: those examples add no influence term).
    """
    weight = old_classifier.weight.detach().clone()
    bias = old_classifier.bias.detach().clone()

    def loss_fn(network: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        embedding, logits = network(batch["inputs"])
        loss = F.cross_entropy(logits, batch["label"])
        if influence_weight:
            old_labels = old_label_of.to(embedding.device)[batch["label"]]
            old_logits = F.linear(network.dropout(embedding), weight.to(embedding.device), bias.to(embedding.device))
            if bool((old_labels >= 0).any()):
                loss = loss + influence_weight * F.cross_entropy(old_logits, old_labels, ignore_index=-1)
        return loss

    return loss_fn


class IntentEmbedder(BaseEstimator):
    """Utterance embeddings learnt by intent classification, optionally backward compatible with an old embedder.

    ``encoder`` names an NLU encoder (``"fast"``, ``"minilm"``) built with
    ``encoder_params`` (e.g. ``{"hidden_size": 48}`` for a small on-device
    model); ``embedding_dim`` is the embedding's size (it must equal the old
    model's for compatibility). ``fit(utterances, old=...)`` adds the influence
    loss of ``old``'s classifier with weight ``influence_weight``.

    :meth:`transform` embeds texts or utterances.

    Learned state: ``labels_`` (the intents its classifier was trained on; also ``classes_``, as an array),
    ``network_``, ``history_``, ``compatible_with_`` (a description of the old model, or None).
    """

    def __init__(
        self,
        *,
        encoder: str = "fast",
        embedding_dim: int = 256,
        encoder_params: dict[str, Any] | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        head_lr: float | None = None,
        influence_weight: float = 1.0,
        weight_decay: float = 0.01,
        dropout: float = 0.1,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.encoder = encoder
        self.embedding_dim = embedding_dim
        self.encoder_params = encoder_params
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.head_lr = head_lr
        self.influence_weight = influence_weight
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.seed = seed
        self.device = device

    def _settings(self) -> dict[str, Any]:
        settings = dict(get_encoder(self.encoder).defaults)
        for key in ("epochs", "batch_size", "lr", "head_lr"):
            if getattr(self, key) is not None:
                settings[key] = getattr(self, key)
        return settings

    def fit(
        self, utterances: Sequence[Any], *, old: IntentEmbedder | None = None, callbacks: Sequence[Any] = ()
    ) -> IntentEmbedder:
        """Train on ``utterances`` (objects with ``tokens`` and ``intent``); with ``old``, backward compatibly."""
        examples = [(tuple(t.lower() for t in u.tokens), u.intent) for u in utterances if len(u.tokens)]
        if not examples:
            raise NoDataError(f"fit: expected utterances with words, got {len(utterances)} without any")
        if old is not None:
            old._check_fitted()
            if old.embedding_dim != self.embedding_dim:
                raise InvalidInputError(
                    f"old embedder: expected embedding_dim {self.embedding_dim} to be compatible, "
                    f"got {old.embedding_dim}"
                )
        settings = self._settings()
        training.seed_everything(self.seed)
        labels = sorted({intent for _, intent in examples})
        index = {name: j for j, name in enumerate(labels)}
        encoder = get_encoder(self.encoder).build([t for t, _ in examples], **(self.encoder_params or {}))
        network = EmbeddingNetwork(
            encoder, embedding_dim=self.embedding_dim, n_classes=len(labels), dropout=self.dropout
        )
        dataset = [{"tokens": t, "label": index[intent]} for t, intent in examples]

        def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                "inputs": encoder.encode([item["tokens"] for item in items]),
                "label": torch.tensor([item["label"] for item in items], dtype=torch.long),
            }

        loader = training.make_loader(
            dataset, batch_size=int(settings["batch_size"]), shuffle=True, seed=self.seed, collate_fn=collate
        )
        optimizer = training.default_optimizer(
            [
                {"params": list(network.encoder.parameters()), "lr": float(settings["lr"])},
                {
                    "params": [*network.projection.parameters(), *network.classifier.parameters()],
                    "lr": float(settings["head_lr"]),
                },
            ],
            weight_decay=self.weight_decay,
        )
        if old is not None:
            old_index = {name: j for j, name in enumerate(old.labels_)}
            old_label_of = torch.tensor([old_index.get(name, -1) for name in labels], dtype=torch.long)
            loss_fn = influence_loss(
                old.network_.classifier, old_label_of, influence_weight=float(self.influence_weight)
            )
        else:
            loss_fn = influence_loss(network.classifier, torch.full((len(labels),), -1), influence_weight=0.0)
        self.history_ = training.fit(
            network,
            loader,
            loss_fn=loss_fn,
            optimizer=optimizer,
            epochs=int(settings["epochs"]),
            lr_schedule=settings["lr_schedule"],
            device=self.device,
            callbacks=callbacks,
            seed=self.seed,
        )
        self.labels_ = labels
        self.network_ = network.eval()
        self.compatible_with_ = (
            None
            if old is None
            else {"encoder": old.encoder, "embedding_dim": old.embedding_dim, "labels": len(old.labels_)}
        )
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(utterances) first")

    @property
    def classes_(self) -> np.ndarray:
        """The intents of the embedder's classifier (``labels_`` as an array)."""
        self._check_fitted()
        return np.asarray(self.labels_)

    def embed(self, utterances: Sequence[Any], *, batch_size: int = 256) -> np.ndarray:
        """The same as :meth:`transform`."""
        return self.transform(utterances, batch_size=batch_size)

    @torch.no_grad()
    def transform(self, utterances: Sequence[Any], *, batch_size: int = 256) -> np.ndarray:
        """L2-normalised embeddings ``[n, embedding_dim]`` of texts or of utterances (their ``tokens``)."""
        self._check_fitted()
        token_lists = [
            tuple(u.lower().split()) if isinstance(u, str) else tuple(t.lower() for t in u.tokens) for u in utterances
        ]
        network = self.network_.eval().to(self.device)
        out = np.zeros((len(token_lists), self.embedding_dim), dtype=np.float32)
        for begin in range(0, len(token_lists), batch_size):
            chunk = token_lists[begin : begin + batch_size]
            inputs = training.move_to(network.encoder.encode([t or ("",) for t in chunk]), self.device)
            embedding, _ = network(inputs)
            out[begin : begin + len(chunk)] = F.normalize(embedding.float(), dim=-1).cpu().numpy()
        return out


def retrieval_scores(
    query_embeddings: np.ndarray,
    query_labels: Sequence[str],
    gallery_embeddings: np.ndarray,
    gallery_labels: Sequence[str],
    *,
    chunk: int = 512,
) -> dict[str, float]:
    """Utterance-to-intent retrieval by cosine similarity: ``top1`` (the nearest gallery item's intent is the
    query's) and ``map`` (mean average precision of the gallery items of the query's intent)."""
    if query_embeddings.shape[1] != gallery_embeddings.shape[1]:
        raise InvalidInputError(
            f"retrieval: query embeddings have {query_embeddings.shape[1]} dimensions but the gallery's have "
            f"{gallery_embeddings.shape[1]}; expected the same (compatible models)"
        )
    names = sorted(set(query_labels) | set(gallery_labels))
    code = {name: i for i, name in enumerate(names)}
    q_lab = np.array([code[x] for x in query_labels])
    g_lab = np.array([code[x] for x in gallery_labels])
    top1, aps = [], []
    for begin in range(0, len(q_lab), chunk):
        sims = query_embeddings[begin : begin + chunk] @ gallery_embeddings.T
        order = np.argsort(-sims, axis=1, kind="stable")
        hits = g_lab[order] == q_lab[begin : begin + chunk, None]
        top1.append(hits[:, 0])
        ranks = np.arange(1, hits.shape[1] + 1)
        precision = np.cumsum(hits, axis=1) / ranks
        relevant = hits.sum(1)
        aps.append(np.where(relevant > 0, (precision * hits).sum(1) / np.maximum(relevant, 1), 0.0))
    return {"top1": float(np.concatenate(top1).mean()), "map": float(np.concatenate(aps).mean())}


def compatibility_matrix(
    models: Mapping[str, IntentEmbedder], queries: Sequence[Any], gallery: Sequence[Any]
) -> dict[str, dict[str, dict[str, float] | None]]:
    """``M[query model][gallery model]`` = :func:`retrieval_scores` for every pair of models of equal embedding size."""
    q_emb = {name: m.transform(queries) for name, m in models.items()}
    g_emb = {name: m.transform(gallery) for name, m in models.items()}
    q_lab, g_lab = [u.intent for u in queries], [u.intent for u in gallery]
    return {
        q: {
            g: retrieval_scores(q_emb[q], q_lab, g_emb[g], g_lab) if q_emb[q].shape[1] == g_emb[g].shape[1] else None
            for g in models
        }
        for q in models
    }


def compatibility_experiment(
    train: Sequence[Any],
    test: Sequence[Any],
    *,
    old_fraction: float = 0.5,
    embedding_dim: int = 256,
    small_encoder_params: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    new_encoder: str = "fast",
    new_epochs: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Old embedder (``old_fraction`` of ``train``), new ones on all of it (plain and BCT), and a small BCT one.

    The old and small embedders use the fast encoder (``epochs``); the new ones
    use ``new_encoder`` (``"minilm"`` for the upgrade to the pretrained
    transformer, trained for ``new_epochs``). The gallery is ``train`` and the queries ``test``. Returns the matrix
    (rows: query model; columns: gallery model), the BCT criteria, the small
    model's retrieval loss against the large one, sizes and training seconds.
    """
    from homeloop.graceful.experiments import stratified_subset

    say = progress or (lambda message: None)
    small_params = dict(small_encoder_params or {"hidden_size": 48, "embedding_dim": 64})
    seconds: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], IntentEmbedder]) -> IntentEmbedder:
        say(f"training {name}")
        started = time.perf_counter()
        model = fn()
        seconds[name] = time.perf_counter() - started
        return model

    old = timed(
        "old",
        lambda: IntentEmbedder(embedding_dim=embedding_dim, epochs=epochs, seed=0).fit(
            stratified_subset(train, old_fraction, seed=0)
        ),
    )
    new_settings = {
        "encoder": new_encoder,
        "embedding_dim": embedding_dim,
        "epochs": new_epochs if new_encoder != "fast" else (new_epochs or epochs),
        "seed": 1,
    }
    new_plain = timed("new", lambda: IntentEmbedder(**new_settings).fit(train))
    new_bct = timed("new-bct", lambda: IntentEmbedder(**new_settings).fit(train, old=old))
    small = timed(
        "small-bct",
        lambda: IntentEmbedder(embedding_dim=embedding_dim, encoder_params=small_params, epochs=epochs, seed=2).fit(
            train, old=new_bct
        ),
    )
    small_plain = timed(
        "small",
        lambda: IntentEmbedder(embedding_dim=embedding_dim, encoder_params=small_params, epochs=epochs, seed=2).fit(
            train
        ),
    )
    models = {"old": old, "new": new_plain, "new-bct": new_bct, "small-bct": small, "small": small_plain}
    say("scoring the compatibility matrix")
    matrix = compatibility_matrix(models, test, train)

    def top1(q: str, g: str) -> float:
        return matrix[q][g]["top1"]  # type: ignore[index]

    parameters = {name: sum(p.numel() for p in m.network_.parameters()) for name, m in models.items()}
    return {
        "train_size": len(train),
        "test_size": len(test),
        "embedding_dim": embedding_dim,
        "new_encoder": new_encoder,
        "parameters": parameters,
        "seconds": seconds,
        "matrix": matrix,
        "criteria": {
            "bct: M(new-bct, old) > M(old, old)": top1("new-bct", "old") > top1("old", "old"),
            "plain: M(new, old) > M(old, old)": top1("new", "old") > top1("old", "old"),
            "old index without backfill, top-1 before -> after upgrade": (top1("old", "old"), top1("new-bct", "old")),
            "small-bct vs large (new-bct) gallery, retrieval loss in top-1 points": 100
            * (top1("new-bct", "new-bct") - top1("small-bct", "new-bct")),
            "small (no BCT) vs large gallery, top-1": top1("small", "new-bct"),
        },
    }
