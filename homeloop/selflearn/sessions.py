"""Sessions and the implicit signals that a turn went wrong.

A *session* is one user's turns on one speaking device, split wherever more than
``gap_seconds`` pass between two turns (:func:`sessionize`). Within a session,
what follows a turn says how it went: the user barged in, said "no", repeated
or rephrased the request within a few seconds, or gave up; the assistant
answered with an error. :func:`defect_signals` turns each turn and its context
into one row of such signals and features, :func:`rule_defects` is the
rules-only reading of them (the baseline the learned
:class:`~homeloop.selflearn.defects.DefectModel` is measured against).

Bad input: turns without a time are rejected (:class:`~homeloop.errors.SchemaError`
naming the turns), unsorted turns are sorted, a turn id that repeats is kept
once (the count dropped is in ``frame.attrs["duplicates_dropped"]``), missing or
empty text counts as an empty utterance (it still happened), and an empty input
raises :class:`~homeloop.errors.NoDataError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from homeloop.errors import NoDataError, SchemaError

__all__ = [
    "DEFAULT_REPHRASE_WINDOW_SECONDS",
    "DEFAULT_SESSION_GAP_SECONDS",
    "NEGATION_WORDS",
    "SIGNAL_FEATURES",
    "defect_signals",
    "is_negation",
    "rule_defects",
    "sessionize",
    "text_similarity",
]

DEFAULT_SESSION_GAP_SECONDS = 60.0
DEFAULT_REPHRASE_WINDOW_SECONDS = 45.0
DEFAULT_REVERT_WINDOW_SECONDS = 120.0
REQUIRED_COLUMNS = ("turn_id", "user_id", "device_id", "time")
_OPTIONAL_DEFAULTS = {
    "asr_text": "",
    "asr_confidence": np.nan,
    "nlu_confidence": np.nan,
    "intent": None,
    "response_type": None,
    "barge_in": False,
    "feedback": None,
    "home_id": None,
    "rewritten_from": None,
}

# words and phrases by which people tell an assistant it got something wrong
NEGATION_WORDS = (
    "no", "nope", "stop", "cancel", "wrong", "not that", "that's not", "that is not", "thats not", "never mind",
    "nevermind", "shut up", "quiet", "be quiet", "incorrect", "not what i", "i said", "you misunderstood",
    "that's wrong", "not right", "forget it", "halt", "enough", "silence",
)  # fmt: skip
_NEGATION_RE = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in sorted(NEGATION_WORDS, key=len, reverse=True)) + r")\b"
)
_WORD_RE = re.compile(r"[a-z0-9']+")

SIGNAL_FEATURES = (
    "barge_in",
    "feedback_negative",
    "feedback_positive",
    "response_error",
    "response_clarification",
    "response_none",
    "response_action",
    "response_answer",
    "asr_confidence",
    "nlu_confidence",
    "confidence_missing",
    "empty_text",
    "text_words",
    "is_negation",
    "has_next",
    "gap_to_next",
    "next_is_negation",
    "next_similarity",
    "next_barge_in",
    "max_similarity_in_window",
    "rephrase_follows",
    "turns_in_window",
    "has_prev",
    "gap_from_prev",
    "prev_similarity",
    "is_last",
    "abandoned",
    "reverted_manually",
    "position",
    "session_turns",
)
"""The numeric columns of :func:`defect_signals` that a defect model reads, in order."""


# --------------------------------------------------------------------------- text helpers


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower()) if text else []


def is_negation(text: str | None) -> bool:
    """True when ``text`` is (or starts like) a "no": a short utterance with a negation word or phrase."""
    if not text:
        return False
    lowered = text.lower().strip()
    words = _words(lowered)
    if not words or len(words) > 8:
        return False
    return bool(_NEGATION_RE.search(lowered))


def text_similarity(a: str | None, b: str | None) -> float:
    """Similarity of two utterances in [0, 1]: the mean of word-set Jaccard and character-trigram Dice."""
    if not a or not b:
        return 0.0
    wa, wb = set(_words(a)), set(_words(b))
    if not wa or not wb:
        return 0.0
    jaccard = len(wa & wb) / len(wa | wb)
    ta, tb = _trigrams(a), _trigrams(b)
    dice = 2 * len(ta & tb) / (len(ta) + len(tb)) if ta and tb else 0.0
    return 0.5 * (jaccard + dice)


def _trigrams(text: str) -> set[str]:
    t = " " + " ".join(_words(text)) + " "
    return {t[i : i + 3] for i in range(len(t) - 2)}


# --------------------------------------------------------------------------- sessions


def _to_frame(turns: pa.Table | pd.DataFrame) -> pd.DataFrame:
    if isinstance(turns, pa.Table):
        cols = [c for c in turns.column_names if c not in ("slots", "device_states")]
        return turns.select(cols).to_pandas()
    if isinstance(turns, pd.DataFrame):
        return turns.copy()
    raise SchemaError(f"turns: expected a pyarrow Table or a pandas DataFrame, got {type(turns).__name__}")


def sessionize(turns: pa.Table | pd.DataFrame, *, gap_seconds: float = DEFAULT_SESSION_GAP_SECONDS) -> pd.DataFrame:
    """Group turns into sessions: the same user on the same speaking device, split where more than
    ``gap_seconds`` pass between consecutive turns.

    Returns the turns sorted by user, device and time with two more columns, ``session`` (the id
    ``"s-<first turn_id>"``) and ``position`` (0, 1, ... within the session). Optional turn fields
    that are missing get neutral defaults. See the module docstring for how bad input is handled.
    """
    if not gap_seconds > 0:
        raise SchemaError(f"gap_seconds: expected a positive number of seconds, got {gap_seconds!r}")
    df = _to_frame(turns)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise SchemaError(
            f"turns: required column(s) {missing} missing; expected at least {list(REQUIRED_COLUMNS)}, "
            f"got {list(df.columns)}"
        )
    if len(df) == 0:
        raise NoDataError("turns: expected at least one turn, got none")
    for col, default in _OPTIONAL_DEFAULTS.items():
        if col not in df.columns:
            df[col] = default
    for col in ("turn_id", "user_id", "device_id"):
        bad = df[col].isna() | (df[col].astype(str).str.strip() == "")
        if bad.any():
            raise SchemaError(f"turns: column {col!r} is empty in {int(bad.sum())} row(s) (rows {_rows(bad)})")
    try:
        times = pd.to_datetime(df["time"], utc=True)
    except (ValueError, TypeError) as exc:
        raise SchemaError(f"turns: column 'time' holds values that are not times: {exc}") from None
    if times.isna().any():
        bad = times.isna()
        ids = df.loc[bad, "turn_id"].astype(str).head(5).tolist()
        raise SchemaError(
            f"turns: {int(bad.sum())} turn(s) have no time (e.g. {ids}); expected a UTC timestamp on every turn"
        )
    df["time"] = times
    before = len(df)
    df = df.drop_duplicates("turn_id", keep="first")
    dropped = before - len(df)
    df["asr_text"] = df["asr_text"].fillna("").astype(str)
    df["barge_in"] = df["barge_in"].fillna(False).astype(bool)
    df = df.sort_values(["user_id", "device_id", "time", "turn_id"], kind="stable").reset_index(drop=True)
    same_speaker = (df["user_id"].values[1:] == df["user_id"].values[:-1]) & (
        df["device_id"].values[1:] == df["device_id"].values[:-1]
    )
    gaps = np.diff(epoch_seconds(df["time"]))
    starts = np.ones(len(df), dtype=bool)
    starts[1:] = ~(same_speaker & (gaps <= gap_seconds))
    session_no = np.cumsum(starts) - 1
    first_ids = df["turn_id"].astype(str).values[starts]
    df["session"] = "s-" + pd.Series(first_ids[session_no], index=df.index)
    first_pos = np.flatnonzero(starts)[session_no]
    df["position"] = (np.arange(len(df)) - first_pos).astype(np.int64)
    df.attrs["duplicates_dropped"] = dropped
    df.attrs["gap_seconds"] = gap_seconds
    return df


def epoch_seconds(times: pd.Series) -> np.ndarray:
    """Seconds since the epoch of a column of UTC times, as floats."""
    naive = pd.to_datetime(times, utc=True).dt.tz_convert(None)
    return naive.to_numpy().astype("datetime64[us]").astype(np.int64) / 1e6


def _rows(mask: pd.Series) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask.values)[:5]]


# --------------------------------------------------------------------------- signals


def defect_signals(
    sessions: pd.DataFrame,
    *,
    rephrase_window_seconds: float = DEFAULT_REPHRASE_WINDOW_SECONDS,
    rephrase_similarity: float = 0.5,
    device_events: pd.DataFrame | pa.Table | None = None,
    revert_window_seconds: float = DEFAULT_REVERT_WINDOW_SECONDS,
) -> pd.DataFrame:
    """One row per turn of ``sessions`` (as :func:`sessionize` returns them): the implicit signals that it
    went wrong and the context a model needs to weigh them.

    Columns: ``turn_id``, ``session``, ``time``, ``text`` and the numeric :data:`SIGNAL_FEATURES`:
    the turn's own signals (barge-in, explicit feedback, response type, recognition and NLU
    confidences), what comes next in the session (gap to the next turn, whether it is a "no", its text
    similarity, the highest similarity of any turn within ``rephrase_window_seconds`` and whether that
    reaches ``rephrase_similarity``, i.e. a rephrase follows), what came before (a turn that itself
    repeats the previous one), and whether the user gave up (the session ends after a turn the
    assistant did not carry out). Times are seconds; a missing next or previous turn gives a gap of
    ``rephrase_window_seconds * 4``.

    With ``device_events`` (the lake table) and the turns' ``resolved_entities``, ``reverted_manually``
    says that a device the assistant acted on was switched by hand (``source == "manual"``) within
    ``revert_window_seconds`` after the turn: the user undid what the assistant did. Without them it is 0.
    """
    if not isinstance(sessions, pd.DataFrame) or "session" not in sessions.columns:
        raise SchemaError("sessions: expected the DataFrame that sessionize() returns (with a 'session' column)")
    if len(sessions) == 0:
        raise NoDataError("sessions: expected at least one turn, got none")
    df = sessions
    n = len(df)
    far = float(rephrase_window_seconds) * 4
    texts = df["asr_text"].fillna("").astype(str).tolist()
    session = df["session"].values
    secs = epoch_seconds(df["time"])
    same_next = np.zeros(n, dtype=bool)
    same_next[:-1] = session[1:] == session[:-1]
    same_prev = np.zeros(n, dtype=bool)
    same_prev[1:] = same_next[:-1]
    gap_next = np.full(n, far)
    gap_next[:-1] = np.where(same_next[:-1], np.minimum(secs[1:] - secs[:-1], far), far)
    gap_prev = np.full(n, far)
    gap_prev[1:] = np.where(same_prev[1:], np.minimum(secs[1:] - secs[:-1], far), far)

    negation = np.array([is_negation(t) for t in texts])
    next_sim = np.zeros(n)
    prev_sim = np.zeros(n)
    max_sim = np.zeros(n)
    in_window = np.zeros(n)
    for i in np.flatnonzero(same_next):
        next_sim[i] = text_similarity(texts[i], texts[i + 1])
        prev_sim[i + 1] = next_sim[i]
        j = i + 1
        best = 0.0
        while j < n and session[j] == session[i] and secs[j] - secs[i] <= rephrase_window_seconds:
            in_window[i] += 1
            if not negation[j]:
                best = max(best, next_sim[i] if j == i + 1 else text_similarity(texts[i], texts[j]))
            j += 1
        max_sim[i] = best

    response = df["response_type"].fillna("").astype(str).values
    feedback = df["feedback"].fillna("").astype(str).values
    barge = df["barge_in"].fillna(False).astype(bool).values
    asr_conf = pd.to_numeric(df["asr_confidence"], errors="coerce").values.astype(float)
    nlu_conf = pd.to_numeric(df["nlu_confidence"], errors="coerce").values.astype(float)
    conf_missing = np.isnan(asr_conf) | np.isnan(nlu_conf)
    next_neg = np.zeros(n, dtype=bool)
    next_neg[:-1] = same_next[:-1] & negation[1:]
    next_barge = np.zeros(n, dtype=bool)
    next_barge[:-1] = same_next[:-1] & barge[1:]
    not_done = np.isin(response, ("error", "clarification", "none"))
    is_last = ~same_next
    session_turns = df.groupby("session", sort=False)["session"].transform("size").values

    out = pd.DataFrame(
        {
            "turn_id": df["turn_id"].astype(str).values,
            "session": session,
            "time": df["time"].array,
            "text": texts,
            "barge_in": barge.astype(float),
            "feedback_negative": (feedback == "negative").astype(float),
            "feedback_positive": (feedback == "positive").astype(float),
            "response_error": (response == "error").astype(float),
            "response_clarification": (response == "clarification").astype(float),
            "response_none": (response == "none").astype(float),
            "response_action": (response == "action").astype(float),
            "response_answer": (response == "answer").astype(float),
            "asr_confidence": np.nan_to_num(asr_conf, nan=-1.0),
            "nlu_confidence": np.nan_to_num(nlu_conf, nan=-1.0),
            "confidence_missing": conf_missing.astype(float),
            "empty_text": np.array([not t.strip() for t in texts], dtype=float),
            "text_words": np.array([len(_words(t)) for t in texts], dtype=float),
            "is_negation": negation.astype(float),
            "has_next": same_next.astype(float),
            "gap_to_next": gap_next,
            "next_is_negation": next_neg.astype(float),
            "next_similarity": next_sim,
            "next_barge_in": next_barge.astype(float),
            "max_similarity_in_window": max_sim,
            "rephrase_follows": (max_sim >= rephrase_similarity).astype(float),
            "turns_in_window": in_window,
            "has_prev": same_prev.astype(float),
            "gap_from_prev": gap_prev,
            "prev_similarity": prev_sim,
            "is_last": is_last.astype(float),
            "abandoned": (is_last & (not_done | barge)).astype(float),
            "reverted_manually": _reverted_manually(df, device_events, revert_window_seconds),
            "position": df["position"].values.astype(float),
            "session_turns": session_turns.astype(float),
        }
    )
    out.attrs.update(sessions.attrs)
    out.attrs["rephrase_window_seconds"] = rephrase_window_seconds
    return out


def _reverted_manually(df: pd.DataFrame, device_events, window: float) -> np.ndarray:
    """1.0 where a device the turn acted on changed by hand within ``window`` seconds after it."""
    out = np.zeros(len(df))
    if device_events is None or "resolved_entities" not in df.columns:
        return out
    events = device_events.to_pandas() if isinstance(device_events, pa.Table) else device_events
    if len(events) == 0 or not {"device_id", "time", "source"} <= set(events.columns):
        return out
    manual = events.loc[events["source"] == "manual", ["device_id", "time"]]
    if len(manual) == 0:
        return out
    acted = df["response_type"].fillna("").astype(str).to_numpy() == "action"
    rows, devices, times = [], [], []
    secs = epoch_seconds(df["time"])
    for i in np.flatnonzero(acted):
        entities = df["resolved_entities"].iat[i]
        if entities is None or (hasattr(entities, "__len__") and len(entities) == 0):
            continue
        for e in entities:
            entity = e.get("entity_id") if isinstance(e, dict) else None
            if entity:
                rows.append(i)
                devices.append(entity)
                times.append(secs[i])
    if not rows:
        return out
    by_device: dict[str, np.ndarray] = {
        d: np.sort(epoch_seconds(g["time"])) for d, g in manual.groupby("device_id", sort=False)
    }
    for i, d, t in zip(rows, devices, times, strict=True):
        ts = by_device.get(d)
        if ts is None:
            continue
        k = np.searchsorted(ts, t, side="right")
        if k < len(ts) and ts[k] - t <= window:
            out[i] = 1.0
    return out


def rule_defects(signals: pd.DataFrame, *, rules: Sequence[str] | None = None) -> np.ndarray:
    """The rules-only defect reading: a turn is a defect when any rule fires.

    Default rules: a barge-in, negative feedback, an error response, a "no" next, a rephrase within the
    window, abandonment, or a device the assistant switched being switched back by hand. ``rules`` picks a subset of those column names.
    """
    names = tuple(rules) if rules is not None else RULES
    unknown = [r for r in names if r not in signals.columns]
    if unknown:
        raise SchemaError(f"rules {unknown}: expected columns of defect_signals(), got {list(signals.columns)}")
    fired = np.zeros(len(signals), dtype=bool)
    for name in names:
        fired |= signals[name].to_numpy(dtype=float) > 0
    return fired


RULES = (
    "barge_in",
    "feedback_negative",
    "response_error",
    "next_is_negation",
    "rephrase_follows",
    "abandoned",
    "reverted_manually",
)
