"""The device-state model: one encoder-decoder trained across every home (Alexa's Hunches).

:class:`DeviceStateModel` learns device embeddings by predicting whether a device will
be on in a future slot (:class:`~homeloop.home.queries.Queries`), with the network of
:mod:`homeloop.home.network` and the query features of :mod:`homeloop.home.queries`.

Training samples are random ``(device, slot, horizon)`` triples from each home's
training days; the device's usage features leave the target's own day out, so a
training target never appears in its own inputs. With probability
``recency_dropout`` the device's own recency inputs are hidden (and a flag says
so): the same decoder then answers "what do we expect given the time and the
home's state alone", which is what hunches compare the actual state against.

With ``ensemble`` above 1, that many models are trained from different seeds and
:meth:`DeviceStateModel.predict_proba` averages their probabilities (the embedding
is the first model's); with ``refit``, the validation days only choose the number of
epochs and each model is trained again on every training day.

Because one model serves every home, what households share (lights at dusk,
coffee at breakfast) is learned once and carries to homes with little history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from torch import nn

from homeloop.data.schema import DEVICE_TYPES
from homeloop.errors import InvalidInputError, NoDataError, NotFittedError
from homeloop.home.features import DeviceHistory, UsageAggregates, split_days, usage_features
from homeloop.home.network import DeviceStateNetwork
from homeloop.home.queries import (
    DEFAULT_HORIZONS,
    QUERY_FEATURE_NAMES,
    HomeCache,
    Queries,
    Transitions,
    query_features,
    time_index,
)
from homeloop.home.text import encode_texts
from homeloop.training import fit, make_loader, seed_everything

__all__ = ["DeviceStateModel"]

_TYPE_INDEX = {t: i for i, t in enumerate(DEVICE_TYPES)}


class _Samples(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class _KeepBest:
    """Callback: validation loss after each epoch; :meth:`restore` puts back the best epoch's weights."""

    def __init__(self, owner: DeviceStateModel, validation) -> None:
        self.owner, self.validation = owner, validation
        self.losses: list[float] = []
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, state) -> None:
        if self.validation is None:
            return
        collate, target, n = self.validation
        net = self.owner.network_
        was = net.training
        net.eval()
        with torch.no_grad():
            logits = torch.cat([net(collate(list(range(a, min(a + 4096, n))))) for a in range(0, n, 4096)])
        net.train(was)
        loss = float(F.binary_cross_entropy_with_logits(logits, torch.from_numpy(target)))
        self.losses.append(loss)
        if self.best_state is None or loss < min(self.losses[:-1]):
            self.best_epoch = state.epoch
            self.best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}

    def restore(self) -> None:
        if self.best_state is not None:
            self.owner.network_.load_state_dict(self.best_state)


