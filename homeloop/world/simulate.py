"""Run the world: residents' days, their conversations with the assistant, and the logs.

:func:`simulate` builds the homes, lives their days (:mod:`~homeloop.world.routines`),
and plays every resident goal against the assistant in rounds: all first
attempts, then all second attempts, and so on. Each round recognises speech
(:mod:`~homeloop.world.asr`), sends the text through an optional *rewriter*,
interprets it with the real NLU model (batched, cached per distinct text), and
resolves and answers it (:mod:`~homeloop.world.assistant`). Residents react
(barge in, say "no", rephrase with other words or the same ones, give up), which
decides the next round.

Every random choice is keyed by goal and attempt, so calling :func:`simulate`
again with the same config and a rewriter or a new NLU model *replays* the same
residents, days and noise: goal for goal, the outcomes can be compared.
"""

from __future__ import annotations

import bisect
import datetime as dt
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from homeloop.datasets import load_hwu64, slurp_wer_distribution
from homeloop.world.asr import Recognizer
from homeloop.world.assistant import Outcome, Request, failure_point, respond
from homeloop.world.catalog import SYSTEMATIC_CONFUSIONS
from homeloop.world.config import WorldConfig
from homeloop.world.homes import SimHome, build_homes
from homeloop.world.language import DeviceTemplate, Phrasebook, phrasebook
from homeloop.world.rng import stream
from homeloop.world.routines import Goal, HomeTimeline, simulate_routines

__all__ = ["Rewriter", "SimulationResult", "simulate"]

Rewriter = Callable[[list[str]], list[str | None]]
"""Takes recognised texts, returns for each a rewrite or None (no rewrite)."""

_UTC = dt.UTC
_KIND_CODE = {"request": "q", "rephrase": "r", "reaction": "x", "false_wake": "w"}


@dataclass
class _Conversation:
    goal: Goal
    request: Request
    text: str  # what the resident says in the current attempt
    time: float  # local hours
    attempt: int = 0
    kind: str = "request"  # request / rephrase / reaction / false_wake
    done: bool = False
    succeeded: bool = False


@dataclass
class SimulationResult:
    """The simulated logs and ground truth, as lake tables, plus figures about the run."""

    config: WorldConfig
    tables: dict[str, pa.Table]
    figures: dict[str, Any] = field(default_factory=dict)

    def goal_outcomes(self) -> dict[str, bool]:
        """For each goal: did its last attempt succeed? (What a replay compares.)"""
        truth = self.tables["truth_turns"]
        out: dict[str, bool] = {}
        for gid, kind, ok in zip(
            truth["goal_id"].to_pylist(), truth["kind"].to_pylist(), truth["success"].to_pylist(), strict=True
        ):
            if kind in ("request", "rephrase", "false_wake"):
                out[gid] = ok
        return out

    def write(self, lake, dataset: str = "sim") -> dict[str, Any]:
        """Write every table into ``lake`` under ``dataset`` (idempotent)."""
        return {name: lake.write(dataset, name, tbl).as_dict() for name, tbl in self.tables.items()}


class _Clock:
    """Local hours since the first midnight -> UTC and local wall-clock datetimes for one home.

    Local times go through the home's time zone, so days with a daylight-saving change are right.
    """

    def __init__(self, home: SimHome, start: dt.date, days: int) -> None:
        self.zone = home.zone
        self.start = dt.datetime.combine(start, dt.time())

    def utc(self, hours: float) -> dt.datetime:
        return self.local(hours).replace(tzinfo=self.zone).astimezone(_UTC)

    def local(self, hours: float) -> dt.datetime:
        return self.start + dt.timedelta(hours=hours)


