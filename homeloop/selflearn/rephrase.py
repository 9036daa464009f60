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
``fit(examples, targets)`` and ``predict(examples) -> [candidate index or None]``,
``scores(examples)`` -> the probability that the chosen candidate rephrases the
request.

:func:`rephrase_examples` builds examples from sessions; on simulated logs
:func:`truth_rephrase_targets` gives the true answer (a candidate whose truth is
``kind == "rephrase"`` of the same goal as the request), for training and
measurement only.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from homeloop.errors import ArtifactError, MissingInputError, NoDataError, NotFittedError, SchemaError
from homeloop.selflearn.sessions import DEFAULT_REPHRASE_WINDOW_SECONDS, epoch_seconds, is_negation

__all__ = [
    "REPHRASE_MODEL_NAME",
    "PairwiseRephraseDetector",
    "RephraseCandidate",
    "RephraseExample",
    "SpanRephraseDetector",
    "detect_rephrases",
    "load_rephrase_model",
    "rephrase_examples",
    "rephrase_metrics",
    "rephrase_examples_from_lake",
    "save_rephrase_model",
    "similarity_rule",
    "train_rephrase_detector_on_truth",
    "truth_rephrase_targets",
]

REPHRASE_MODEL_NAME = "rephrase"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class RephraseCandidate:
    """A later turn of the same session within the window: its id, text and seconds after the request."""

    turn_id: str
    text: str
    gap_seconds: float


@dataclass(frozen=True)
class RephraseExample:
    """A request and the candidate turns that might rephrase it, in time order."""

    turn_id: str
    text: str
    session: str
    candidates: tuple[RephraseCandidate, ...]
    home_id: str | None = None


def rephrase_examples(
    sessions: pd.DataFrame,
    *,
    window_seconds: float = DEFAULT_REPHRASE_WINDOW_SECONDS,
    max_candidates: int = 3,
) -> list[RephraseExample]:
    """One example per turn of ``sessions`` (as :func:`~homeloop.selflearn.sessions.sessionize` returns)
    that has at least one later turn of its session within ``window_seconds``.

    Turns that are themselves a "no" (:func:`~homeloop.selflearn.sessions.is_negation`) or empty are
    not requests and get no example; they can still be candidates.
    """
    if "session" not in sessions.columns:
        raise SchemaError("sessions: expected the DataFrame that sessionize() returns (with a 'session' column)")
    if max_candidates < 1:
        raise SchemaError(f"max_candidates: expected at least 1, got {max_candidates}")
    texts = sessions["asr_text"].fillna("").astype(str).tolist()
    ids = sessions["turn_id"].astype(str).tolist()
    session = sessions["session"].tolist()
    homes = sessions["home_id"].tolist() if "home_id" in sessions.columns else [None] * len(ids)
    secs = epoch_seconds(sessions["time"])
    out: list[RephraseExample] = []
    n = len(ids)
    for i in range(n):
        if not texts[i].strip() or is_negation(texts[i]):
            continue
        cands = []
        j = i + 1
        while (
            j < n and session[j] == session[i] and secs[j] - secs[i] <= window_seconds and len(cands) < max_candidates
        ):
            cands.append(RephraseCandidate(ids[j], texts[j], float(secs[j] - secs[i])))
            j += 1
        if cands:
            out.append(RephraseExample(ids[i], texts[i], session[i], tuple(cands), homes[i]))
    return out


def truth_rephrase_targets(lake, dataset: str, examples: Sequence[RephraseExample]) -> list[int | None]:
    """For training and measurement on simulated logs: the index of the first candidate that rephrases the
    request (truth ``kind == "rephrase"`` with the request's goal), or None."""
    truth = lake.read(dataset, "truth_turns", columns=["turn_id", "goal_id", "kind"])
    if truth.num_rows == 0:
        raise MissingInputError(f"lake dataset {dataset!r} has no 'truth_turns' (only simulated datasets have them)")
    goal = dict(zip(truth["turn_id"].to_pylist(), truth["goal_id"].to_pylist(), strict=True))
    kind = dict(zip(truth["turn_id"].to_pylist(), truth["kind"].to_pylist(), strict=True))
    targets: list[int | None] = []
    for ex in examples:
        target = None
        if kind.get(ex.turn_id) in ("request", "rephrase"):
            for k, c in enumerate(ex.candidates):
                if kind.get(c.turn_id) == "rephrase" and goal.get(c.turn_id) == goal.get(ex.turn_id):
                    target = k
                    break
        targets.append(target)
    return targets


