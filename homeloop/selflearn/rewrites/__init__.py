"""Query rewrites mined from rephrase chains with an absorbing Markov chain.

The mining job (:class:`RewriteMiner`, or :func:`mine_rewrites`) reads a lake
dataset's ``turns`` and runs in three stages:

1. **Count** (:func:`count_chains`, DuckDB SQL over the Parquet files): turns
   become *states*, the utterance as the assistant heard it, normalised
   (:func:`normalise_utterance`); a rewritten turn counts as the text it was
   heard as (``rewritten_from``). Sessions are one user's turns on one speaking
   device, split where more than ``session_gap_seconds`` pass (window functions
   over user and device ordered by time). Reactions ("no", "stop") are signals,
   not states. A turn that was not defective is absorbed into *success*; a
   defective one moves to the user's next utterance of the session, or, when
   there is none, is absorbed into *failure*. Defect labels come from the
   lake table ``defect_labels`` when the dataset has one, otherwise from rules
   (an error response, a barge-in, negative feedback, a reaction or another
   request within ``rephrase_window_seconds``).
   Turns where a rewrite fired are left out as sources of counts: what followed
   them answered the rewrite, not the utterance, so the chain never learns from
   its own rewrites.
2. **Solve** (:mod:`homeloop.selflearn.markov`): transition probabilities
   pooled over all users, smoothed with ``prior_strength`` pseudo-turns, give
   ``B = (I - Q)^-1 R`` by sparse LU.
3. **Select**: for each source, among the utterances that followed it in the
   same chain of defective turns (at least ``min_support`` times, by at least
   ``min_users`` users), the target with the highest probability of being
   absorbed into success ``B[t, success]``, kept when its own success rate
   beats the source's by ``min_improvement`` (the registered *target scorer*
   ``"absorption"``; ``"eventual"`` judges by ``B`` as well, which also credits
   a target for the rephrases that follow it when it fails; ``"frequency"``,
   the baseline, takes the most frequent follow-up and no chain). Optionally
   (``pool_by="interpretation"``) the chain's states are the NLU interpretations
   of the utterances, which pools evidence across wordings read the same way.

The result is a :class:`RewriteTable`: callable as the simulator's rewriter,
stored in the operational database as a new version in one transaction
(:func:`publish_rewrite_table`), exportable as Parquet or JSON.

The stages live in one module each: :mod:`~homeloop.selflearn.rewrites.table` (the table, its lookup
and its Parquet/JSON files), :mod:`~homeloop.selflearn.rewrites.counting` (stage 1, DuckDB),
:mod:`~homeloop.selflearn.rewrites.selection` (stages 2 and 3),
:mod:`~homeloop.selflearn.rewrites.miner` (the estimator), :mod:`~homeloop.selflearn.rewrites.database`
(versions in the operational database) and :mod:`~homeloop.selflearn.rewrites.learning` (mine, publish,
export: what ``homeloop learn rewrites`` runs). Their public names are re-exported here.
"""

from homeloop.selflearn.rewrites.counting import REACTION_INTENTS, ChainCounts, count_chains, has_defect_labels
from homeloop.selflearn.rewrites.database import load_rewrite_table, publish_rewrite_table, rewrite_table_versions
from homeloop.selflearn.rewrites.learning import learn_rewrites
from homeloop.selflearn.rewrites.miner import RewriteMiner, mine_rewrites
from homeloop.selflearn.rewrites.selection import POOLINGS, TARGET_SCORERS, TargetScorer, select_rewrites
from homeloop.selflearn.rewrites.table import Rewrite, RewriteTable, normalise_utterance

__all__ = [
    "POOLINGS",
    "REACTION_INTENTS",
    "TARGET_SCORERS",
    "ChainCounts",
    "Rewrite",
    "RewriteMiner",
    "RewriteTable",
    "TargetScorer",
    "count_chains",
    "has_defect_labels",
    "learn_rewrites",
    "load_rewrite_table",
    "mine_rewrites",
    "normalise_utterance",
    "publish_rewrite_table",
    "rewrite_table_versions",
    "select_rewrites",
]