def _first_utterance(goal: Goal, book: Phrasebook, rnd) -> tuple[str, Request]:
    if goal.kind == "false_wake":
        return rnd.choice(book.tv_speech), Request("false_wake", None)
    if goal.kind == "device":
        req = Request("device", goal.intent, goal.device, goal.action)
        return _device_phrase(goal, book, rnd, explicit=False), req
    intent = rnd.choices(book.info_intents, weights=book.info_weights)[0]
    utt = rnd.choice(book.info[intent])
    speaker = goal.home.speakers[goal.speaker_index]
    wants_video = speaker.has_screen and rnd.random() < 0.35
    ambiguous = intent == "play_music" and bool(utt.slots) and rnd.random() < 0.12
    return utt.text, Request("info", intent, wants_video=wants_video, ambiguous_item=ambiguous)


def _device_phrase(goal: Goal, book: Phrasebook, rnd, *, explicit: bool) -> str:
    dev = goal.device
    if goal.action == "on" and goal.intent in book.unnamed and book.unnamed[goal.intent] and rnd.random() < 0.4:
        return rnd.choice(book.unnamed[goal.intent])
    # a name that already says the room ("Kitchen Light") is not said with the room again
    says_room = bool(set(dev.room.lower().split()) & set(dev.spoken_name.lower().split()))
    pool: list[DeviceTemplate] = [
        t
        for t in book.device_templates[goal.action]
        if (dev.type == "light" or not t.light_only) and not (says_room and "{room}" in t.text)
    ]
    if explicit:
        pool = [t for t in pool if t.explicit] or pool
    return rnd.choice(pool).render(dev.spoken_name, dev.room)


def _next_phrase(conv: _Conversation, book: Phrasebook, rnd) -> str:
    """A rephrase: the same words again, or other (often more explicit) ones."""
    if rnd.random() < 0.35:
        return conv.text
    g = conv.goal
    if g.kind == "device":
        for _ in range(4):
            text = _device_phrase(g, book, rnd, explicit=rnd.random() < 0.6)
            if text != conv.text:
                return text
        return text
    options = [u.text for u in book.info[conv.request.true_intent] if u.text != conv.text]
    return rnd.choice(options) if options else conv.text


