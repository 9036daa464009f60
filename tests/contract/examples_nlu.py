"""Conformance examples for the estimators of the NLU rooms: ``homeloop.nlu``, ``homeloop.graceful`` and
``homeloop.privacy`` (see :mod:`tests.contract`). Tiny data: a dozen utterances, one epoch."""

from __future__ import annotations

import numpy as np

from homeloop.datasets import LabeledUtterance
from tests.contract import ContractExample

_TEXTS = [
    ("wake me up at seven", "alarm_set", (("time", 4, 5),)),
    ("set an alarm for six am", "alarm_set", (("time", 4, 6),)),
    ("alarm at noon please", "alarm_set", (("time", 2, 3),)),
    ("wake me at eight tomorrow", "alarm_set", (("time", 3, 4), ("date", 4, 5))),
    ("turn off the kitchen lights", "iot_hue_lightoff", (("house_place", 3, 4),)),
    ("lights off in the bedroom", "iot_hue_lightoff", (("house_place", 4, 5),)),
    ("switch the lights off", "iot_hue_lightoff", ()),
    ("kill the hall lights", "iot_hue_lightoff", (("house_place", 2, 3),)),
    ("play some jazz", "play_music", (("music_genre", 2, 3),)),
    ("put on music by queen", "play_music", (("artist_name", 4, 5),)),
    ("play my workout playlist", "play_music", ()),
    ("start the rock radio", "play_music", (("music_genre", 2, 3),)),
]
_QUERIES = ["wake me up at nine", "turn the lights off", "play rock music"]


def _utterances() -> list[LabeledUtterance]:
    return [
        LabeledUtterance(text=text, intent=intent, tokens=tuple(text.split()), slots=slots, source="contract")
        for text, intent, slots in _TEXTS
    ]


def intent_slot_model() -> ContractExample:
    from homeloop.nlu import IntentSlotModel

    return ContractExample(
        make=lambda: IntentSlotModel(encoder="fast", epochs=1, batch_size=4),
        fit_args=(_utterances(),),
        predict_args=(_QUERIES,),
        n_rows=len(_QUERIES),
    )


def intent_probe() -> ContractExample:
    from homeloop.nlu.probe import IntentProbe

    return ContractExample(
        make=lambda: IntentProbe(epochs=1, batch_size=4),
        fit_args=(_utterances(),),
        predict_args=(_QUERIES,),
        n_rows=len(_QUERIES),
    )


def intent_embedder() -> ContractExample:
    from homeloop.graceful.bct import IntentEmbedder

    return ContractExample(
        make=lambda: IntentEmbedder(
            embedding_dim=8, encoder_params={"hidden_size": 8, "embedding_dim": 8}, epochs=1, batch_size=4
        ),
        fit_args=(_utterances(),),
        predict_args=(_QUERIES,),
        n_rows=len(_QUERIES),
    )


def head_fine_tuner() -> ContractExample:
    from homeloop.graceful.lqf import HeadFineTuner, MLPHead

    rng = np.random.default_rng(0)
    features = rng.normal(size=(12, 4)).astype(np.float32)
    labels = ["a", "b", "c"] * 4
    return ContractExample(
        make=lambda: HeadFineTuner(method="lqf", epochs=1, batch_size=4),
        fit_args=(features, labels),
        fit_kwargs={"pretrained": MLPHead(4, 8, 2)},
        predict_args=(features[:5],),
        n_rows=5,
    )


EXAMPLES = {
    "IntentSlotModel": intent_slot_model,
    "IntentProbe": intent_probe,
    "IntentEmbedder": intent_embedder,
    "HeadFineTuner": head_fine_tuner,
}
