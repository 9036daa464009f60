"""Self-learning from implicit feedback: sessions, defect signals and the defect model, rephrase
detection, and rewrites mined from rephrase chains.

The public names of each part are re-exported here.
"""

from homeloop.selflearn.defects import (
    DEFECT_MODEL_NAME,
    DefectModel,
    binary_metrics,
    label_defects,
    latest_defect_model,
    load_defect_model,
    save_defect_model,
    signals_from_lake,
    train_defect_model_on_truth,
    truth_labels,
)
from homeloop.selflearn.sessions import (
    NEGATION_WORDS,
    SIGNAL_FEATURES,
    defect_signals,
    is_negation,
    rule_defects,
    sessionize,
    text_similarity,
)

__all__ = [
    "DEFECT_MODEL_NAME",
    "NEGATION_WORDS",
    "SIGNAL_FEATURES",
    "DefectModel",
    "binary_metrics",
    "defect_signals",
    "is_negation",
    "label_defects",
    "latest_defect_model",
    "load_defect_model",
    "rule_defects",
    "save_defect_model",
    "sessionize",
    "signals_from_lake",
    "text_similarity",
    "train_defect_model_on_truth",
    "truth_labels",
]
