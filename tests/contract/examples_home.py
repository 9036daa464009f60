"""Tiny examples of the smart-home estimators for the conformance test (:mod:`tests.test_estimator_contract`).

Two homes of three devices each over six days on an hourly grid: enough for every estimator of
:mod:`homeloop.home` to fit in a second or two.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

import numpy as np

from homeloop.home.baselines import HourLogistic, HourOfWeekPrior, LastStatePersists
from homeloop.home.device_model import DeviceStateModel
from homeloop.home.features import DeviceHistory, history_from_intervals, split_days
from homeloop.home.hunches import HunchAcceptanceModel, HunchCandidates, hunch_candidates
from homeloop.home.pipeline import InactivityHomeState
from homeloop.home.presence import HomeStateModel
from homeloop.home.queries import Queries
from tests.contract import ContractExample

_DAYS = 6
_TINY_STATE_MODEL = dict(
    embedding_dim=8, hidden=16, text_encoder="hashing", samples_per_device=20, epochs=1, batch_size=32, seed=0
)


@cache
def _history() -> DeviceHistory:
    rng = np.random.default_rng(0)
    homes = [{"home_id": f"h{i}", "timezone": "UTC"} for i in range(2)]
    kinds = [("Kitchen light", "light", "Kitchen", 18), ("Coffee maker", "plug", "Kitchen", 7),
             ("Bedroom lamp", "light", "Bedroom", 22)]  # fmt: skip
    devices, intervals = [], {}
    for home in homes:
        for j, (name, type_, room, hour) in enumerate(kinds):
            device_id = f"{home['home_id']}-{j}"
            devices.append({"device_id": device_id, "home_id": home["home_id"], "name": name, "type": type_,
                            "room": room, "groups": []})  # fmt: skip
            starts, ends = [], []
            for day in range(_DAYS):
                start = dt.datetime(2026, 3, 2, tzinfo=dt.UTC) + dt.timedelta(
                    days=day, hours=int(hour + rng.integers(-1, 2))
                )
                starts.append(start)
                ends.append(start + dt.timedelta(hours=int(rng.integers(1, 4))))
            intervals[device_id] = (starts, ends)
    return history_from_intervals(homes, devices, intervals, slot_minutes=60)


def _train_days() -> dict[str, int]:
    return split_days(_history())


def _queries() -> Queries:
    history = _history()
    slots = history.homes[0].n_slots
    device = np.arange(history.n_devices).repeat(4)
    slot = np.tile([slots - 30, slots - 20, slots - 10, slots - 1], history.n_devices)
    return Queries(device, slot, np.tile([1, 2, 6, 12], history.n_devices))


def _state_example(make) -> ContractExample:
    queries = _queries()
    return ContractExample(
        make=make, fit_args=(_history(), _train_days()), predict_args=(_history(), queries), n_rows=len(queries)
    )


def _home_state_labels() -> dict[str, np.ndarray]:
    # home by day, asleep at night, away mid-morning
    out = {}
    for home in _history().homes:
        hour = np.arange(home.n_slots) % 24
        out[home.home_id] = np.where(hour < 6, 2, np.where((hour >= 9) & (hour < 12), 1, 0)).astype(np.int8)
    return out


def _home_state_example(make) -> ContractExample:
    history = _history()
    return ContractExample(
        make=make,
        fit_args=(history, _home_state_labels(), _train_days()),
        predict_args=(history,),
        n_rows=sum(h.n_slots for h in history.homes),
    )


@cache
def _fitted_state_model() -> DeviceStateModel:
    return DeviceStateModel(**_TINY_STATE_MODEL).fit(_history(), _train_days())


def _hunches() -> HunchCandidates:
    history = _history()
    home_state = InactivityHomeState().fit(history)
    return hunch_candidates(
        history, _fitted_state_model(), home_state, slots={h.home_id: (0, h.n_slots) for h in history.homes}
    )


def _acceptance_example() -> ContractExample:
    history, candidates = _history(), _hunches()
    accepted = (np.arange(len(candidates)) % 3 == 0).astype(np.int8)
    return ContractExample(
        make=lambda: HunchAcceptanceModel(epochs=1, batch_size=32, seed=0),
        fit_args=(history, _fitted_state_model(), candidates, accepted),
        predict_args=(history, candidates),
        n_rows=len(candidates),
    )


EXAMPLES = {
    "DeviceStateModel": lambda: _state_example(lambda: DeviceStateModel(**_TINY_STATE_MODEL)),
    "HourOfWeekPrior": lambda: _state_example(lambda: HourOfWeekPrior(shrinkage=1.0)),
    "LastStatePersists": lambda: _state_example(lambda: LastStatePersists(horizons=(1, 2, 6, 12))),
    "HourLogistic": lambda: _state_example(lambda: HourLogistic(C=1.0)),
    "HomeStateModel": lambda: _home_state_example(lambda: HomeStateModel(max_iter=5, seed=0)),
    "InactivityHomeState": lambda: _home_state_example(lambda: InactivityHomeState(quiet_minutes=30)),
    "HunchAcceptanceModel": _acceptance_example,
}
