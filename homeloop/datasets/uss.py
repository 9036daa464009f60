"""User Satisfaction Simulation (Sun et al., SIGIR 2021): dialogues with turn-level satisfaction ratings.

Files: ``vendor/uss/SGD.txt`` and ``vendor/uss/MWOZ.txt`` (1,000 dialogues each,
UTF-8). Each non-blank line is one turn with four tab-separated fields::

    role \\t text \\t action \\t ratings

``role`` is ``USER`` or ``SYSTEM``; ``action`` is a dialogue act (SGD:
``INFORM_INTENT``; MultiWOZ: ``Restaurant-Inform``; may be empty); ``ratings``
holds the annotators' 1-5 satisfaction ratings separated by commas (3 to 7
annotators per turn, usually 3 or 4) on USER turns and is empty on SYSTEM
turns. Dialogues are separated by blank lines; each ends with a line
``USER \\t OVERALL \\t \\t ratings`` giving the rating of the whole dialogue.

Ratings: 1 very dissatisfied, 2 dissatisfied, 3 normal, 4 satisfied, 5 very
satisfied. :func:`majority_rating` combines one turn's ratings and
:func:`is_dissatisfied` flags a USER turn whose majority rating is 2 or less.

Source: sunnweiwei/user-satisfaction-simulation. The repository carries no
licence file; the dialogues come from SGD (CC BY-SA 4.0) and MultiWOZ (MIT).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from homeloop.datasets._base import vendor_path
from homeloop.errors import InvalidInputError, UnsupportedFormatError

__all__ = [
    "CORPORA",
    "DISSATISFIED_AT_MOST",
    "Dialogue",
    "DialogueTurn",
    "is_dissatisfied",
    "load_uss",
    "majority_rating",
]

CORPORA = ("SGD", "MWOZ")
ROLES = ("USER", "SYSTEM")
DISSATISFIED_AT_MOST = 2
_OVERALL = "OVERALL"


def majority_rating(ratings: Sequence[int]) -> int:
    """The rating most annotators gave.

    When several ratings are tied for most frequent, the tied rating closest to
    the median of all ratings wins; when two tied ratings are equally close to the
    median (``2, 2, 3, 3``: median 2.5), the lower one wins, so a turn that half
    the annotators found unsatisfying counts as unsatisfying. Examples:
    ``(2, 3, 3) -> 3``, ``(2, 3, 4) -> 3``, ``(2, 2, 3, 3) -> 2``, ``(3, 4, 4, 3) -> 3``,
    ``(1, 1, 4, 4, 5) -> 4`` (median 4).
    """
    if len(ratings) == 0:
        raise InvalidInputError("majority_rating: expected at least one rating, got none")
    counts = Counter(ratings)
    top = max(counts.values())
    tied = [value for value, n in counts.items() if n == top]
    if len(tied) == 1:
        return tied[0]
    median = statistics.median(ratings)
    return min(tied, key=lambda value: (abs(value - median), value))


@dataclass(frozen=True)
class DialogueTurn:
    """One turn: who spoke, what was said, the dialogue act, and the annotators' ratings (USER turns only)."""

    role: str
    text: str
    action: str
    ratings: tuple[int, ...] = ()

    @property
    def rating(self) -> int | None:
        """The majority rating (see :func:`majority_rating`), None for a turn without ratings."""
        return majority_rating(self.ratings) if self.ratings else None


@dataclass(frozen=True)
class Dialogue:
    """One dialogue: its turns (without the OVERALL line) and the ratings of the whole dialogue."""

    dialogue_id: str
    corpus: str
    turns: tuple[DialogueTurn, ...]
    overall_ratings: tuple[int, ...]

    @property
    def overall(self) -> int:
        """The majority rating of the whole dialogue."""
        return majority_rating(self.overall_ratings)

    @property
    def user_turns(self) -> tuple[DialogueTurn, ...]:
        return tuple(t for t in self.turns if t.role == "USER")


def is_dissatisfied(turn: DialogueTurn, *, at_most: int = DISSATISFIED_AT_MOST) -> bool:
    """True for a USER turn whose majority rating is ``at_most`` (2) or less; False for SYSTEM turns."""
    return turn.role == "USER" and bool(turn.ratings) and majority_rating(turn.ratings) <= at_most


def load_uss(corpus: str = "SGD", *, root: str | Path | None = None) -> list[Dialogue]:
    """Read the dialogues of one corpus (``"SGD"`` or ``"MWOZ"``) in file order."""
    if corpus not in CORPORA:
        raise InvalidInputError(f"USS corpus {corpus!r}: expected one of {list(CORPORA)}")
    path = Path(root) / f"{corpus}.txt" if root is not None else vendor_path("uss", f"{corpus}.txt")
    dialogues: list[Dialogue] = []
    turns: list[DialogueTurn] = []
    overall: tuple[int, ...] | None = None
    start_line = 0

    def close(line_no: int) -> None:
        nonlocal turns, overall
        if not turns and overall is None:
            return
        if overall is None:
            raise UnsupportedFormatError(
                f"{path}:{line_no}: the dialogue that starts on line {start_line} has no 'USER\\tOVERALL' line"
            )
        dialogues.append(Dialogue(f"{corpus}-{len(dialogues):04d}", corpus, tuple(turns), overall))
        turns, overall = [], None

    with open(path, encoding="utf-8") as fh:
        line_no = 0
        for line_no, raw in enumerate(fh, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                close(line_no)
                continue
            where = f"{path}:{line_no}"
            if overall is not None:
                raise UnsupportedFormatError(f"{where}: a turn after the OVERALL line; expected a blank line")
            if not turns:
                start_line = line_no
            fields = line.split("\t")
            if len(fields) != 4:
                raise UnsupportedFormatError(
                    f"{where}: expected 4 tab-separated fields (role, text, action, ratings), got {len(fields)}"
                )
            role, text, action, rating_field = fields
            if role not in ROLES:
                raise UnsupportedFormatError(f"{where}: expected role USER or SYSTEM, got {role!r}")
            ratings = _parse_ratings(rating_field, where)
            if role == "USER" and text == _OVERALL:
                if not ratings:
                    raise UnsupportedFormatError(f"{where}: the OVERALL line has no ratings")
                overall = ratings
                continue
            if (role == "USER") != bool(ratings):
                expected = "1-5 ratings" if role == "USER" else "no ratings"
                raise UnsupportedFormatError(f"{where}: expected {expected} on a {role} turn, got {rating_field!r}")
            turns.append(DialogueTurn(role, text, action, ratings))
        close(line_no + 1)
    if not dialogues:
        raise UnsupportedFormatError(f"{path}: no dialogues found")
    return dialogues


def _parse_ratings(field: str, where: str) -> tuple[int, ...]:
    if not field.strip():
        return ()
    try:
        ratings = tuple(int(v) for v in field.split(","))
    except ValueError:
        raise UnsupportedFormatError(f"{where}: expected comma-separated ratings 1-5, got {field!r}") from None
    if not all(1 <= r <= 5 for r in ratings):
        raise UnsupportedFormatError(f"{where}: ratings must be 1-5, got {field!r}")
    return ratings
