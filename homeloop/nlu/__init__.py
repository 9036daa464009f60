"""The assistant's NLU: joint intent classification and slot tagging, with interchangeable text encoders.

Train with :class:`IntentSlotModel`, score with :func:`evaluate`, keep versioned
artefacts with :func:`save_model` / :func:`load_model`::

    from homeloop.datasets.hwu64 import load_hwu64
    from homeloop.nlu import IntentSlotModel, evaluate

    model = IntentSlotModel(encoder="fast").fit(load_hwu64("train"))
    model.parse(["turn off the kitchen lights"])    # intent, confidence, slots
    model.predict(["turn off the kitchen lights"])  # the intents alone
    evaluate(model, load_hwu64("test"))["intent_accuracy"]
"""

from homeloop.nlu.artifacts import latest_model_path, list_versions, load_model, save_model
from homeloop.nlu.encoders import ENCODERS, Encoder, EncoderOutput, get_encoder
from homeloop.nlu.metrics import bio_spans, span_f1
from homeloop.nlu.model import (
    NO_INTENT,
    IntentSlotModel,
    JointIntentSlotNetwork,
    NLUPrediction,
    evaluate,
    joint_loss,
    tokenize,
)

__all__ = [
    "ENCODERS",
    "NO_INTENT",
    "Encoder",
    "EncoderOutput",
    "IntentSlotModel",
    "JointIntentSlotNetwork",
    "NLUPrediction",
    "bio_spans",
    "evaluate",
    "get_encoder",
    "joint_loss",
    "latest_model_path",
    "list_versions",
    "load_model",
    "save_model",
    "span_f1",
    "tokenize",
]
