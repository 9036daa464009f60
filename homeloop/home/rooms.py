"""Room inference for devices whose names say nothing ("Plug 1").

A device is put in the room whose devices it is used *together with*: in a home,
things in one room are switched within a minute or two of each other (walk into the
kitchen, open the cupboard, the drawer, switch on the burner). For a target device
and each candidate room, the co-usage score is the mean of the two highest cosine
similarities between the target's on-switch train (on a fine slot grid, each switch
widened by ``window_slots`` on each side) and those of the room's devices.

Two more signals join it, both from the device embeddings (computed with names and
rooms hidden, so they carry usage, type and timing only):

- within the home, the mean of the two highest embedding similarities to the room's
  devices (``embedding_weight``);
- across homes, a logistic regression from embedding to room name trained on other
  homes' devices (``classifier_weight``); it lets a device be placed in a room that
  has no other device in its home.

plus the log share of the home's devices in each room (``prior_weight``). The room
with the highest total score wins; :func:`evaluate_rooms` measures leave-one-out
accuracy (each device's name and room hidden in turn) against always guessing the
most common room of the home.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from homeloop.errors import InvalidInputError
from homeloop.home.features import DeviceHistory, HomeSlots

__all__ = ["RoomGuess", "co_usage_similarity", "evaluate_rooms", "infer_rooms"]


@dataclass(frozen=True)
class RoomGuess:
    device_id: str
    room: str | None
    score: float
    runner_up: str | None
    margin: float  # best score minus the runner-up's


def co_usage_similarity(home: HomeSlots, *, window_slots: int = 1) -> np.ndarray:
    """Cosine similarity between the devices' on-switch trains, each switch widened by ``window_slots``."""
    s = np.minimum(home.starts, 1).astype(np.float32)
    if window_slots > 0:
        c = np.cumsum(np.pad(s, ((0, 0), (window_slots + 1, window_slots))), axis=1)
        s = np.minimum(c[:, 2 * window_slots + 1 :] - c[:, : -(2 * window_slots + 1)], 1.0)
    norm = np.linalg.norm(s, axis=1) + 1e-9
    sim = (s @ s.T) / norm[:, None] / norm[None, :]
    np.fill_diagonal(sim, 0.0)
    return sim


def _top2(values: np.ndarray) -> float:
    if values.size == 0:
        return 0.0
    if values.size == 1:
        return float(values[0])
    return float(np.mean(np.partition(values, -2)[-2:]))


def _cosine(a: np.ndarray) -> np.ndarray:
    a = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-9)
    return a @ a.T


def _score_rooms(
    target: int,
    rooms: Sequence[str | None],
    co: np.ndarray,
    emb_sim: np.ndarray | None,
    class_probs: Mapping[str, float] | None,
    *,
    embedding_weight: float,
    classifier_weight: float,
    prior_weight: float,
) -> dict[str, float]:
    members: dict[str, list[int]] = {}
    for j, r in enumerate(rooms):
        if j != target and r is not None:
            members.setdefault(r, []).append(j)
    candidates = set(members) | set(class_probs or ())
    total = sum(len(v) for v in members.values()) or 1
    scores = {}
    for r in candidates:
        idx = np.asarray(members.get(r, []), dtype=int)
        s = _top2(co[target, idx]) if idx.size else 0.0
        if emb_sim is not None and idx.size:
            s += embedding_weight * _top2(emb_sim[target, idx])
        if class_probs is not None:
            s += classifier_weight * float(class_probs.get(r, 0.0))
        s += prior_weight * np.log((len(idx) + 0.5) / (total + 0.5))
        scores[r] = s
    return scores


def _guess(device_id: str, scores: Mapping[str, float]) -> RoomGuess:
    if not scores:
        return RoomGuess(device_id, None, float("nan"), None, 0.0)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    best, runner = ranked[0], ranked[1] if len(ranked) > 1 else (None, float("-inf"))
    margin = best[1] - runner[1] if runner[0] is not None else float("inf")
    return RoomGuess(device_id, best[0], float(best[1]), runner[0], float(margin))


def _classifier_probs(
    history: DeviceHistory, embeddings: np.ndarray, rooms: Sequence[str | None], folds: int, seed: int
) -> list[dict[str, float] | None]:
    """Per device: P(room | embedding) from a classifier fitted on *other homes'* devices (``None`` without any)."""
    from sklearn.linear_model import LogisticRegression

    homes = np.repeat(np.arange(len(history.homes)), [len(h.devices) for h in history.homes])
    out: list[dict[str, float] | None] = [None] * len(rooms)
    if len(history.homes) < 2:
        return out
    order = np.random.default_rng(seed).permutation(len(history.homes))
    fold_of_home = np.empty(len(history.homes), int)
    fold_of_home[order] = np.arange(len(order)) % max(2, min(folds, len(order)))
    fold = fold_of_home[homes]
    labelled = np.array([r is not None for r in rooms])
    y = np.array([r or "" for r in rooms], dtype=object)
    for f in np.unique(fold):
        train = labelled & (fold != f)
        if len(set(y[train])) < 2:
            continue
        clf = LogisticRegression(max_iter=500, C=1.0).fit(embeddings[train], y[train])
        test = np.flatnonzero(fold == f)
        probs = clf.predict_proba(embeddings[test])
        for i, p in zip(test, probs, strict=True):
            out[i] = dict(zip(clf.classes_, p.tolist(), strict=True))
    return out