class DeviceStateModel(BaseEstimator):
    """Device embeddings learned by predicting device states at future times, across all homes.

    Parameters (keyword-only): ``embedding_dim``; ``hidden``; ``text_encoder`` (a name in
    :data:`homeloop.home.text.TEXT_ENCODERS`); ``horizons`` (slots ahead that training
    queries ask about); ``samples_per_device`` (training queries per device and
    epoch); ``epochs``; ``batch_size``; ``lr``; ``recency_dropout``; ``use_rooms``
    (give the encoder the configured room and groups); ``ensemble`` (models averaged);
    ``refit`` (train again on every training day for the epochs validation chose); ``seed``.

    ``fit(history, train_days=None)`` trains on each home's first ``train_days[home_id]``
    days (all days when ``None``); :meth:`predict_proba` answers :class:`Queries` about
    any later slot (``[n, 2]``: P(off), P(on), as ``classes_`` is ``[0, 1]``); :meth:`embed`
    gives each device's embedding from its training days.
    """

    def __init__(
        self,
        *,
        embedding_dim: int = 32,
        hidden: int = 128,
        text_encoder: str = "minilm",
        horizons: Sequence[int] = DEFAULT_HORIZONS,
        samples_per_device: int = 600,
        epochs: int = 10,
        batch_size: int = 512,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        recency_dropout: float = 0.1,
        validation_fraction: float = 0.2,
        text_dropout: float = 0.15,
        use_rooms: bool = True,
        ensemble: int = 1,
        refit: bool = False,
        seed: int = 0,
    ) -> None:
        self.embedding_dim = embedding_dim
        self.hidden = hidden
        self.text_encoder = text_encoder
        self.horizons = horizons
        self.samples_per_device = samples_per_device
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.recency_dropout = recency_dropout
        self.text_dropout = text_dropout
        self.validation_fraction = validation_fraction
        self.use_rooms = use_rooms
        self.ensemble = ensemble
        self.refit = refit
        self.seed = seed

    # ------------------------------------------------------------------ inputs

    def _device_inputs(
        self, history: DeviceHistory, *, hide_rooms: bool = False, hide_names: bool = False
    ) -> dict[str, np.ndarray]:
        table = history.device_table()
        names = encode_texts([None] * len(table) if hide_names else list(table["name"]), encoder=self.text_encoder)
        if self.use_rooms and not hide_rooms:
            rooms_text = [
                (r or " ".join(g for g in (gs or []) if g)) or None
                for r, gs in zip(table["room"], table["groups"], strict=True)
            ]
        else:
            rooms_text = [None] * len(table)
        rooms = encode_texts(rooms_text, encoder=self.text_encoder)
        dim = max(rooms.shape[1], names.shape[1])
        names = names if names.shape[1] == dim else np.zeros((len(table), dim), np.float32)
        rooms = rooms if rooms.shape[1] == dim else np.zeros((len(table), dim), np.float32)
        types = np.array([_TYPE_INDEX.get(t, _TYPE_INDEX["other"]) for t in table["type"]], dtype=np.int64)
        homes = np.repeat(np.arange(len(history.homes)), [len(h.devices) for h in history.homes])
        rows = np.concatenate([np.arange(len(h.devices)) for h in history.homes]) if history.homes else np.zeros(0, int)
        return {
            "name": names,
            "room": rooms,
            "type": types,
            "home": homes,
            "row": rows,
            "has_events": table["has_events"].to_numpy(bool),
        }

    def _batches(
        self,
        history,
        agg,
        dev,
        queries_features,
        hod,
        how,
        lod,
        inputs,
        transitions: Transitions,
        horizons: np.ndarray,
        text_dropout: float = 0.0,
        targets: np.ndarray | None = None,
    ):
        rng = np.random.default_rng(self.seed + 2)

        def collate(idx: list[int]) -> dict[str, torch.Tensor]:
            i = np.asarray(idx)
            d = dev[i]
            name, room = inputs["name"][d], inputs["room"][d]
            if text_dropout > 0:  # teach the encoder to do without a name or a room (as for "Plug 1")
                name = name * (rng.random(len(i)) >= text_dropout)[:, None]
                room = room * (rng.random(len(i)) >= text_dropout)[:, None]
            return {
                "usage": torch.from_numpy(usage_features(agg, d, lod[i] if lod is not None else None)),
                "name": torch.from_numpy(name.astype(np.float32)),
                "room": torch.from_numpy(room.astype(np.float32)),
                "type": torch.from_numpy(inputs["type"][d]),
                "query": torch.from_numpy(queries_features[i]),
                "hod": torch.from_numpy(hod[i].astype(np.int64)),
                "how": torch.from_numpy(how[i].astype(np.int64)),
                "persist": torch.from_numpy(transitions.features(d, horizons[i], lod[i] if lod is not None else None)),
                "target": torch.from_numpy(targets[i]) if targets is not None else torch.zeros(len(i)),
            }

        return collate

    def _features(self, history: DeviceHistory, queries: Queries, inputs, hide_recency) -> tuple[np.ndarray, ...]:
        n = len(queries)
        qf = np.zeros((n, len(QUERY_FEATURE_NAMES)), np.float32)
        hod = np.zeros(n, np.int64)
        how = np.zeros(n, np.int64)
        target = np.zeros(n, np.float32)
        hide = np.broadcast_to(np.asarray(hide_recency, bool), (n,))
        home_of = inputs["home"][queries.device]
        for hi in np.unique(home_of):
            sel = np.flatnonzero(home_of == hi)
            home = history.homes[hi]
            rows = inputs["row"][queries.device[sel]]
            slots, hz = queries.slot[sel], queries.horizon[sel]
            qf[sel] = query_features(home, rows, slots, hz, hide_recency=hide[sel], cache=self._cache(history, hi))
            hod[sel], how[sel] = time_index(home, slots)
            target[sel] = home.on[rows, slots]
        return qf, hod, how, target

    def _cache(self, history: DeviceHistory, home_index: int) -> HomeCache:
        key = (id(history), home_index)
        if key not in self._caches:
            if len(self._caches) > 256:
                self._caches.clear()
            self._caches[key] = HomeCache(history.homes[home_index])
        return self._caches[key]

    # ------------------------------------------------------------------ fit / predict

    def sample_queries(
        self,
        history: DeviceHistory,
        days: Mapping[str, int],
        *,
        per_device: int,
        seed: int,
        held_out: bool = False,
        until: Mapping[str, int] | None = None,
    ) -> Queries:
        """Random queries on the first ``days`` of each home (or, ``held_out``, on the days after them, up to
        ``until`` days when given)."""
        rng = np.random.default_rng(seed)
        dev, slot, hz = [], [], []
        at = 0
        hmax = max(self.horizons)
        for h in history.homes:
            k = len(h.devices)
            d = days.get(h.home_id, h.days)
            spd = h.slots_per_day
            end = h.n_slots if until is None else min(h.n_slots, until.get(h.home_id, h.days) * spd)
            lo, hi = (d * spd, end) if held_out else (0, d * spd)
            lo = max(lo, min(hmax, hi - 1))
            active = np.flatnonzero(h.has_events)
            if hi - lo < 1 or active.size == 0:
                at += k
                continue
            n = active.size * per_device
            rows = np.repeat(active, per_device)
            hzs = rng.choice(self.horizons, size=n)
            s = rng.integers(np.maximum(lo, hzs), hi)
            dev.append(at + rows)
            slot.append(s)
            hz.append(hzs)
            at += k
        if not dev:
            raise NoDataError("no device with events has slots to sample queries from")
        return Queries(np.concatenate(dev), np.concatenate(slot), np.concatenate(hz))

    def fit(
        self, history: DeviceHistory, train_days: Mapping[str, int] | None = None, *, callbacks: Sequence[Any] = ()
    ) -> DeviceStateModel:
        """Train on each home's first ``train_days[home_id]`` days (all days when ``None``).

        The last ``validation_fraction`` of those days (homes with four training days or more)
        are kept for validation: after each epoch the validation loss is measured and the
        weights of the best epoch are kept (``validation_losses_`` records them).
        """
        if not isinstance(self.ensemble, int) or self.ensemble < 1:
            raise InvalidInputError(f"ensemble: expected a whole number of models, 1 or more, got {self.ensemble!r}")
        seed_everything(self.seed)
        self._caches: dict = {}
        days = dict(train_days) if train_days is not None else {h.home_id: h.days for h in history.homes}
        self.train_days_ = days
        self.horizons_ = tuple(self.horizons)
        self.classes_ = np.array([0, 1])
        fit_days = {
            h.home_id: d - (max(1, round(d * self.validation_fraction)) if d >= 4 and self.validation_fraction else 0)
            for h in history.homes
            for d in [min(days.get(h.home_id, h.days), h.days)]
        }
        inputs = self._device_inputs(history)
        agg = UsageAggregates.of(history, days)
        trans = Transitions(history, days, self.horizons_)
        self.text_dim_ = inputs["name"].shape[1]

        def prepared(queries: Queries, seed: int):
            hide = np.random.default_rng(seed).random(len(queries)) < self.recency_dropout
            qf, hod, how, target = self._features(history, queries, inputs, hide)
            lod = np.zeros(len(queries), np.int64)
            for hi, h in enumerate(history.homes):
                sel = inputs["home"][queries.device] == hi
                lod[sel] = queries.slot[sel] // h.slots_per_day
            return qf, hod, how, target, lod

        def loss_fn(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(model(batch), batch["target"])

        def training_loader(fit_until: Mapping[str, int], seed: int):
            """Fresh training queries up to ``fit_until``: a new network, its loader and the queries' targets."""
            queries = self.sample_queries(history, fit_until, per_device=self.samples_per_device, seed=seed)
            qf, hod, how, target, lod = prepared(queries, seed + 1)
            loader = make_loader(
                _Samples(len(queries)), batch_size=self.batch_size, seed=seed,
                collate_fn=self._batches(history, agg, queries.device, qf, hod, how, lod, inputs, trans,
                                         queries.horizon, self.text_dropout, target),
            )  # fmt: skip
            return self._network(agg, qf), loader, target

        self.members_: list[DeviceStateNetwork] = []
        self.best_epochs_: list[int] = []
        self.validation_losses_: list[float] = []
        for member in range(self.ensemble):
            seed = self.seed + 1009 * member  # member 0 is the single model of ensemble=1
            seed_everything(seed)
            self.network_, loader, target = training_loader(fit_days, seed)
            validation = None
            if any(fit_days[k] < days.get(k, 0) for k in fit_days):
                vq = self.sample_queries(
                    history,
                    fit_days,
                    per_device=max(50, self.samples_per_device // 4),
                    seed=self.seed + 7,
                    held_out=True,
                    until=days,
                )
                vqf, vhod, vhow, vtarget, vlod = prepared(vq, self.seed + 8)
                collate = self._batches(history, agg, vq.device, vqf, vhod, vhow, vlod, inputs, trans, vq.horizon)
                validation = (collate, vtarget, len(vq))
            keeper = _KeepBest(self, validation)
            history_ = fit(
                self.network_, loader, loss_fn=loss_fn, epochs=self.epochs, lr=self.lr,
                weight_decay=self.weight_decay, callbacks=[*callbacks, keeper], seed=seed,
            )  # fmt: skip
            keeper.restore()
            if self.refit and validation is not None and keeper.best_epoch >= 0:
                # the validation days only chose the number of epochs: train again on every training day
                seed_everything(seed)
                self.network_, loader, target = training_loader(days, seed)
                fit(self.network_, loader, loss_fn=loss_fn, epochs=keeper.best_epoch + 1, lr=self.lr,
                    weight_decay=self.weight_decay, callbacks=list(callbacks), seed=seed)  # fmt: skip
            self.members_.append(self.network_)
            self.best_epochs_.append(keeper.best_epoch)
            if member == 0:
                self.history_, self.validation_losses_, self.best_epoch_ = history_, keeper.losses, keeper.best_epoch
                self.base_rate_ = max(float(target.mean()), 1e-4)
        self.network_ = self.members_[0]
        return self

    def _network(self, agg: UsageAggregates, query_features: np.ndarray) -> DeviceStateNetwork:
        return DeviceStateNetwork(
            usage_dim=usage_features(agg, np.zeros(1, int)).shape[1],
            text_dim=self.text_dim_,
            query_dim=query_features.shape[1],
            embedding_dim=self.embedding_dim,
            hidden=self.hidden,
        )

    def _check(self) -> None:
        if not hasattr(self, "network_"):
            raise NotFittedError("DeviceStateModel: call fit(history) before predicting or embedding")

    def predict_proba(
        self,
        history: DeviceHistory,
        queries: Queries,
        *,
        hide_recency: np.ndarray | bool = False,
        batch_size: int = 4096,
    ) -> np.ndarray:
        """``[n, 2]``: probability that each queried device is off, and on, in its slot (``history`` must list
        the same homes as in fit, or new homes whose usage is summed over ``train_days_`` or their whole history)."""
        self._check()
        self._caches = getattr(self, "_caches", {})
        inputs = self._device_inputs(history)
        if inputs["name"].shape[1] != self.text_dim_:
            raise InvalidInputError("history: its text vectors do not match the fitted model's text encoder")
        agg = UsageAggregates.of(history, self.train_days_)
        qf, hod, how, _ = self._features(history, queries, inputs, hide_recency)
        trans = Transitions(history, self.train_days_, self.horizons_)
        collate = self._batches(history, agg, queries.device, qf, hod, how, None, inputs, trans, queries.horizon)
        members = getattr(self, "members_", None) or [self.network_]
        out = []
        for net in members:
            net.eval()
        with torch.no_grad():
            for a in range(0, len(queries), batch_size):
                batch = collate(list(range(a, min(a + batch_size, len(queries)))))
                out.append(torch.stack([torch.sigmoid(net(batch)) for net in members]).mean(dim=0))
        on = torch.cat(out).numpy() if out else np.zeros(0, np.float32)
        return np.stack([1 - on, on], axis=1)

    def predict(
        self, history: DeviceHistory, queries: Queries, *, hide_recency: np.ndarray | bool = False
    ) -> np.ndarray:
        """1 where the queried device is more likely on than off in its slot, else 0."""
        proba = self.predict_proba(history, queries, hide_recency=hide_recency)
        return self.classes_[proba.argmax(axis=1)]

    def embed(
        self, history: DeviceHistory, *, hide_rooms: bool = False, hide_names: bool = False, batch_size: int = 8192
    ) -> np.ndarray:
        """Embedding of every device of ``history`` (rows of its device table), from its training days.

        ``hide_rooms`` and ``hide_names`` leave the configured rooms and groups, or the names, out (as for a
        device whose room is to be inferred)."""
        self._check()
        inputs = self._device_inputs(history, hide_rooms=hide_rooms, hide_names=hide_names)
        if inputs["name"].shape[1] != self.text_dim_:
            inputs["name"] = np.zeros((history.n_devices, self.text_dim_), np.float32)
            inputs["room"] = np.zeros((history.n_devices, self.text_dim_), np.float32)
        agg = UsageAggregates.of(history, self.train_days_)
        out = []
        self.network_.eval()
        with torch.no_grad():
            for a in range(0, history.n_devices, batch_size):
                d = np.arange(a, min(a + batch_size, history.n_devices))
                out.append(
                    self.network_.encoder(
                        torch.from_numpy(usage_features(agg, d)),
                        torch.from_numpy(inputs["name"][d]),
                        torch.from_numpy(inputs["room"][d]),
                        torch.from_numpy(inputs["type"][d]),
                    )
                )
        return torch.cat(out).numpy() if out else np.zeros((0, self.embedding_dim), np.float32)

    def held_out_queries(self, history: DeviceHistory, *, per_device: int = 400, seed: int = 1) -> Queries:
        """Random queries on the days after each home's training days (for evaluation)."""
        self._check()
        return self.sample_queries(history, self.train_days_, per_device=per_device, seed=seed, held_out=True)


def train_test_days(history: DeviceHistory, train_fraction: float = 0.7) -> dict[str, int]:
    """Alias of :func:`~homeloop.home.features.split_days`."""
    return split_days(history, train_fraction=train_fraction)