def simulate(
    config: WorldConfig,
    *,
    nlu,
    rewriter: Rewriter | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    cache_nlu: bool = True,
) -> SimulationResult:
    """Simulate ``config``'s world with ``nlu`` (anything with ``predict(texts)``) as the assistant's NLU.

    ``rewriter`` sits between the recogniser and the NLU (see :data:`Rewriter`).
    NLU results are cached per distinct text (``cache_nlu=False`` re-runs the NLU
    for every turn; the outcome is the same, only slower: the benchmark's baseline).
    """
    t0 = _time.perf_counter()
    book = phrasebook()
    homes = build_homes(config)
    vocabulary = {w for u in load_hwu64("train") for w in u.tokens}
    rnd_world = stream(config.seed, "world-confusions")
    recognizer = Recognizer(
        systematic=rnd_world.sample(SYSTEMATIC_CONFUSIONS, config.systematic_confusions),
        vocabulary=vocabulary,
        wer_samples=slurp_wer_distribution(),
        error_scale=config.asr_error_scale,
        systematic_probability=config.systematic_probability,
        personal_probability=config.personal_probability,
    )
    timelines: list[HomeTimeline] = []
    for i, home in enumerate(homes):
        timelines.append(simulate_routines(home, config))
        if progress:
            progress("routines", i + 1, len(homes))
    t_routines = _time.perf_counter() - t0

    convs: list[_Conversation] = []
    for tl in timelines:
        for g in tl.goals:
            rnd = stream(config.seed, "goal", g.goal_id)
            text, req = _first_utterance(g, book, rnd)
            convs.append(
                _Conversation(g, req, text, g.time, kind="false_wake" if g.kind == "false_wake" else "request")
            )

    cache: dict[str, tuple[str | None, float | None, tuple]] = {}

    def interpret(texts: Sequence[str]) -> None:
        if not cache_nlu:
            cache.clear()
            for start in range(0, len(texts), 4096):
                batch = list(texts[start : start + 4096])
                for text, pred in zip(batch, nlu.predict(batch), strict=True):
                    cache[text] = (pred.intent, float(pred.confidence), tuple(tuple(s) for s in pred.slots))
            return
        todo = sorted({t for t in texts if t not in cache})
        for start in range(0, len(todo), 4096):
            batch = todo[start : start + 4096]
            for text, pred in zip(batch, nlu.predict(batch), strict=True):
                cache[text] = (pred.intent, float(pred.confidence), tuple(tuple(s) for s in pred.slots))

    rows: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    acted: list[tuple[SimHome, Any, float, str]] = []  # wrong devices the assistant switched
    goal_success: dict[str, bool] = {}
    pending = convs
    round_no = 0
    while pending:
        round_no += 1
        heard = []
        for c in pending:
            rnd = stream(config.seed, "asr", c.goal.goal_id, c.attempt, c.kind)
            confusions = c.goal.resident.confusions if c.goal.resident else ()
            heard.append(recognizer.hear(c.text, rnd, confusions))
        rewrites: list[str | None] = rewriter([h.text for h in heard]) if rewriter else [None] * len(heard)
        nlu_texts = [r if r else h.text for h, r in zip(heard, rewrites, strict=True)]
        interpret(nlu_texts + [c.text for c in pending])
        next_pending: list[_Conversation] = []
        for c, h, rw, text in zip(pending, heard, rewrites, nlu_texts, strict=True):
            home = c.goal.home
            intent, conf, slots = cache[text]
            outcome = _respond(config, home, c, intent, conf, slots, text)
            oracle = [outcome.success]
            if not outcome.success and c.kind != "false_wake":
                t_int, t_conf, t_slots = cache[c.text]
                oracle.append(_respond(config, home, c, t_int, t_conf, t_slots, c.text).success)
                true_slots = (("device", c.request.target.spoken_name),) if c.request.target else ()
                oracle.append(_respond(config, home, c, c.request.true_intent, 1.0, true_slots, c.text).success)
                oracle.append(
                    _respond(config, home, c, c.request.true_intent, 1.0, true_slots, c.text, er_oracle=True).success
                )
                oracle.append(True)
            fp = failure_point(oracle, false_wake=c.kind == "false_wake")
            rnd = stream(config.seed, "react", c.goal.goal_id, c.attempt, c.kind)
            reaction = _react(config, c, outcome, rnd, book)
            rows.append(_turn_row(c, h, rw, outcome, reaction, home))
            truth.append(
                {
                    "turn_id": rows[-1]["turn_id"],
                    "time": rows[-1]["time"],
                    "true_text": c.text,
                    "true_intent": c.request.true_intent,
                    "true_slots": None,
                    "goal_id": c.goal.goal_id,
                    "failure_point": fp,
                    "success": outcome.success,
                    "asr_error": h.kind,
                    "target_device_id": c.request.target.device_id if c.request.target else None,
                    "kind": c.kind,
                    "attempt": c.attempt,
                }
            )
            if outcome.acted_on is not None and outcome.acted_on is not c.request.target:
                acted.append((home, outcome.acted_on, c.time, outcome.acted_state))
            if c.kind in ("request", "rephrase", "false_wake"):
                goal_success[c.goal.goal_id] = outcome.success
            next_pending.extend(reaction["next"])
        pending = next_pending
        if progress:
            progress("conversations", round_no, config.max_attempts * 2)
    t_conv = _time.perf_counter() - t0 - t_routines

    tables = _assemble(config, timelines, rows, truth, goal_success, acted)
    elapsed = _time.perf_counter() - t0
    n_turns = tables["turns"].num_rows
    figures = {
        "homes": len(homes),
        "days": config.days,
        "devices": sum(len(h.devices) for h in homes),
        "residents": sum(len(h.residents) for h in homes),
        "goals": len(convs),
        "turns": n_turns,
        "device_events": tables["device_events"].num_rows,
        "distinct_nlu_texts": len(cache),
        "seconds": round(elapsed, 2),
        "seconds_routines": round(t_routines, 2),
        "seconds_conversations": round(t_conv, 2),
        "turns_per_second": round(n_turns / elapsed, 1) if elapsed else None,
    }
    return SimulationResult(config, tables, figures)


