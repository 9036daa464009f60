"""Hunches and automatic actions: a device whose state disagrees with what the home's state leads us to expect.

A *candidate* is a device that is on (a lock: unlocked) in a slot. For each one, the
state model (with the device's own recency hidden) says how likely the device is to be
on given the time and what the rest of the home is doing, and the home-state model
says how likely the residents are asleep or away. The **rule score** of a hunch is
``(1 - expected_on) * (P(asleep) + P(away))``: high for a light left on after
everyone went to bed, low for a porch light that is always on at night.

The **acceptance model** learns which hunches residents accept: a device encoder with
the state model's architecture (started from its weights, or from scratch, to
measure what the transfer brings) and a small head over the hunch's context. Labels
come from the simulated residents (:func:`simulate_acceptance`: a resident accepts a
hunch about a device they really forgot most of the time, and others rarely).

**Automatic actions** fire at the first slot of an on-period whose acceptance score
passes a threshold. Scored against the simulator's forgotten devices
(:func:`action_precision_recall`): an action is right when it fires on a forgotten
device at or after the moment it was forgotten; recall is the share of forgotten
devices acted on. :func:`threshold_for_precision` picks the operating point on
validation days: the lowest threshold whose validation precision reaches the target
(the most recall subject to the precision target), never one picked on the test days.
"""

from __future__ import annotations

import copy
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from torch import nn

from homeloop.errors import InvalidInputError, NotFittedError
from homeloop.home.device_model import DeviceStateModel
from homeloop.home.features import DeviceHistory, UsageAggregates, _local_minutes, usage_features, utc_microseconds
from homeloop.home.network import DeviceEncoder
from homeloop.home.presence import HomeStateModel, by_home, home_activity_features
from homeloop.home.queries import Queries
from homeloop.training import fit, make_loader, seed_everything

__all__ = [
    "ACTIONABLE_TYPES",
    "CONTEXT_FEATURE_NAMES",
    "HunchAcceptanceModel",
    "HunchCandidates",
    "action_precision_recall",
    "forgotten_labels",
    "hunch_candidates",
    "simulate_acceptance",
    "evaluate_hunches",
    "summarise_actions",
    "threshold_for_precision",
]

#: device types a hunch may be about (what can be switched off or locked)
ACTIONABLE_TYPES = ("light", "plug", "switch", "lock", "tv", "fan", "coffee_maker", "speaker", "appliance", "cover")
CONTEXT_FEATURE_NAMES = (
    "expected_on", "p_asleep", "p_away", "rule_score", "log_on_hours", "home_switches_1h", "since_home_switch",
    "time_sin", "time_cos",
)  # fmt: skip


@dataclass
class HunchCandidates:
    """Devices found on, one row per (device, slot): ``device`` indexes the history's device table."""

    device: np.ndarray
    slot: np.ndarray
    run: np.ndarray  # id of the on-period the slot belongs to (unique across homes)
    context: np.ndarray  # [n, len(CONTEXT_FEATURE_NAMES)]

    def __len__(self) -> int:
        return int(self.device.size)

    @property
    def rule_score(self) -> np.ndarray:
        return self.context[:, CONTEXT_FEATURE_NAMES.index("rule_score")]

    def select(self, mask: np.ndarray) -> HunchCandidates:
        return HunchCandidates(self.device[mask], self.slot[mask], self.run[mask], self.context[mask])

    def frame(self, history: DeviceHistory) -> pd.DataFrame:
        table = history.device_table()
        df = pd.DataFrame(
            {
                "device_id": table["device_id"].to_numpy()[self.device],
                "name": table["name"].to_numpy()[self.device],
                "home_id": table["home_id"].to_numpy()[self.device],
                "slot": self.slot,
                "run": self.run,
            }
        )
        for i, name in enumerate(CONTEXT_FEATURE_NAMES):
            df[name] = self.context[:, i]
        return df


