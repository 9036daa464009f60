"""Readers for the real public datasets vendored with homeloop (``homeloop/datasets/vendor``).

Each reader returns plain records in file order and raises
:class:`~homeloop.errors.UnsupportedFormatError` naming the file and the line
(or JSON/YAML position) of malformed input. Sources, licences and citations are
listed in ``homeloop/datasets/vendor/README.md``.

=====================================  ==========================================================
reader                                 returns
=====================================  ==========================================================
:func:`load_hwu64`                     HWU64 requests, 64 intents, bracket-annotated slots
:func:`load_snips`                     SNIPS 2017 requests, 7 intents, slots
:func:`load_clinc150`                  CLINC150 requests, 150 intents (+ ``"oos"``), no slots
:func:`load_ha_intent_tests`           Home Assistant Assist test sentences, intent and slots
:func:`load_ha_fixtures`               the floors, areas and entities of those tests' fixture home
:func:`load_uss`                       USS dialogues with turn-level 1-5 satisfaction ratings
:func:`load_cqr`                       Alexa CQR dialogues with gold contextual rewrites
:func:`load_slurp`                     SLURP requests with per-recording word error rates
:func:`slurp_wer_distribution`         SLURP per-recording word error rates as an array
=====================================  ==========================================================
"""

from homeloop.datasets._base import LabeledUtterance, bio_tags, vendor_path
from homeloop.datasets.clinc150 import load_clinc150
from homeloop.datasets.cqr import CQRDialogue, CQRReformulation, CQRTurn, load_cqr
from homeloop.datasets.ha_intents import load_ha_fixtures, load_ha_intent_tests
from homeloop.datasets.hwu64 import load_hwu64
from homeloop.datasets.slurp import load_slurp, slurp_wer_distribution
from homeloop.datasets.snips import load_snips
from homeloop.datasets.uss import Dialogue, DialogueTurn, is_dissatisfied, load_uss, majority_rating

__all__ = [
    "CQRDialogue",
    "CQRReformulation",
    "CQRTurn",
    "Dialogue",
    "DialogueTurn",
    "LabeledUtterance",
    "bio_tags",
    "is_dissatisfied",
    "load_clinc150",
    "load_cqr",
    "load_ha_fixtures",
    "load_ha_intent_tests",
    "load_hwu64",
    "load_slurp",
    "load_snips",
    "load_uss",
    "majority_rating",
    "slurp_wer_distribution",
    "vendor_path",
]
