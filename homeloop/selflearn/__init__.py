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
from homeloop.selflearn.rephrase import (
    PairwiseRephraseDetector,
    RephraseCandidate,
    RephraseExample,
    SpanRephraseDetector,
    detect_rephrases,
    load_rephrase_model,
    rephrase_examples,
    rephrase_metrics,
    save_rephrase_model,
    train_rephrase_detector_on_truth,
)
from homeloop.selflearn.replay import ReplayResult, compare_outcomes, replay_rewrites
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
from homeloop.selflearn.uss import evaluate_defects_on_uss, uss_signals

__all__ = [
    "DEFECT_MODEL_NAME",
    "NEGATION_WORDS",
    "SIGNAL_FEATURES",
    "DefectModel",
    "PairwiseRephraseDetector",
    "RephraseCandidate",
    "RephraseExample",
    "SpanRephraseDetector",
    "detect_rephrases",
    "evaluate_defects_on_uss",
    "load_rephrase_model",
    "rephrase_examples",
    "rephrase_metrics",
    "save_rephrase_model",
    "train_rephrase_detector_on_truth",
    "uss_signals",
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
