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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from homeloop.datasets import load_hwu64, slurp_wer_distribution
from homeloop.errors import InvalidInputError
from homeloop.world.asr import Recognizer
from homeloop.world.assistant import Outcome, Request, failure_point, respond
from homeloop.world.catalog import SYSTEMATIC_CONFUSIONS
from homeloop.world.config import WorldConfig
from homeloop.world.homes import SimHome, build_homes
from homeloop.world.language import DeviceTemplate, Phrasebook, phrasebook
from homeloop.world.rng import stream
from homeloop.world.routines import Goal, HomeTimeline, simulate_routines

__all__ = ["Rewriter", "SimulationResult", "simulate", "simulate_to_lake"]

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


def _first_utterance(goal: Goal, book: Phrasebook, rnd, *, oven_on: bool, oven_rate: float) -> tuple[str, Request]:
    if goal.kind == "false_wake":
        return rnd.choice(book.tv_speech), Request("false_wake", None)
    if goal.kind == "device":
        req = Request("device", goal.intent, goal.device, goal.action)
        return _device_phrase(goal, book, rnd, explicit=False), req
    if oven_on and book.temperature_questions and rnd.random() < oven_rate:
        return rnd.choice(book.temperature_questions), Request("info", "weather_query", about_oven=True)
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
    if conv.request.about_oven:  # asked again without saying "oven": only context can tell
        options = [t for t in book.temperature_questions if t != conv.text]
    else:
        options = [u.text for u in book.info[conv.request.true_intent] if u.text != conv.text]
    return rnd.choice(options) if options else conv.text


def simulate(
    config: WorldConfig,
    *,
    nlu,
    rewriter: Rewriter | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    cache_nlu: bool = True,
    chunk_homes: int = 200,
) -> SimulationResult:
    """Simulate ``config``'s world with ``nlu`` (anything with ``parse(texts)``, as :meth:`homeloop.nlu.IntentSlotModel.parse`) as the assistant's NLU.

    ``rewriter`` sits between the recogniser and the NLU (see :data:`Rewriter`).
    NLU results are cached per distinct text (``cache_nlu=False`` re-runs the NLU
    for every turn; the outcome is the same, only slower: the benchmark's baseline).
    Homes are lived ``chunk_homes`` at a time; the result holds every table in
    memory (see :func:`simulate_to_lake` for big worlds).
    """
    run = _Run(config, nlu=nlu, rewriter=rewriter, cache_nlu=cache_nlu, progress=progress)
    parts: dict[str, list[pa.Table]] = {}
    for tables in run.chunks(chunk_homes):
        for name, tbl in tables.items():
            parts.setdefault(name, []).append(tbl)
    tables = {name: pa.concat_tables(tbls).combine_chunks() for name, tbls in parts.items()}
    return SimulationResult(config, tables, run.figures())


def simulate_to_lake(
    config: WorldConfig,
    lake,
    dataset: str,
    *,
    nlu,
    rewriter: Rewriter | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    cache_nlu: bool = True,
    chunk_homes: int = 200,
    workers: int = 1,
) -> dict[str, Any]:
    """Simulate ``config`` straight into ``lake`` as ``dataset``, replacing an older dataset of that name.

    Each chunk of homes is written as soon as it is lived, so memory stays that of
    one chunk however big the world. The tables go to a hidden staging dataset that
    takes ``dataset``'s place only when the whole world is written: a crash part-way
    leaves the older dataset as it was. ``workers`` > 1 lives chunks in that many
    forked processes (each with its own NLU cache; the world is the same, only the
    NLU's confidences may differ in the 7th digit with what shares a batch).
    Returns the run's figures.
    """
    if workers < 1:
        raise InvalidInputError(f"workers: expected at least 1, got {workers}")
    run = _Run(config, nlu=nlu, rewriter=rewriter, cache_nlu=cache_nlu, progress=progress)
    with lake.staging(dataset) as staging:
        if workers == 1:
            for tables in run.chunks(chunk_homes):
                for name, tbl in tables.items():
                    lake.write(staging, name, tbl)
        else:
            _in_processes(run, lake, staging, chunk_homes, workers)
    return run.figures()


