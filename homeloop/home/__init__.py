"""Smart home: deep device embeddings, state prediction, archetypes, rooms, home state, hunches, automations.

The pieces, each usable alone:

- :mod:`~homeloop.home.features`: device timelines on a grid of local time slots
  (:func:`load_history` from the lake, :func:`history_from_intervals`), bad input
  repaired and counted, usage features;
- :mod:`~homeloop.home.embeddings`: :class:`DeviceStateModel`, the encoder-decoder trained
  across homes through :func:`homeloop.training.fit`; :mod:`~homeloop.home.baselines`;
  :func:`evaluate_state_prediction` on held-out later days;
- :mod:`~homeloop.home.archetypes`: k-means on embeddings, titled clusters, purity/NMI, device map;
- :mod:`~homeloop.home.rooms`: room inference from co-usage and embeddings;
- :mod:`~homeloop.home.presence`: home state (home / away / asleep) and home embeddings;
- :mod:`~homeloop.home.hunches`: hunches, the acceptance model (transfer vs scratch), automatic actions;
- :mod:`~homeloop.home.automations` and :mod:`~homeloop.home.ha_schema`: Home Assistant automation YAML;
- :mod:`~homeloop.home.figures`: figures of the experiments (state prediction, rooms, hunches).

The experiments end to end and their report section belong to the demo, which builds on this package.
"""

from homeloop.home.archetypes import Archetypes, archetype_scores, find_archetypes
from homeloop.home.automations import AutomationSuggestion, automations_yaml, suggest_automations
from homeloop.home.baselines import BASELINES, HourLogistic, HourOfWeekPrior, LastStatePersists
from homeloop.home.embeddings import DeviceStateModel, Queries
from homeloop.home.evaluation import evaluate_state_prediction
from homeloop.home.features import DeviceHistory, HomeSlots, history_from_intervals, load_history, split_days
from homeloop.home.ha_schema import AUTOMATION_SCHEMA, validate_automations
from homeloop.home.hunches import HunchAcceptanceModel, evaluate_hunches, hunch_candidates
from homeloop.home.pipeline import InactivityHomeState, find_hunches, load_device_model, save_device_model
from homeloop.home.presence import (
    HomeStateModel,
    evaluate_home_state,
    home_embeddings,
    home_folds,
    home_state_labels,
    random_home_vectors,
)
from homeloop.home.rooms import evaluate_rooms, infer_rooms

__all__ = [
    "AUTOMATION_SCHEMA",
    "BASELINES",
    "Archetypes",
    "AutomationSuggestion",
    "DeviceHistory",
    "DeviceStateModel",
    "HomeSlots",
    "HomeStateModel",
    "HourLogistic",
    "HourOfWeekPrior",
    "HunchAcceptanceModel",
    "InactivityHomeState",
    "LastStatePersists",
    "Queries",
    "archetype_scores",
    "automations_yaml",
    "evaluate_home_state",
    "evaluate_hunches",
    "evaluate_rooms",
    "evaluate_state_prediction",
    "find_archetypes",
    "find_hunches",
    "history_from_intervals",
    "home_embeddings",
    "home_folds",
    "home_state_labels",
    "random_home_vectors",
    "hunch_candidates",
    "infer_rooms",
    "load_device_model",
    "load_history",
    "save_device_model",
    "split_days",
    "suggest_automations",
    "validate_automations",
]