def hunch_candidates(
    history: DeviceHistory,
    state_model: DeviceStateModel,
    home_state: HomeStateModel,
    *,
    slots: Mapping[str, tuple[int, int]],
    types: Sequence[str] = ACTIONABLE_TYPES,
    home_embeddings: np.ndarray | None = None,
    max_automated_share: float = 0.5,
) -> HunchCandidates:
    """Every slot in ``slots[home_id] = (first, end)`` where an actionable device with events is on.

    Devices that automations switch on most of the time (``automated_share`` above
    ``max_automated_share``, as a lamp plug that follows a lamp) are left out: a hunch about
    them would fight the automation, not help a resident.
    """
    table = history.device_table()
    presence = by_home(history, home_state.predict_proba(history, home_embeddings=home_embeddings))
    devs, sl, runs, ctx = [], [], [], []
    at = 0
    run_base = 0
    for h in history.homes:
        k = len(h.devices)
        lo, hi = slots.get(h.home_id, (0, 0))
        lo = max(lo, 1)
        ok = h.has_events & np.isin(table["type"].to_numpy()[at : at + k], list(types))
        if "automated_share" in h.devices.columns:
            ok &= h.devices["automated_share"].to_numpy(float) <= max_automated_share
        if hi > lo and ok.any():
            on = h.on[:, lo:hi].astype(bool) & ok[:, None]
            rows, cols = np.nonzero(on)
            s = cols + lo
            # on-periods: a new one starts where the previous slot was off
            start_of_run = h.on[rows, s - 1] == 0
            order = np.lexsort((s, rows))
            rows, s, start_of_run = rows[order], s[order], start_of_run[order]
            new = start_of_run.copy()
            if len(rows):
                new[0] = True
                new[1:] |= rows[1:] != rows[:-1]
                new[1:] |= s[1:] != s[:-1] + 1
            run = run_base + np.cumsum(new) - 1
            run_base = int(run[-1]) + 1 if len(run) else run_base
            # how long the device has been on (from the true start of the period, which may precede ``lo``)
            idx = np.arange(h.n_slots)
            last_off = np.maximum.accumulate(np.where(h.on == 0, idx, -1), axis=1)
            on_hours = (s - last_off[rows, s]) * h.slot_minutes / 60
            act = home_activity_features(h)
            p = presence[h.home_id][s]
            q = Queries(at + rows, s, np.ones_like(s))
            expected = state_model.predict_proba(history, q, hide_recency=True)[:, 1] if len(s) else np.zeros(0)
            rule = (1 - expected) * (p[:, 2] + p[:, 1])
            ctx.append(
                np.stack(
                    [
                        expected,
                        p[:, 2],
                        p[:, 1],
                        rule,
                        np.log1p(on_hours),
                        act[s - 1, 0],
                        act[s - 1, 3],
                        act[s, 8],
                        act[s, 9],
                    ],
                    axis=1,
                ).astype(np.float32)
            )
            devs.append(at + rows)
            sl.append(s)
            runs.append(run)
        at += k
    if not devs:
        z = np.zeros(0, np.int64)
        return HunchCandidates(z, z, z, np.zeros((0, len(CONTEXT_FEATURE_NAMES)), np.float32))
    return HunchCandidates(np.concatenate(devs), np.concatenate(sl), np.concatenate(runs), np.concatenate(ctx))