def rephrase_metrics(predicted: Sequence[int | None], targets: Sequence[int | None]) -> dict[str, Any]:
    """Precision, recall and F1 of predicted (request, rephrase) pairs: a prediction is right when it names
    the true candidate; a missed or wrong candidate counts against recall."""
    if len(predicted) != len(targets):
        raise SchemaError(f"predicted: expected one per target ({len(targets)}), got {len(predicted)}")
    tp = sum(1 for p, t in zip(predicted, targets, strict=True) if p is not None and p == t)
    n_pred = sum(p is not None for p in predicted)
    n_true = sum(t is not None for t in targets)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "examples": len(targets),
        "true_pairs": n_true,
        "predicted_pairs": n_pred,
    }


# --------------------------------------------------------------------------- shared helpers


def _check_targets(examples: Sequence[RephraseExample], targets: Sequence[int | None]) -> None:
    if len(examples) != len(targets):
        raise SchemaError(f"targets: expected one per example ({len(examples)}), got {len(targets)}")
    if not examples:
        raise NoDataError("rephrase detector: expected training examples, got none")
    for ex, t in zip(examples, targets, strict=True):
        if t is not None and not 0 <= t < len(ex.candidates):
            raise SchemaError(f"target {t} of example {ex.turn_id!r}: expected None or 0..{len(ex.candidates) - 1}")


def _load_minilm(model_path: str | Path | None):
    from homeloop.nlu.encoders import _quiet_transformers, minilm_model_path

    path = Path(model_path) if model_path is not None else minilm_model_path()
    with _quiet_transformers() as tf:
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            transformer = tf.AutoModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot load the pretrained MiniLM from {path}: {exc}") from exc
    return tokenizer, transformer


# --------------------------------------------------------------------------- baselines


def similarity_rule(examples: Sequence[RephraseExample], *, min_similarity: float = 0.5) -> list[int | None]:
    """The simplest reading: the most similar candidate by words and letters
    (:func:`~homeloop.selflearn.sessions.text_similarity`), if it reaches ``min_similarity``."""
    from homeloop.selflearn.sessions import text_similarity

    out: list[int | None] = []
    for ex in examples:
        sims = [0.0 if is_negation(c.text) else text_similarity(ex.text, c.text) for c in ex.candidates]
        k = int(np.argmax(sims))
        out.append(k if sims[k] >= min_similarity else None)
    return out


