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
from homeloop.selflearn.markov import absorption_probabilities, chain_from_counts
from homeloop.selflearn.replay import ReplayResult, compare_outcomes, replay_rewrites, rewrites_report_section
from homeloop.selflearn.rewrites import (
    Rewrite,
    RewriteMiner,
    RewriteTable,
    learn_rewrites,
    load_rewrite_table,
    mine_rewrites,
    publish_rewrite_table,
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
    "ReplayResult",
    "Rewrite",
    "RewriteMiner",
    "RewriteTable",
    "absorption_probabilities",
    "chain_from_counts",
    "compare_outcomes",
    "learn_rewrites",
    "load_rewrite_table",
    "mine_rewrites",
    "publish_rewrite_table",
    "replay_rewrites",
    "rewrites_report_section",
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