_FORKED: tuple | None = None  # what forked workers inherit: (run, lake, staging dataset, chunk size)


def _in_processes(run: _Run, lake, staging: str, chunk_homes: int, workers: int) -> None:
    import multiprocessing

    global _FORKED
    if chunk_homes < 1:
        raise InvalidInputError(f"chunk_homes: expected at least 1, got {chunk_homes}")
    _FORKED = (run, lake, staging, chunk_homes)
    starts = range(0, len(run.homes), chunk_homes)
    try:
        with multiprocessing.get_context("fork").Pool(min(workers, len(starts))) as pool:
            for counts, seconds in pool.imap_unordered(_forked_chunk, starts):
                for k, v in counts.items():
                    run.counts[k] += v
                for k, v in seconds.items():
                    run.seconds[k] += v
                if run.progress:
                    run.progress("homes", run.counts["homes_done"], len(run.homes))
    finally:
        _FORKED = None


def _forked_chunk(lo: int) -> tuple[dict[str, int], dict[str, float]]:
    import torch

    assert _FORKED is not None
    run, lake, staging, chunk_homes = _FORKED
    torch.set_num_threads(1)
    run.progress = None
    before_counts, before_seconds = dict(run.counts), dict(run.seconds)
    for name, tbl in run._chunk(run.homes[lo : lo + chunk_homes]).items():
        lake.write(staging, name, tbl)
    counts = {k: v - before_counts[k] for k, v in run.counts.items()}
    return counts, {k: v - before_seconds[k] for k, v in run.seconds.items()}


