"""The defect model on real dialogues: USS (User Satisfaction Simulation, Sun et al. 2021).

USS rates every user turn 1-5 for how satisfied the user is at that point; a
majority rating of 2 or less counts as dissatisfied
(:func:`homeloop.datasets.is_dissatisfied`). The rating is the user's reaction
to the system's previous turn, so each rated user turn plays the part that the
*next* turn plays in an assistant's log: it is where the implicit signals show.
:func:`uss_signals` derives the signals that have an analogue in dialogue text,
named as in :func:`~homeloop.selflearn.sessions.defect_signals`:

============================  ==========================================================
``next_is_negation``          the user says "no", "not", "instead", ... (or its act is a negation)
``next_similarity``           text similarity of this user turn to the user's previous turn
``rephrase_follows``          that similarity is 0.5 or more (the user says it again)
``response_error``            the system turn before was a failure ("sorry", can't, NOTIFY_FAILURE)
``response_clarification``    the system turn before asked a question (REQUEST, CONFIRM)
``response_answer``           the system turn before gave an answer or offer
``system_repeats``            the system said nearly the same as in its turn before
``asks_alternatives``         the user asks for something else (REQUEST_ALTS, "another", "other")
============================  ==========================================================

plus position and lengths. USS has no barge-ins, confidences or timing, so a
model trained here cannot read a lake, and a lake model cannot be scored here
as is: :func:`evaluate_defects_on_uss` trains the same :class:`DefectModel` on
the dialogues of one part and scores it on held-out dialogues, against the same
rules (any of negation, rephrase, error).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from homeloop.selflearn.defects import DefectModel, binary_metrics
from homeloop.selflearn.sessions import NEGATION_WORDS, is_negation, text_similarity

__all__ = ["USS_FEATURES", "USS_RULES", "evaluate_defects_on_uss", "uss_rule_defects", "uss_signals"]

USS_FEATURES = (
    "next_is_negation",
    "negation_words",
    "next_similarity",
    "rephrase_follows",
    "response_error",
    "response_clarification",
    "response_answer",
    "system_repeats",
    "asks_alternatives",
    "text_words",
    "response_words",
    "position",
    "dialogue_turns",
)
USS_RULES = ("next_is_negation", "rephrase_follows", "response_error")

_NEG_ACTS = {"NEGATE", "NEGATE_INTENT", "DENY"}
_ALT_ACTS = {"REQUEST_ALTS"}
_ERROR_ACTS = {"NOTIFY_FAILURE"}
_CLARIFY_ACTS = {"REQUEST", "CONFIRM", "OFFER_INTENT", "REQ_MORE"}
_ERROR_RE = re.compile(
    r"\b(sorry|unfortunately|can't|cannot|couldn't|could not|unable|no (?:results|matches|availability)|"
    r"not available|failed|there (?:are|is) no)\b"
)
_NEGATION_RE = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in (*NEGATION_WORDS, "not", "don't", "instead", "actually", "rather")) + r")\b"
)
_ALT_RE = re.compile(r"\b(another|other|others|else|different|alternatives?)\b")


def _acts(action: str) -> set[str]:
    # SGD: "INFORM_INTENT"; MultiWOZ: "Restaurant-Inform,Hotel-Request"
    parts = re.split(r"[,\s]+", action.upper())
    return {p.split("-")[-1] for p in parts if p}


def uss_signals(dialogues: Sequence[Any]) -> pd.DataFrame:
    """One row per rated user turn of ``dialogues`` (from :func:`homeloop.datasets.load_uss`): the
    :data:`USS_FEATURES`, ``dissatisfied`` (the label), ``dialogue_id`` and ``corpus``."""
    from homeloop.datasets import is_dissatisfied

    rows: list[dict[str, Any]] = []
    for d in dialogues:
        user_turns = [t for t in d.turns if t.role == "USER"]
        prev_user = prev_system = before_system = None
        position = 0
        for turn in d.turns:
            if turn.role == "SYSTEM":
                before_system, prev_system = prev_system, turn
                continue
            text = turn.text.lower()
            acts = _acts(turn.action)
            sys_text = prev_system.text.lower() if prev_system else ""
            sys_acts = _acts(prev_system.action) if prev_system else set()
            similarity = text_similarity(prev_user.text, turn.text) if prev_user else 0.0
            rows.append(
                {
                    "dialogue_id": d.dialogue_id,
                    "corpus": d.corpus,
                    "text": turn.text,
                    "dissatisfied": is_dissatisfied(turn),
                    "next_is_negation": float(is_negation(text) or bool(acts & _NEG_ACTS)),
                    "negation_words": float(len(_NEGATION_RE.findall(text))),
                    "next_similarity": similarity,
                    "rephrase_follows": float(similarity >= 0.5),
                    "response_error": float(bool(sys_acts & _ERROR_ACTS) or bool(_ERROR_RE.search(sys_text))),
                    "response_clarification": float(bool(sys_acts & _CLARIFY_ACTS) or sys_text.rstrip().endswith("?")),
                    "response_answer": float(bool(sys_acts & {"INFORM", "OFFER", "RECOMMEND", "NOTIFY_SUCCESS"})),
                    "system_repeats": text_similarity(before_system.text, prev_system.text)
                    if prev_system and before_system
                    else 0.0,
                    "asks_alternatives": float(bool(acts & _ALT_ACTS) or bool(_ALT_RE.search(text))),
                    "text_words": float(len(text.split())),
                    "response_words": float(len(sys_text.split())),
                    "position": float(position),
                    "dialogue_turns": float(len(user_turns)),
                }
            )
            prev_user = turn
            position += 1
    return pd.DataFrame(rows)


def uss_rule_defects(signals: pd.DataFrame) -> np.ndarray:
    """The rules on USS: a negation, a repeated request, or a failure message before."""
    fired = np.zeros(len(signals), dtype=bool)
    for name in USS_RULES:
        fired |= signals[name].to_numpy(dtype=float) > 0
    return fired


def evaluate_defects_on_uss(
    *,
    corpora: Sequence[str] = ("SGD", "MWOZ"),
    test_fraction: float = 0.3,
    seed: int = 0,
    model: DefectModel | None = None,
) -> dict[str, Any]:
    """Train a :class:`DefectModel` on USS dialogues and score it on held-out dialogues (whole dialogues,
    split at random by ``seed``), beside the rules: AUC, precision, recall, F1, overall and per corpus."""
    from homeloop.datasets import load_uss

    signals = uss_signals([d for c in corpora for d in load_uss(c)])
    dialogues = signals["dialogue_id"].unique()
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(dialogues)[: max(1, round(len(dialogues) * test_fraction))].tolist())
    test = signals["dialogue_id"].isin(held).to_numpy()
    y = signals["dissatisfied"].to_numpy(dtype=bool)
    model = model if model is not None else DefectModel(features=USS_FEATURES, max_iter=150, seed=seed)
    model.fit(signals[~test], y[~test])
    p = model.predict_proba(signals[test])[:, 1]
    flags = p >= model.threshold_
    rules = uss_rule_defects(signals[test])
    out: dict[str, Any] = {
        "corpora": list(corpora),
        "train_turns": int((~test).sum()),
        "test_turns": int(test.sum()),
        "test_dialogues": len(held),
        "test_dissatisfied_rate": round(float(y[test].mean()), 4),
        "threshold": round(model.threshold_, 4),
        "model": binary_metrics(y[test], flags, p),
        "rules": binary_metrics(y[test], rules, rules.astype(float)),
    }
    corpus = signals.loc[test, "corpus"].to_numpy()
    for c in corpora:
        m = corpus == c
        out[f"{c}_model"] = binary_metrics(y[test][m], flags[m], p[m])
        out[f"{c}_rules"] = binary_metrics(y[test][m], rules[m], rules[m].astype(float))
    return out
