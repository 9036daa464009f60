"""The span-prediction rephrase detector, :class:`SpanRephraseDetector`: fine-tuned MiniLM with a span head
reading a request with its candidates (see :mod:`homeloop.selflearn.rephrase`)."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from homeloop.errors import NotFittedError
from homeloop.selflearn.rephrase.encoder import _load_minilm
from homeloop.selflearn.rephrase.examples import (
    RephraseExample,
    _best_candidate_proba,
    _candidate_classes,
    _check_candidates,
    _check_targets,
)

__all__ = ["SpanRephraseDetector"]


def _span_network_class():
    import torch
    from torch import nn

    class SpanRephraseNetwork(nn.Module):
        """MiniLM + one linear layer giving each token a start and an end logit."""

        def __init__(self, transformer: nn.Module) -> None:
            super().__init__()
            self.transformer = transformer
            self.span_head = nn.Linear(int(transformer.config.hidden_size), 2)

        def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            hidden = self.transformer(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                token_type_ids=batch["token_type_ids"],
            ).last_hidden_state
            logits = self.span_head(hidden)
            allowed = batch["allowed"]
            start = logits[..., 0].masked_fill(~allowed, -1e4)
            end = logits[..., 1].masked_fill(~allowed, -1e4)
            return start, end

    return SpanRephraseNetwork


def _span_loss(model, batch):
    import torch.nn.functional as F

    start, end = model(batch)
    return 0.5 * (F.cross_entropy(start, batch["start"]) + F.cross_entropy(end, batch["end"]))


def _gap_words(seconds: float) -> str:
    return f"{int(round(seconds))} seconds later :"


class SpanRephraseDetector(BaseEstimator):
    """The span-prediction rephrase detector (see the module docstring): fine-tuned MiniLM reading the
    request with its candidates, per-token start/end probabilities, ``[CLS]`` for "no rephrase".

    A candidate is predicted when its best span ``(s, e)`` (``s <= e`` inside the candidate, at most
    ``max_span`` tokens) scores higher than "no rephrase" by ``margin`` in log-probability.

    ``fit(examples, targets)`` (a candidate index or None per example). After ``fit``: ``tokenizer_``,
    ``network_``, ``training_data_`` (size and SHA-256 of the examples and targets) and ``classes_``: None ("no rephrase"), then the candidate positions ``0 .. k-1`` (``k``,
    the most candidates a training example has). ``predict`` gives the candidate index or None per example;
    ``predict_proba`` an ``(n, k + 1)`` array over ``classes_``: the model weighs the best candidate span
    against "no rephrase", so column ``1 + k`` of the best candidate ``k`` holds
    ``sigmoid(best span - no rephrase)`` (log-probabilities) and column 0 the rest.
    """

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        max_length: int = 64,
        epochs: int = 2,
        batch_size: int = 16,
        lr: float = 5e-5,
        head_lr: float = 1e-3,
        max_span: int = 24,
        margin: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.model_path = model_path
        self.max_length = max_length
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.head_lr = head_lr
        self.max_span = max_span
        self.margin = margin
        self.seed = seed

    # ---------------------------------------------------------------- encoding

    def _encode_one(self, ex: RephraseExample, target: int | None = None) -> dict[str, Any]:
        """Token ids for one example, the token range of each candidate's text, and the target positions."""
        tok = self.tokenizer_
        budget = self.max_length - 2 - len(ex.candidates)  # [CLS] ... [SEP] and one [SEP] after each candidate
        req = tok(ex.text or "", add_special_tokens=False)["input_ids"]
        req = req[: max(4, budget // (len(ex.candidates) + 1))]
        remaining = budget - len(req)
        per_candidate = max(3, remaining // len(ex.candidates))
        ids = [tok.cls_token_id, *req, tok.sep_token_id]
        types = [0] * len(ids)
        spans: list[tuple[int, int]] = []
        for c in ex.candidates:
            prefix = tok(_gap_words(c.gap_seconds), add_special_tokens=False)["input_ids"]
            text = tok(c.text or "", add_special_tokens=False)["input_ids"] or [tok.unk_token_id]
            room = per_candidate - len(prefix)
            if room < 2:
                prefix, room = [], per_candidate
            text = text[:room]
            start = len(ids) + len(prefix)
            ids += [*prefix, *text, tok.sep_token_id]
            types += [1] * (len(prefix) + len(text) + 1)
            spans.append((start, start + len(text) - 1))
        ids, types = ids[: self.max_length], types[: self.max_length]
        spans = [(s, min(e, len(ids) - 1)) for s, e in spans if s < len(ids)]
        allowed = [False] * len(ids)
        allowed[0] = True
        for s, e in spans:
            for p in range(s, e + 1):
                allowed[p] = True
        if target is not None and target < len(spans):
            start_pos, end_pos = spans[target]
        else:
            start_pos = end_pos = 0
        return {"ids": ids, "types": types, "allowed": allowed, "spans": spans, "start": start_pos, "end": end_pos}

    def _collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(i["ids"]) for i in items)
        pad = self.tokenizer_.pad_token_id

        def padded(key, value, dtype):
            return torch.tensor([i[key] + [value] * (width - len(i[key])) for i in items], dtype=dtype)

        return {
            "input_ids": padded("ids", pad, torch.long),
            "token_type_ids": padded("types", 0, torch.long),
            "attention_mask": torch.tensor(
                [[1] * len(i["ids"]) + [0] * (width - len(i["ids"])) for i in items], dtype=torch.long
            ),
            "allowed": padded("allowed", False, torch.bool),
            "start": torch.tensor([i["start"] for i in items], dtype=torch.long),
            "end": torch.tensor([i["end"] for i in items], dtype=torch.long),
        }

    # ---------------------------------------------------------------- training

    def fit(
        self,
        examples: Sequence[RephraseExample],
        targets: Sequence[int | None],
        *,
        callbacks: Sequence[Any] = (),
    ):
        """Fine-tune MiniLM with a span head on ``examples`` (target: a candidate index, or None)."""
        from homeloop.training import default_optimizer, fit, make_loader, seed_everything

        _check_targets(examples, targets)
        seed_everything(self.seed)
        self.tokenizer_, transformer = _load_minilm(self.model_path)
        self.network_ = _span_network_class()(transformer)
        items = [self._encode_one(ex, t) for ex, t in zip(examples, targets, strict=True)]
        loader = make_loader(items, batch_size=self.batch_size, shuffle=True, seed=self.seed, collate_fn=self._collate)
        optimizer = default_optimizer(
            [
                {"params": list(self.network_.transformer.parameters()), "lr": self.lr},
                {"params": list(self.network_.span_head.parameters()), "lr": self.head_lr},
            ]
        )
        started = time.perf_counter()
        history = fit(
            self.network_,
            loader,
            loss_fn=_span_loss,
            optimizer=optimizer,
            epochs=self.epochs,
            lr_schedule="linear",
            max_grad_norm=1.0,
            callbacks=callbacks,
            seed=self.seed,
        )
        self.network_.eval()
        self.training_seconds_ = time.perf_counter() - started
        self.epoch_losses_ = list(history.epoch_losses)
        self.training_examples_ = len(items)
        digest = hashlib.sha256()
        for ex, t in zip(examples, targets, strict=True):
            texts = "\t".join([ex.text or "", *(f"{c.gap_seconds}:{c.text or ''}" for c in ex.candidates)])
            digest.update(f"{t}\t{texts}\n".encode())
        self.training_data_ = {"size": len(items), "sha256": digest.hexdigest()}
        self.classes_ = _candidate_classes(examples)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise NotFittedError("SpanRephraseDetector: call fit() before predict()")

    # ---------------------------------------------------------------- inference

    def token_probabilities(self, examples: Sequence[RephraseExample]) -> list[dict[str, Any]]:
        """For each example: its token ids, the start and end probability of every token (index 0 is
        "no rephrase") and the token range of each candidate."""
        import torch

        from homeloop.training import make_loader, predict

        self._check_fitted()
        items = [self._encode_one(ex) for ex in examples]
        if not items:
            return []
        loader = make_loader(items, batch_size=64, shuffle=False, collate_fn=self._collate)
        outputs = predict(self.network_, loader)
        out: list[dict[str, Any]] = []
        i = 0
        for start, end in outputs:
            ps, pe = torch.softmax(start, -1).numpy(), torch.softmax(end, -1).numpy()
            for b in range(start.shape[0]):
                n = len(items[i]["ids"])
                out.append({"ids": items[i]["ids"], "start": ps[b, :n], "end": pe[b, :n], "spans": items[i]["spans"]})
                i += 1
        return out

    def _decide(self, examples: Sequence[RephraseExample]) -> tuple[list[int | None], np.ndarray, np.ndarray]:
        probs = self.token_probabilities(examples)
        best_k: list[int | None] = []
        margins = np.zeros(len(probs))
        for n, p in enumerate(probs):
            ls, le = np.log(p["start"] + 1e-12), np.log(p["end"] + 1e-12)
            null = ls[0] + le[0]
            best, which = -math.inf, None
            for k, (s0, e0) in enumerate(p["spans"]):
                for s in range(s0, e0 + 1):
                    e_hi = min(e0, s + self.max_span - 1)
                    e = s + int(np.argmax(le[s : e_hi + 1]))
                    score = ls[s] + le[e]
                    if score > best:
                        best, which = score, k
            best_k.append(which)
            margins[n] = best - null if which is not None else -math.inf
        return best_k, margins, 1 / (1 + np.exp(-np.clip(margins, -50, 50)))

    def predict_proba(self, examples: Sequence[RephraseExample]) -> np.ndarray:
        """Probabilities over ``classes_``, shape ``(n, len(classes_))``: column ``1 + k`` holds
        ``sigmoid(best span - no rephrase)`` for the best candidate ``k``, column 0 the rest."""
        self._check_fitted()
        _check_candidates("SpanRephraseDetector", self.classes_, examples)
        best_k, _, best_p = self._decide(examples)
        return _best_candidate_proba(best_k, best_p, len(self.classes_))

    def predict(self, examples: Sequence[RephraseExample]) -> list[int | None]:
        """The index of the candidate that rephrases each request, or None."""
        self._check_fitted()
        _check_candidates("SpanRephraseDetector", self.classes_, examples)
        best_k, margins, _ = self._decide(examples)
        return [k if m > self.margin else None for k, m in zip(best_k, margins, strict=True)]