class _Run:
    """One simulation: the shared world (recogniser, phrasebook, NLU cache) and its homes, chunk by chunk."""

    def __init__(self, config: WorldConfig, *, nlu, rewriter: Rewriter | None, cache_nlu: bool, progress) -> None:
        self.t0 = _time.perf_counter()
        self.config, self.nlu, self.rewriter, self.cache_nlu = config, nlu, rewriter, cache_nlu
        self.progress = progress
        self.book = phrasebook()
        self.homes = build_homes(config)
        vocabulary = {w for u in load_hwu64("train") for w in u.tokens}
        rnd_world = stream(config.seed, "world-confusions")
        self.recognizer = Recognizer(
            systematic=rnd_world.sample(SYSTEMATIC_CONFUSIONS, config.systematic_confusions),
            vocabulary=vocabulary,
            wer_samples=slurp_wer_distribution(),
            error_scale=config.asr_error_scale,
            systematic_probability=config.systematic_probability,
            personal_probability=config.personal_probability,
        )
        self.cache: dict[str, tuple[str | None, float | None, tuple]] = {}
        self.counts = {"goals": 0, "turns": 0, "device_events": 0, "homes_done": 0, "nlu_texts": 0}
        self.seconds = {"routines": 0.0, "conversations": 0.0, "assemble": 0.0}

    def chunks(self, chunk_homes: int) -> Iterator[dict[str, pa.Table]]:
        if chunk_homes < 1:
            raise InvalidInputError(f"chunk_homes: expected at least 1, got {chunk_homes}")
        for lo in range(0, len(self.homes), chunk_homes):
            yield self._chunk(self.homes[lo : lo + chunk_homes])

    def _interpret(self, texts: Sequence[str]) -> None:
        if self.cache_nlu:
            todo = sorted({t for t in texts if t not in self.cache})
        else:  # the baseline: every turn's text through the NLU again
            self.cache.clear()
            todo = list(texts)
        self.counts["nlu_texts"] += len(todo)
        for start in range(0, len(todo), 4096):
            batch = todo[start : start + 4096]
            for text, pred in zip(batch, self.nlu.parse(batch), strict=True):
                self.cache[text] = (pred.intent, float(pred.confidence), tuple(tuple(s) for s in pred.slots))

    def _chunk(self, homes: list[SimHome]) -> dict[str, pa.Table]:
        config, book, cache = self.config, self.book, self.cache
        t0 = _time.perf_counter()
        timelines = [simulate_routines(home, config) for home in homes]
        t1 = _time.perf_counter()
        self.seconds["routines"] += t1 - t0

        convs: list[_Conversation] = []
        for tl in timelines:
            ovens = _on_spans(tl, "oven")
            for g in tl.goals:
                rnd = stream(config.seed, "goal", g.goal_id)
                oven_on = g.kind == "info" and _covers(ovens, g.time)
                text, req = _first_utterance(g, book, rnd, oven_on=oven_on, oven_rate=config.oven_question_probability)
                kind = "false_wake" if g.kind == "false_wake" else "request"
                convs.append(_Conversation(g, req, text, g.time, kind=kind))
        self.counts["goals"] += len(convs)

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
                heard.append(self.recognizer.hear(c.text, rnd, confusions))
            recognised = [h.text for h in heard]
            rewrites = self.rewriter(recognised) if self.rewriter else [None] * len(heard)
            if len(rewrites) != len(recognised):
                raise InvalidInputError(
                    f"rewriter: expected one rewrite or None per text ({len(recognised)}), got {len(rewrites)}"
                )
            nlu_texts = [r if r else h for h, r in zip(recognised, rewrites, strict=True)]
            self._interpret(nlu_texts + [c.text for c in pending])
            next_pending: list[_Conversation] = []
            for c, h, rw, text in zip(pending, heard, rewrites, nlu_texts, strict=True):
                home = c.goal.home
                intent, conf, slots = cache[text]
                outcome = self._respond(home, c, intent, conf, slots, text)
                oracle = [outcome.success]
                if not outcome.success and c.kind != "false_wake":
                    t_int, t_conf, t_slots = cache[c.text]
                    oracle.append(self._respond(home, c, t_int, t_conf, t_slots, c.text).success)
                    true_slots = (("device", c.request.target.spoken_name),) if c.request.target else ()
                    oracle.append(self._respond(home, c, c.request.true_intent, 1.0, true_slots, c.text).success)
                    oracle.append(
                        self._respond(home, c, c.request.true_intent, 1.0, true_slots, c.text, er_oracle=True).success
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
        t2 = _time.perf_counter()
        self.seconds["conversations"] += t2 - t1
        tables = _assemble(config, timelines, rows, truth, goal_success, acted)
        self.seconds["assemble"] += _time.perf_counter() - t2
        self.counts["turns"] += tables["turns"].num_rows
        self.counts["device_events"] += tables["device_events"].num_rows
        self.counts["homes_done"] += len(homes)
        if self.progress:
            self.progress("homes", self.counts["homes_done"], len(self.homes))
        return tables

    def _respond(self, home, c: _Conversation, intent, conf, slots, text, *, er_oracle=False) -> Outcome:
        config = self.config
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
            uses_device_context=config.assistant_uses_device_context,
        )

    def figures(self) -> dict[str, Any]:
        elapsed = _time.perf_counter() - self.t0
        turns = self.counts["turns"]
        return {
            "homes": len(self.homes),
            "days": self.config.days,
            "devices": sum(len(h.devices) for h in self.homes),
            "residents": sum(len(h.residents) for h in self.homes),
            "goals": self.counts["goals"],
            "turns": turns,
            "device_events": self.counts["device_events"],
            "nlu_texts_read": self.counts["nlu_texts"],
            "seconds": round(elapsed, 2),
            **{f"seconds_{k}": round(v, 2) for k, v in self.seconds.items()},
            "turns_per_second": round(turns / elapsed, 1) if elapsed else None,
        }


def _on_spans(tl: HomeTimeline, archetype: str) -> tuple[list[float], list[float]]:
    """Sorted (starts, ends) of the on-intervals of the home's devices of one archetype."""
    spans = sorted((iv.start, iv.end) for iv in tl.intervals if iv.device.archetype.name == archetype)
    return [s for s, _ in spans], [e for _, e in spans]