class PairwiseRephraseDetector:
    """Baseline: each (request, candidate) pair scored on its own from the cosine similarity of their
    MiniLM sentence embeddings (pretrained, not fine-tuned) and the seconds between them; a logistic
    regression learns the weights; the best candidate wins if its probability reaches the threshold
    (``threshold``, or with ``tune_threshold`` the one that maximises F1 on the training examples)."""

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        threshold: float = 0.5,
        tune_threshold: bool = True,
        batch_size: int = 64,
    ) -> None:
        self.model_path = model_path
        self.threshold = threshold
        self.tune_threshold = tune_threshold
        self.batch_size = batch_size

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch

        if not hasattr(self, "_encoder"):
            self._encoder = _load_minilm(self.model_path)
        tokenizer, transformer = self._encoder
        transformer.eval()
        distinct = sorted(set(texts))
        vectors: dict[str, np.ndarray] = {}
        with torch.no_grad():
            for start in range(0, len(distinct), self.batch_size):
                batch = distinct[start : start + self.batch_size]
                enc = tokenizer(batch, padding=True, truncation=True, max_length=64, return_tensors="pt")
                hidden = transformer(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                for text, v in zip(batch, pooled.numpy(), strict=True):
                    vectors[text] = v
        return np.stack([vectors[t] for t in texts]) if texts else np.zeros((0, 384))

    def _pairs(self, examples: Sequence[RephraseExample]) -> tuple[np.ndarray, list[tuple[int, int]]]:
        req_texts, cand_texts, gaps, index = [], [], [], []
        for e, ex in enumerate(examples):
            for k, c in enumerate(ex.candidates):
                req_texts.append(ex.text or " ")
                cand_texts.append(c.text or " ")
                gaps.append(c.gap_seconds)
                index.append((e, k))
        if not index:
            return np.zeros((0, 2)), []
        a, b = self._embed(req_texts), self._embed(cand_texts)
        cosine = (a * b).sum(1)
        x = np.column_stack([cosine, np.log1p(np.asarray(gaps, dtype=float))])
        return x, index

    def fit(self, examples: Sequence[RephraseExample], targets: Sequence[int | None]):
        from sklearn.linear_model import LogisticRegression

        _check_targets(examples, targets)
        x, index = self._pairs(examples)
        y = np.array([targets[e] == k for e, k in index], dtype=bool)
        if y.all() or not y.any():
            raise NoDataError("PairwiseRephraseDetector.fit: expected both rephrase and other candidate pairs")
        self.classifier_ = LogisticRegression(C=1.0).fit(x, y)
        self.threshold_ = float(self.threshold)
        if self.tune_threshold:
            best_k, best_p = self._best(examples)
            self.threshold_ = _best_threshold(best_k, best_p, targets)
        return self

    def _best(self, examples: Sequence[RephraseExample]) -> tuple[list[int], np.ndarray]:
        if not hasattr(self, "classifier_"):
            raise NotFittedError("PairwiseRephraseDetector: call fit() before predict()")
        x, index = self._pairs(examples)
        p = self.classifier_.predict_proba(x)[:, 1] if len(index) else np.zeros(0)
        best_k = [0] * len(examples)
        best_p = np.zeros(len(examples))
        for (e, k), pk in zip(index, p, strict=True):
            if pk > best_p[e]:
                best_p[e], best_k[e] = pk, k
        return best_k, best_p

    def scores(self, examples: Sequence[RephraseExample]) -> np.ndarray:
        return self._best(examples)[1]

    def predict(self, examples: Sequence[RephraseExample]) -> list[int | None]:
        best_k, best_p = self._best(examples)
        return [k if p >= self.threshold_ else None for k, p in zip(best_k, best_p, strict=True)]


def _best_threshold(best_k: Sequence[int], best_p: np.ndarray, targets: Sequence[int | None]) -> float:
    """The cut on the best candidate's probability that maximises pair F1 on ``targets``."""
    best_f1, best_t = -1.0, 0.5
    for t in np.unique(np.round(best_p, 4)):
        predicted = [k if p >= t else None for k, p in zip(best_k, best_p, strict=True)]
        f1 = rephrase_metrics(predicted, targets)["f1"]
        if f1 > best_f1:
            best_f1, best_t = f1, float(t)
    return best_t


# --------------------------------------------------------------------------- span model


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


class SpanRephraseDetector:
    """The span-prediction rephrase detector (see the module docstring): fine-tuned MiniLM reading the
    request with its candidates, per-token start/end probabilities, ``[CLS]`` for "no rephrase".

    A candidate is predicted when its best span ``(s, e)`` (``s <= e`` inside the candidate, at most
    ``max_span`` tokens) scores higher than "no rephrase" by ``margin`` in log-probability; ``scores``
    gives ``sigmoid(best span - no rephrase)``.
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

    def get_params(self) -> dict[str, Any]:
        return {
            "model_path": str(self.model_path) if self.model_path is not None else None,
            "max_length": self.max_length,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "head_lr": self.head_lr,
            "max_span": self.max_span,
            "margin": self.margin,
            "seed": self.seed,
        }

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

    def scores(self, examples: Sequence[RephraseExample]) -> np.ndarray:
        """Probability-like score that the best candidate span rephrases the request."""
        return self._decide(examples)[2]

    def predict(self, examples: Sequence[RephraseExample]) -> list[int | None]:
        """The index of the candidate that rephrases each request, or None."""
        best_k, margins, _ = self._decide(examples)
        return [k if m > self.margin else None for k, m in zip(best_k, margins, strict=True)]


# --------------------------------------------------------------------------- lake + artefacts


def detect_rephrases(examples: Sequence[RephraseExample], detector) -> pd.DataFrame:
    """The (request, rephrase) pairs a fitted detector finds: ``turn_id``, ``rephrase_turn_id``,
    ``request_text``, ``rephrase_text``, ``gap_seconds``, ``score``."""
    predicted = detector.predict(examples)
    scores = detector.scores(examples)
    rows = [
        {
            "turn_id": ex.turn_id,
            "rephrase_turn_id": ex.candidates[k].turn_id,
            "request_text": ex.text,
            "rephrase_text": ex.candidates[k].text,
            "gap_seconds": ex.candidates[k].gap_seconds,
            "score": float(s),
        }
        for ex, k, s in zip(examples, predicted, scores, strict=True)
        if k is not None
    ]
    columns = ["turn_id", "rephrase_turn_id", "request_text", "rephrase_text", "gap_seconds", "score"]
    return pd.DataFrame(rows, columns=columns)


def save_rephrase_model(
    detector: SpanRephraseDetector,
    models_dir: str | os.PathLike[str],
    *,
    metrics: dict[str, Any] | None = None,
    training_data: dict[str, Any] | None = None,
) -> Path:
    """Write a fitted span detector as the next version ``<models_dir>/rephrase/v<N>/``:
    ``metadata.json``, ``weights.safetensors`` and ``encoder/`` (tokenizer and transformer config)."""
    from safetensors.torch import save_file

    from homeloop.nlu.artifacts import _homeloop_version, save_version

    detector._check_fitted()

    def write(tmp: Path) -> dict[str, Any]:
        state = {k: v.detach().cpu().contiguous().clone() for k, v in detector.network_.state_dict().items()}
        save_file(state, str(tmp / "weights.safetensors"))
        detector.tokenizer_.save_pretrained(str(tmp / "encoder"))
        detector.network_.transformer.config.save_pretrained(str(tmp / "encoder"))
        return {
            "format": "homeloop-rephrase-model",
            "format_version": _FORMAT_VERSION,
            "homeloop_version": _homeloop_version(),
            "params": detector.get_params(),
            "metrics": metrics or {},
            "training_data": {**(training_data or {}), "examples": getattr(detector, "training_examples_", None)},
            "training_seconds": round(getattr(detector, "training_seconds_", 0.0), 2),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    return save_version(models_dir, REPHRASE_MODEL_NAME, write)


def load_rephrase_model(path: str | os.PathLike[str]) -> SpanRephraseDetector:
    """Load a span detector written by :func:`save_rephrase_model` (a version folder or the folder of versions)."""
    from safetensors.torch import load_file

    from homeloop.nlu.artifacts import latest_model_path, list_versions
    from homeloop.nlu.encoders import _quiet_transformers

    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"rephrase model {path} does not exist")
    if not (path / "metadata.json").exists() and list_versions(path.parent, name=path.name):
        path = latest_model_path(path.parent, name=path.name)
    try:
        meta = json.loads((path / "metadata.json").read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"rephrase model {path}: metadata.json missing or unreadable ({exc})") from None
    if meta.get("format") != "homeloop-rephrase-model" or meta.get("format_version") != _FORMAT_VERSION:
        raise ArtifactError(
            f"rephrase model {path}: expected format homeloop-rephrase-model version {_FORMAT_VERSION}, "
            f"got {meta.get('format')!r} version {meta.get('format_version')!r}"
        )
    params = dict(meta.get("params", {}))
    detector = SpanRephraseDetector(**params)
    try:
        with _quiet_transformers() as tf:
            detector.tokenizer_ = tf.AutoTokenizer.from_pretrained(str(path / "encoder"), local_files_only=True)
            config = tf.AutoConfig.from_pretrained(str(path / "encoder"), local_files_only=True)
            transformer = tf.AutoModel.from_config(config, add_pooling_layer=False)
        network = _span_network_class()(transformer)
        network.load_state_dict(load_file(str(path / "weights.safetensors")))
    except (OSError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"rephrase model {path}: encoder files or weights missing or corrupt ({exc})") from None
    network.eval()
    detector.network_ = network
    detector.path_ = path
    detector.metadata_ = meta
    return detector


def rephrase_examples_from_lake(
    lake, dataset: str, *, window_seconds: float = DEFAULT_REPHRASE_WINDOW_SECONDS, max_candidates: int = 3
) -> list[RephraseExample]:
    """:func:`rephrase_examples` of the sessionized ``turns`` of a lake dataset."""
    from homeloop.selflearn.sessions import sessionize

    turns = lake.read(dataset, "turns", columns=["turn_id", "user_id", "home_id", "device_id", "time", "asr_text"])
    if turns.num_rows == 0:
        raise NoDataError(f"lake dataset {dataset!r}: table 'turns' is empty; ingest or simulate turns first")
    return rephrase_examples(sessionize(turns), window_seconds=window_seconds, max_candidates=max_candidates)


def train_rephrase_detector_on_truth(
    lake,
    dataset: str,
    *,
    max_examples: int = 1200,
    epochs: int = 1,
    test_fraction: float = 0.3,
    seed: int = 0,
    baseline: bool = True,
    callbacks: Sequence[Any] = (),
    examples: Sequence[RephraseExample] | None = None,
) -> tuple[SpanRephraseDetector, dict[str, Any]]:
    """Fine-tune a :class:`SpanRephraseDetector` on a simulated dataset's truth and score it on held-out homes.

    Homes are split into training and held-out test homes (``test_fraction``); at most ``max_examples``
    training examples (drawn at random by ``seed``) train the span model and the pairwise baseline alike.
    Figures: precision, recall and F1 on the test homes of the span model, the pairwise baseline (with
    ``baseline``) and the trivial "the next turn is always the rephrase" rule.
    """
    from homeloop.selflearn.defects import split_homes

    examples = list(examples) if examples is not None else rephrase_examples_from_lake(lake, dataset)
    if not examples:
        raise NoDataError(f"lake dataset {dataset!r}: no turn has a later turn of its session within the window")
    targets = truth_rephrase_targets(lake, dataset, examples)
    test = split_homes([e.home_id or "" for e in examples], test_fraction=test_fraction, seed=seed)
    train_idx = np.flatnonzero(~test)
    rng = np.random.default_rng(seed)
    if len(train_idx) > max_examples:
        train_idx = np.sort(rng.choice(train_idx, size=max_examples, replace=False))
    train_x = [examples[i] for i in train_idx]
    train_y = [targets[i] for i in train_idx]
    test_x = [e for e, m in zip(examples, test, strict=True) if m]
    test_y = [t for t, m in zip(targets, test, strict=True) if m]
    detector = SpanRephraseDetector(epochs=epochs, seed=seed).fit(train_x, train_y, callbacks=callbacks)
    started = time.perf_counter()
    span_pred = detector.predict(test_x)
    figures: dict[str, Any] = {
        "dataset": dataset,
        "train_examples": len(train_x),
        "test_examples": len(test_x),
        "test_homes": len({e.home_id for e in test_x}),
        "test_rephrase_rate": round(sum(t is not None for t in test_y) / max(1, len(test_y)), 4),
        "span_model": rephrase_metrics(span_pred, test_y),
        "span_training_seconds": round(detector.training_seconds_, 1),
        "span_predict_seconds": round(time.perf_counter() - started, 1),
        "next_turn_rule": rephrase_metrics([0] * len(test_x), test_y),
        "similarity_rule": rephrase_metrics(similarity_rule(test_x), test_y),
    }
    if baseline:
        started = time.perf_counter()
        pairwise = PairwiseRephraseDetector().fit(train_x, train_y)
        figures["pairwise_baseline"] = rephrase_metrics(pairwise.predict(test_x), test_y)
        figures["pairwise_threshold"] = round(pairwise.threshold_, 4)
        figures["pairwise_seconds"] = round(time.perf_counter() - started, 1)
    return detector, figures