def infer_rooms(
    history: DeviceHistory,
    *,
    rooms: Mapping[str, str | None] | None = None,
    targets: Sequence[str] | None = None,
    embeddings: np.ndarray | None = None,
    window_slots: int = 1,
    embedding_weight: float = 0.25,
    classifier_weight: float = 0.5,
    prior_weight: float = 0.01,
    folds: int = 5,
    seed: int = 0,
) -> list[RoomGuess]:
    """Guess the room of each device in ``targets`` (default: every device with events and no known room).

    ``rooms`` maps device ids to known rooms (default: the configured rooms of the
    history's devices); ``embeddings`` are rows of the history's device table, computed
    with names and rooms hidden (see :meth:`DeviceStateModel.embed`). Use a history on a
    fine grid (``slot_minutes=1``) for co-usage.
    """
    table = history.device_table()
    if rooms is None:
        rooms = {d: r for d, r in zip(table["device_id"], table["room"], strict=True) if isinstance(r, str)}
    known = [rooms.get(d) for d in table["device_id"]]
    if targets is None:
        targets = [d for d, r, e in zip(table["device_id"], known, table["has_events"], strict=True) if r is None and e]
    wanted = set(targets)
    unknown = wanted - set(table["device_id"])
    if unknown:
        raise InvalidInputError(f"targets: devices {sorted(unknown)[:5]} are not in the history")
    if embeddings is not None and len(embeddings) != len(table):
        raise InvalidInputError(f"embeddings: expected {len(table)} rows (one per device), got {len(embeddings)}")
    probs = _classifier_probs(history, embeddings, known, folds, seed) if embeddings is not None else None
    guesses = []
    at = 0
    for home in history.homes:
        k = len(home.devices)
        local = [d in wanted for d in home.devices["device_id"]]
        if any(local):
            co = co_usage_similarity(home, window_slots=window_slots)
            es = _cosine(embeddings[at : at + k]) if embeddings is not None else None
            home_rooms = [known[at + j] if not local[j] else None for j in range(k)]
            for j in np.flatnonzero(local):
                scores = _score_rooms(
                    j, home_rooms, co, es, probs[at + j] if probs is not None else None,
                    embedding_weight=embedding_weight, classifier_weight=classifier_weight, prior_weight=prior_weight,
                )  # fmt: skip
                guesses.append(_guess(home.devices["device_id"].iloc[j], scores))
        at += k
    return guesses


def evaluate_rooms(
    history: DeviceHistory,
    *,
    truth: Mapping[str, str] | None = None,
    embeddings: np.ndarray | None = None,
    window_slots: int = 1,
    embedding_weight: float = 0.25,
    classifier_weight: float = 0.5,
    prior_weight: float = 0.01,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Leave-one-out room accuracy: each device with events and a known room, its name and room hidden in turn.

    ``truth`` maps device ids to true rooms (default: the configured rooms); the other
    devices keep their configured rooms. The cross-home classifier is fitted on other
    homes only (``folds`` folds of homes). Returns the accuracy, the accuracy of always
    guessing the home's most common room among the other devices, the co-usage-only
    accuracy, the number of devices scored and a table of guesses.
    """
    table = history.device_table()
    configured = [r if isinstance(r, str) else None for r in table["room"]]
    if truth is None:
        truth = {d: r for d, r in zip(table["device_id"], configured, strict=True) if r is not None}
    if embeddings is not None and len(embeddings) != len(table):
        raise InvalidInputError(f"embeddings: expected {len(table)} rows (one per device), got {len(embeddings)}")
    probs = _classifier_probs(history, embeddings, configured, folds, seed) if embeddings is not None else None
    rows = []
    at = 0
    for home in history.homes:
        k = len(home.devices)
        ids = list(home.devices["device_id"])
        targets = [j for j in range(k) if home.has_events[j] and ids[j] in truth]
        if targets:
            co = co_usage_similarity(home, window_slots=window_slots)
            es = _cosine(embeddings[at : at + k]) if embeddings is not None else None
            for j in targets:
                others = [configured[at + i] if i != j else None for i in range(k)]
                full = _guess(ids[j], _score_rooms(
                    j, others, co, es, probs[at + j] if probs is not None else None,
                    embedding_weight=embedding_weight, classifier_weight=classifier_weight, prior_weight=prior_weight,
                ))  # fmt: skip
                co_only = _guess(ids[j], _score_rooms(
                    j, others, co, None, None, embedding_weight=0.0, classifier_weight=0.0, prior_weight=0.0
                ))  # fmt: skip
                counts = Counter(r for r in others if r is not None)
                top = min(counts, key=lambda r: (-counts[r], r)) if counts else None
                rows.append({
                    "device_id": ids[j], "home_id": home.home_id, "name": home.devices["name"].iloc[j],
                    "true_room": truth[ids[j]], "guess": full.room, "co_usage_guess": co_only.room,
                    "most_common_room": top, "margin": full.margin,
                })  # fmt: skip
        at += k
    df = pd.DataFrame(rows)
    if df.empty:
        return {
            "devices": 0,
            "accuracy": float("nan"),
            "co_usage_only_accuracy": float("nan"),
            "most_common_room_accuracy": float("nan"),
            "guesses": df,
        }
    return {
        "devices": len(df),
        "accuracy": float((df["guess"] == df["true_room"]).mean()),
        "co_usage_only_accuracy": float((df["co_usage_guess"] == df["true_room"]).mean()),
        "most_common_room_accuracy": float((df["most_common_room"] == df["true_room"]).mean()),
        "guesses": df,
    }