def _respond(config, home, c: _Conversation, intent, conf, slots, text, *, er_oracle=False) -> Outcome:
    return respond(
        home,
        c.request,
        intent=intent,
        confidence=conf,
        slots=slots,
        text=text,
        reject_below=config.nlu_reject_below,
        er_oracle=er_oracle,
        uses_screen_context=config.assistant_uses_screen_context,
    )


def _react(config: WorldConfig, c: _Conversation, outcome: Outcome, rnd, book: Phrasebook) -> dict[str, Any]:
    """How the resident reacts: barge-in, explicit feedback, a "no", a rephrase, giving up."""
    out: dict[str, Any] = {"barge_in": False, "feedback": None, "next": []}
    if c.kind == "reaction":
        return out
    if c.kind == "false_wake":
        out["barge_in"] = rnd.random() < 0.6
        return out
    if outcome.success:
        if outcome.response_type == "answer" and rnd.random() < 0.08:
            out["feedback"] = "positive" if rnd.random() < 0.95 else "negative"
        return out
    wrong_action = outcome.response_type in ("action", "answer")
    out["barge_in"] = rnd.random() < (0.45 if wrong_action else 0.15)
    if outcome.response_type == "answer" and rnd.random() < 0.08:
        out["feedback"] = "negative" if rnd.random() < 0.9 else "positive"
    gap = rnd.uniform(1.0, 3.0) if out["barge_in"] else rnd.uniform(3.0, 6.0)
    t = c.time + gap / 3600
    if rnd.random() < 0.15 and book.reactions:
        say = rnd.choice(book.reactions)
        out["next"].append(_Conversation(c.goal, Request("reaction", say.intent), say.text, t, c.attempt, "reaction"))
        t += rnd.uniform(1.5, 4.0) / 3600
    keep_trying = c.attempt + 1 < config.max_attempts and rnd.random() < c.goal.resident.persistence * (0.85**c.attempt)
    if keep_trying:
        t += rnd.uniform(2.0, 12.0) / 3600
        out["next"].append(_Conversation(c.goal, c.request, _next_phrase(c, book, rnd), t, c.attempt + 1, "rephrase"))
    return out


def _turn_row(c: _Conversation, h, rewrite: str | None, o: Outcome, reaction: dict, home: SimHome) -> dict[str, Any]:
    speaker = home.speakers[c.goal.speaker_index]
    user = c.goal.resident.user_id if c.goal.resident else f"u-tv-{home.home_id}"
    return {
        "turn_id": f"{c.goal.goal_id}-{_KIND_CODE[c.kind]}{c.attempt}",
        "session_id": "",
        "user_id": user,
        "home_id": home.home_id,
        "device_id": speaker.device_id,
        "time": c.time,  # local hours for now; converted in _assemble
        "asr_text": h.text,
        "asr_confidence": h.confidence,
        "intent": o.intent,
        "slots": [{"name": n, "value": v} for n, v in o.slots],
        "nlu_confidence": o.confidence,
        "resolved_entities": [{"mention": m, "entity_id": e} for m, e in o.resolved],
        "response": o.response,
        "response_type": o.response_type,
        "barge_in": reaction["barge_in"],
        "feedback": reaction["feedback"],
        "device_states": None,
        "has_screen": speaker.has_screen,
        "local_time": None,
        "rewritten_from": h.text if rewrite else None,
    }