def forgotten_labels(history: DeviceHistory, candidates: HunchCandidates, forgotten: pd.DataFrame) -> np.ndarray:
    """1 where the candidate's device was forgotten (``truth_forgotten``) at or before the slot, in the same
    on-period (which may have begun before the candidates' first slot); else 0."""
    table = history.device_table()
    index = {d: i for i, d in enumerate(table["device_id"])}
    homes = {h.home_id: h for h in history.homes}
    forgot_slot: dict[int, list[int]] = {}
    if len(forgotten):
        us = utc_microseconds(forgotten["time"])
        for dev_id, t in zip(forgotten["device_id"], us, strict=True):
            if dev_id not in index:
                continue
            g = index[dev_id]
            h = homes[table["home_id"].iloc[g]]
            origin = pd.Timestamp(h.start).to_pydatetime()
            m = _local_minutes(np.array([t]), zoneinfo.ZoneInfo(h.timezone), origin)[0]
            forgot_slot.setdefault(g, []).append(int(m // h.slot_minutes))
    labels = np.zeros(len(candidates), np.int8)
    if not forgot_slot:
        return labels
    # where each on-period really began: candidates cover a window of slots, and a period that runs into the
    # window from before it (a light left on overnight into the first held-out day) began earlier
    run_first: dict[int, int] = {}
    run_device: dict[int, int] = {}
    for r, s, g in zip(candidates.run.tolist(), candidates.slot.tolist(), candidates.device.tolist(), strict=True):
        run_first[r] = min(s, run_first.get(r, s))
        run_device[r] = g
    rows = table["row"].to_numpy()
    for r, s in run_first.items():
        g = run_device[r]
        off = np.flatnonzero(homes[table["home_id"].iloc[g]].on[rows[g], :s] == 0)
        run_first[r] = int(off[-1]) + 1 if off.size else 0
    for i, (g, s, r) in enumerate(
        zip(candidates.device.tolist(), candidates.slot.tolist(), candidates.run.tolist(), strict=True)
    ):
        for f in forgot_slot.get(g, ()):
            if run_first[r] - 1 <= f <= s:
                labels[i] = 1
                break
    return labels


def simulate_acceptance(
    labels: np.ndarray, *, seed: int = 0, accept_forgotten: float = 0.9, accept_other: float = 0.05
) -> np.ndarray:
    """What simulated residents answer to each hunch: accept one about a device they really forgot with
    probability ``accept_forgotten``, any other with ``accept_other``."""
    rng = np.random.default_rng(seed)
    p = np.where(np.asarray(labels) > 0, accept_forgotten, accept_other)
    return (rng.random(len(p)) < p).astype(np.int8)


# --------------------------------------------------------------------------- acceptance model


class _AcceptanceNetwork(nn.Module):
    def __init__(self, encoder: DeviceEncoder, embedding_dim: int, context_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(nn.Linear(embedding_dim + context_dim, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        emb = self.encoder(batch["usage"], batch["name"], batch["room"], batch["type"])
        return self.head(torch.cat([emb, batch["context"]], dim=1)).squeeze(1)


class HunchAcceptanceModel(BaseEstimator):
    """P(a resident accepts the hunch) from the device's embedding and the hunch's context.

    ``transfer=True`` starts the device encoder from the fitted state model's encoder
    (and trains it with a smaller learning rate); ``transfer=False`` trains the same
    architecture from random weights.
    """

    def __init__(
        self,
        *,
        transfer: bool = True,
        epochs: int = 8,
        batch_size: int = 256,
        lr: float = 2e-3,
        encoder_lr_scale: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.transfer = transfer
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.encoder_lr_scale = encoder_lr_scale
        self.seed = seed

    def _inputs(self, history: DeviceHistory, state_model: DeviceStateModel, candidates: HunchCandidates):
        dev_inputs = state_model._device_inputs(history)
        agg = UsageAggregates.of(history, state_model.train_days_)
        usage = usage_features(agg, np.arange(history.n_devices))
        return {"usage": usage, "name": dev_inputs["name"], "room": dev_inputs["room"], "type": dev_inputs["type"]}

    def _batch(self, inputs, candidates: HunchCandidates, idx: np.ndarray, targets=None) -> dict[str, torch.Tensor]:
        d = candidates.device[idx]
        out = {k: torch.from_numpy(np.asarray(v[d])) for k, v in inputs.items()}
        out["context"] = torch.from_numpy(candidates.context[idx])
        if targets is not None:
            out["target"] = torch.from_numpy(targets[idx].astype(np.float32))
        return out

    def fit(
        self, history: DeviceHistory, state_model: DeviceStateModel, candidates: HunchCandidates, accepted: np.ndarray
    ) -> HunchAcceptanceModel:
        if len(candidates) != len(accepted):
            raise InvalidInputError(
                f"accepted: expected one answer per candidate ({len(candidates)}), got {len(accepted)}"
            )
        seed_everything(self.seed)
        state_model._check()
        encoder = copy.deepcopy(state_model.network_.encoder)
        if not self.transfer:
            for m in encoder.modules():
                if hasattr(m, "reset_parameters") and m is not encoder:
                    m.reset_parameters()
        self.network_ = _AcceptanceNetwork(encoder, state_model.embedding_dim, candidates.context.shape[1])
        inputs = self._inputs(history, state_model, candidates)
        accepted = np.asarray(accepted)
        idx_all = np.arange(len(candidates))
        loader = make_loader(
            torch.utils.data.TensorDataset(torch.from_numpy(idx_all)), batch_size=self.batch_size, seed=self.seed,
            collate_fn=lambda items: self._batch(inputs, candidates, np.array([int(i[0]) for i in items]), accepted),
        )  # fmt: skip
        scale = self.encoder_lr_scale if self.transfer else 1.0
        optimizer = torch.optim.AdamW(
            [{"params": self.network_.encoder.parameters(), "lr": self.lr * scale},
             {"params": self.network_.head.parameters(), "lr": self.lr}], weight_decay=1e-4,
        )  # fmt: skip
        self.history_ = fit(
            self.network_, loader, optimizer=optimizer, epochs=self.epochs, seed=self.seed,
            loss_fn=lambda m, b: F.binary_cross_entropy_with_logits(m(b), b["target"]),
        )  # fmt: skip
        self.state_model_ = state_model
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, history: DeviceHistory, candidates: HunchCandidates) -> np.ndarray:
        """``[n, 2]``: probability that a resident rejects, and accepts, each hunch."""
        if not hasattr(self, "network_"):
            raise NotFittedError("HunchAcceptanceModel: call fit before predict_proba")
        inputs = self._inputs(history, self.state_model_, candidates)
        self.network_.eval()
        out = []
        with torch.no_grad():
            for a in range(0, len(candidates), 8192):
                idx = np.arange(a, min(a + 8192, len(candidates)))
                out.append(torch.sigmoid(self.network_(self._batch(inputs, candidates, idx))))
        accept = torch.cat(out).numpy() if out else np.zeros(0, np.float32)
        return np.stack([1 - accept, accept], axis=1)

    def predict(self, history: DeviceHistory, candidates: HunchCandidates) -> np.ndarray:
        """1 where a resident more likely accepts the hunch than not, else 0."""
        proba = self.predict_proba(history, candidates)
        return self.classes_[proba.argmax(axis=1)]


# --------------------------------------------------------------------------- automatic actions


def _run_maxima(candidates: HunchCandidates, labels: np.ndarray, scores: np.ndarray):
    """Per on-period: best score before it was forgotten, best score after, and whether it was forgotten."""
    df = pd.DataFrame({"run": candidates.run, "label": labels, "score": scores})
    before = df[df.label == 0].groupby("run")["score"].max()
    after = df[df.label == 1].groupby("run")["score"].max()
    runs = np.unique(candidates.run)
    a = before.reindex(runs).fillna(-np.inf).to_numpy()
    b = after.reindex(runs).fillna(-np.inf).to_numpy()
    forgotten = np.isfinite(b)
    return a, b, forgotten


def action_precision_recall(
    candidates: HunchCandidates, labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray | None = None
) -> pd.DataFrame:
    """Precision and recall of automatic actions at each threshold (one action per on-period, at its first slot
    scoring at least the threshold; right when the device had been forgotten by then)."""
    a, b, forgotten = _run_maxima(candidates, labels, scores)
    if thresholds is None:
        thresholds = np.unique(
            np.concatenate([[0.0], np.quantile(scores, np.linspace(0, 1, 201)) if len(scores) else [], [1.0]])
        )
    rows = []
    n_forgotten = int(forgotten.sum())
    for t in thresholds:
        fires = np.maximum(a, b) >= t
        right = (a < t) & (b >= t)
        n_fire = int(fires.sum())
        rows.append({
            "threshold": float(t), "actions": n_fire, "right": int(right.sum()),
            "precision": right.sum() / n_fire if n_fire else float("nan"),
            "recall": right.sum() / n_forgotten if n_forgotten else float("nan"),
        })  # fmt: skip
    return pd.DataFrame(rows)


def threshold_for_precision(
    curve: pd.DataFrame, *, precision: float = 0.95, min_actions: int = 10, confidence: float | None = None
) -> float:
    """The operating point for automatic actions, chosen on validation days: the lowest threshold (so the most
    recall) whose actions reach ``precision`` with at least ``min_actions`` actions; 1.0 (never act) when none does.

    This is "maximise recall subject to precision >= target", read off the validation curve. Precision is
    not monotone in the threshold, so a higher threshold than the one chosen may fall below the target on
    validation (a few actions more or less swing it); requiring ``min_actions`` keeps a handful of lucky
    actions from setting the operating point. With ``confidence`` (e.g. 0.9), the one-sided Wilson lower
    bound of the precision at that confidence must reach the target instead of the point estimate: a
    stricter rule that needs many more validation actions before it acts.
    """
    ok = curve[curve["actions"] >= max(1, min_actions)].sort_values("threshold")
    if ok.empty:
        return 1.0
    value = ok["precision"].to_numpy(float)
    if confidence is not None:
        value = _wilson_lower(ok["right"].to_numpy(float), ok["actions"].to_numpy(float), confidence)
    good = ok["threshold"].to_numpy(float)[value >= precision]
    return float(good.min()) if good.size else 1.0


def _wilson_lower(right: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided Wilson score lower bound of a binomial proportion ``right / n``."""
    from scipy.stats import norm

    if not 0 < confidence < 1:
        raise InvalidInputError(f"confidence: expected a number strictly between 0 and 1, got {confidence}")
    z = float(norm.ppf(confidence))
    p = right / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def summarise_actions(curve: pd.DataFrame, threshold: float) -> dict[str, Any]:
    row = curve.iloc[(curve["threshold"] - threshold).abs().argmin()]
    return {
        "threshold": float(threshold),
        "precision": float(row["precision"]),
        "recall": float(row["recall"]),
        "actions": int(row["actions"]),
    }


def evaluate_hunches(
    history: DeviceHistory,
    state_model: DeviceStateModel,
    presence_labels: Mapping[str, np.ndarray],
    forgotten: pd.DataFrame,
    *,
    train_days: Mapping[str, int] | None = None,
    validation_fraction: float = 0.3,
    label_budget: int | None = 4000,
    raised_above: float = 0.2,
    target_precision: float = 0.95,
    home_embeddings: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Hunches on held-out days against the forgotten-device truth.

    The home-state model is trained on the training days; acceptance models (transfer and
    scratch) on hunches of the first part of the training days that were raised (rule score at least
    ``raised_above``: only those are shown to residents) and answered by simulated residents (at
    most ``label_budget`` answers); the operating threshold is chosen on the
    last ``validation_fraction`` of the training days; everything is scored on the later days.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    days = dict(train_days or state_model.train_days_)
    home_state = HomeStateModel(features="activity+home" if home_embeddings is not None else "activity", seed=seed).fit(
        history, presence_labels, days, home_embeddings=home_embeddings
    )
    spd = {h.home_id: h.slots_per_day for h in history.homes}
    fit_end = {h: max(1, round(d * (1 - validation_fraction))) * spd[h] for h, d in days.items()}
    parts = {
        "fit": {h: (0, fit_end[h]) for h in days},
        "validation": {h: (fit_end[h], days[h] * spd[h]) for h in days},
        "test": {h.home_id: (days[h.home_id] * spd[h.home_id], h.n_slots) for h in history.homes},
    }
    cands = {
        k: hunch_candidates(history, state_model, home_state, slots=v, home_embeddings=home_embeddings)
        for k, v in parts.items()
    }
    labels = {k: forgotten_labels(history, c, forgotten) for k, c in cands.items()}
    raised = cands["fit"].rule_score >= raised_above
    fit_c, fit_y = cands["fit"].select(raised), labels["fit"][raised]
    rng = np.random.default_rng(seed)
    if label_budget is not None and len(fit_c) > label_budget:
        pick = np.sort(rng.choice(len(fit_c), label_budget, replace=False))
        fit_c, fit_y = fit_c.select(pick), fit_y[pick]
    answers = simulate_acceptance(fit_y, seed=seed)
    out: dict[str, Any] = {
        "candidates": {k: len(c) for k, c in cands.items()},
        "forgotten_slots": {k: int(y.sum()) for k, y in labels.items()},
        "answers": int(len(answers)),
        "accepted": int(answers.sum()),
    }
    scores: dict[str, dict[str, np.ndarray]] = {k: {"rule": c.rule_score} for k, c in cands.items()}
    for name, transfer in (("transfer", True), ("scratch", False)):
        model = HunchAcceptanceModel(transfer=transfer, seed=seed).fit(history, state_model, fit_c, answers)
        for k in ("validation", "test"):
            scores[k][name] = model.predict_proba(history, cands[k])[:, 1]
        if name == "transfer":
            out["_acceptance_model"] = model
    y = labels["test"]
    for name, s in scores["test"].items():
        ok = 0 < y.sum() < len(y)
        out[name] = {
            "slot_auc": float(roc_auc_score(y, s)) if ok else float("nan"),
            "slot_average_precision": float(average_precision_score(y, s)) if ok else float("nan"),
        }
        val_curve = action_precision_recall(cands["validation"], labels["validation"], scores["validation"][name])
        threshold = threshold_for_precision(val_curve, precision=target_precision)
        out[name]["validation_at_threshold"] = summarise_actions(val_curve, threshold)
        curve = action_precision_recall(cands["test"], y, s)
        out[name]["actions_at_validation_threshold"] = summarise_actions(
            action_precision_recall(cands["test"], y, s, np.array([threshold])), threshold
        )
        out[name]["_curve"] = curve
        enough = curve[curve["actions"] >= 5]
        out[name]["best_action_precision"] = float(enough["precision"].max()) if len(enough) else float("nan")
        reach = enough[enough["precision"] >= target_precision]
        # for reference only: the recall a threshold chosen on the test days themselves would give
        out[name]["test_chosen_recall_at_target_precision"] = float(reach["recall"].max()) if len(reach) else 0.0
    out["transfer_gain_average_precision"] = (
        out["transfer"]["slot_average_precision"] - out["scratch"]["slot_average_precision"]
    )
    out["_candidates"] = cands
    out["_labels"] = labels
    out["_scores"] = scores
    out["_home_state"] = home_state
    return out