def _covers(spans: tuple[list[float], list[float]], t: float) -> bool:
    i = bisect.bisect_right(spans[0], t) - 1
    return i >= 0 and spans[1][i] > t


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
        "asr_text": rewrite or h.text,  # what the NLU read: the rewrite when one fired
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
        # each device's own transitions, then the wrong ones the assistant made (undone by hand 45 s later)
        natural: dict[str, list[tuple[float, str, str]]] = {}
        for iv in tl.intervals:
            d = iv.device
            for when, action, by in ((iv.start, "on", iv.on_by), (iv.end, "off", iv.off_by)):
                if when >= 24 * config.days:
                    continue
                gid = tl.voice_transitions.get((d.device_id, round(when * 3600)))
                source = (
                    "automation" if by == "automation" else ("voice" if gid and goal_success.get(gid) else "manual")
                )
                natural.setdefault(d.device_id, []).append((when, _state_name(d, action), source))
        ev: list[tuple[float, str, str, str]] = [
            (when, dev_id, state, source) for dev_id, dev_ev in natural.items() for when, state, source in dev_ev
        ]
        for home, dev, when, state in acted:
            if home is not h:
                continue
            dev_ev = natural.get(dev.device_id, [])
            i = bisect.bisect_right(dev_ev, (when, "~")) - 1
            before = dev_ev[i][1] if i >= 0 else _state_name(dev, "off")
            if state == before:
                continue  # already so: nothing changes, nothing to undo
            ev.append((when, dev.device_id, state, "voice"))
            undo_at = when + 45 / 3600
            if i + 1 >= len(dev_ev) or dev_ev[i + 1][0] > undo_at:
                ev.append((undo_at, dev.device_id, before, "manual"))
        ev.sort()
        last: dict[str, str] = {}
        for when, dev_id, state, source in ev:
            if last.get(dev_id) == state:
                continue  # already in that state: no change to log
            last[dev_id] = state
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
            times, sts = transitions.setdefault(dev_id, ([], []))
            times.append(when)
            sts.append(state)
        for rid, s, e, state in tl.presence:
            presence.append(
                {"home_id": h.home_id, "resident_id": rid, "start": clock.utc(s), "end": clock.utc(e), "state": state}
            )
        for dev, when, reason in tl.forgotten:
            forgotten.append(
                {"home_id": h.home_id, "device_id": dev.device_id, "time": clock.utc(when), "reason": reason}
            )
    # context of each turn: every device's state at the time, local time; then sessions
    # (built as flat columns: a dict per device per turn would be most of the simulator's memory)
    offsets, entity_ids, states = [0], [], []
    for row, tr in zip(rows, truth, strict=True):
        h, clock, t = home_by_id[row["home_id"]], clocks[row["home_id"]], row["time"]
        for d in h.devices:
            times, sts = transitions.get(d.device_id, ((), ()))
            i = bisect.bisect_right(times, t) - 1
            entity_ids.append(d.device_id)
            states.append(sts[i] if i >= 0 else _state_name(d, "off"))
        offsets.append(len(entity_ids))
        row["local_time"] = clock.local(t)
        row["time"] = tr["time"] = clock.utc(t)
    _assign_sessions(rows)
    device_states = pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.StructArray.from_arrays(
            [pa.array(entity_ids, pa.string()), pa.array(states, pa.string())], names=["entity_id", "state"]
        ),
    )
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
    tables = {name: pa.Table.from_pylist(data, schema=table(name).arrow_schema) for name, data in out.items()}
    turns = tables["turns"]
    column = turns.schema.get_field_index("device_states")
    tables["turns"] = turns.set_column(
        column, turns.schema.field(column), device_states.cast(turns.schema.field(column).type)
    )
    return tables


def _state_name(device, action: str) -> str:
    return ("unlocked" if action == "on" else "locked") if device.type == "lock" else action


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