def _assemble(config, timelines, rows, truth, goal_success, acted) -> dict[str, pa.Table]:
    from homeloop.data.schema import table

    home_by_id = {tl.home.home_id: tl.home for tl in timelines}
    clocks = {hid: _Clock(h, config.start, config.days) for hid, h in home_by_id.items()}
    homes_rows, device_rows, truth_dev, events, presence, forgotten = [], [], [], [], [], []
    transitions: dict[str, tuple[list[float], list[str]]] = {}
    for tl in timelines:
        h, clock = tl.home, clocks[tl.home.home_id]
        homes_rows.append(
            {"home_id": h.home_id, "name": f"Home {h.index}", "timezone": h.timezone, "source": "simulator"}
        )
        rnd = stream(config.seed, "config-rooms", h.index)
        for d in h.devices:
            shown = rnd.random() < (0.85 if d.informative else 0.3)
            device_rows.append(
                {
                    "device_id": d.device_id,
                    "home_id": h.home_id,
                    "name": d.name,
                    "type": d.type,
                    "room": d.room if shown else None,
                    "groups": list(d.groups),
                }
            )
            truth_dev.append(
                {"device_id": d.device_id, "home_id": h.home_id, "archetype": d.archetype.name, "true_room": d.room}
            )
        for s in h.speakers:
            device_rows.append(
                {
                    "device_id": s.device_id,
                    "home_id": h.home_id,
                    "name": s.name,
                    "type": "speaker",
                    "room": s.room,
                    "groups": [],
                }
            )
        ev: list[tuple[float, str, str, str]] = []
        for iv in tl.intervals:
            d = iv.device
            for when, action, by in ((iv.start, "on", iv.on_by), (iv.end, "off", iv.off_by)):
                if when >= 24 * config.days:
                    continue
                gid = tl.voice_transitions.get((d.device_id, round(when * 3600)))
                source = (
                    "automation" if by == "automation" else ("voice" if gid and goal_success.get(gid) else "manual")
                )
                state = ("unlocked" if action == "on" else "locked") if d.type == "lock" else action
                ev.append((when, d.device_id, state, source))
        for home, dev, when, state in acted:
            if home is h:
                ev.append((when, dev.device_id, state, "voice"))
                undo = {"on": "off", "off": "on", "unlocked": "locked", "locked": "unlocked"}[state]
                ev.append((when + 45 / 3600, dev.device_id, undo, "manual"))
        ev.sort()
        for when, dev_id, state, source in ev:
            events.append(
                {
                    "device_id": dev_id,
                    "home_id": h.home_id,
                    "time": clock.utc(when),
                    "state": state,
                    "value": None,
                    "source": source,
                }
            )
            times, states = transitions.setdefault(dev_id, ([], []))
            times.append(when)
            states.append(state)
        for rid, s, e, state in tl.presence:
            presence.append(
                {"home_id": h.home_id, "resident_id": rid, "start": clock.utc(s), "end": clock.utc(e), "state": state}
            )
        for dev, when, reason in tl.forgotten:
            forgotten.append(
                {"home_id": h.home_id, "device_id": dev.device_id, "time": clock.utc(when), "reason": reason}
            )
    # context of each turn: every device's state at the time, local time; then sessions
    for row, tr in zip(rows, truth, strict=True):
        h, clock, t = home_by_id[row["home_id"]], clocks[row["home_id"]], row["time"]
        states = []
        for d in h.devices:
            times, sts = transitions.get(d.device_id, ((), ()))
            i = bisect.bisect_right(times, t) - 1
            default = "locked" if d.type == "lock" else "off"
            states.append({"entity_id": d.device_id, "state": sts[i] if i >= 0 else default})
        row["device_states"] = states
        row["local_time"] = clock.local(t)
        row["time"] = tr["time"] = clock.utc(t)
    _assign_sessions(rows)
    out = {
        "homes": homes_rows,
        "devices": device_rows,
        "device_events": events,
        "turns": rows,
        "truth_turns": truth,
        "truth_presence": presence,
        "truth_forgotten": forgotten,
        "truth_devices": truth_dev,
    }
    return {name: pa.Table.from_pylist(data, schema=table(name).arrow_schema) for name, data in out.items()}


def _assign_sessions(rows: list[dict[str, Any]], gap_seconds: float = 60.0) -> None:
    """Sessions: a user's turns on one speaking device, split where more than ``gap_seconds`` pass."""
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["user_id"], rows[i]["device_id"], rows[i]["time"]))
    prev = None
    session = ""
    for i in order:
        r = rows[i]
        key = (r["user_id"], r["device_id"])
        if prev is None or prev[0] != key or (r["time"] - prev[1]).total_seconds() > gap_seconds:
            session = f"s-{r['turn_id']}"
        r["session_id"] = session
        prev = (key, r["time"])
