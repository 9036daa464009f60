"""Parameters of a simulated world."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from homeloop.errors import InvalidInputError
from homeloop.world.catalog import SYSTEMATIC_CONFUSIONS

__all__ = ["WorldConfig"]


@dataclass(frozen=True, kw_only=True)
class WorldConfig:
    """Everything that decides a simulated world; the same config gives the same world.

    Rates are per resident per hour awake at home unless said otherwise.
    """

    homes: int = 20
    days: int = 14
    seed: int = 0
    # homes are numbered first_home, first_home + 1, ...: the same seed with another range gives new
    # homes and residents in the same world (same recogniser, same sound-alike confusions), which is
    # how held-out residents are drawn
    first_home: int = 0
    start: dt.date = dt.date(2026, 3, 2)  # a Monday
    info_request_rate: float = 0.35  # requests other than device control
    false_wake_rate: float = 0.25  # per hour the TV is on
    forget_probability: float = 0.06  # a forgettable device left on when leaving / going to sleep
    vague_name_probability: float = 0.3  # a device gets a name like "Plug 1"
    accent_probability: float = 0.2  # a resident has personal mishearings
    asr_error_scale: float = 1.0  # multiplies the SLURP-calibrated word error rates
    systematic_confusions: int = 10  # how many of the catalogue's sound-alike pairs this world's recogniser has
    systematic_probability: float = 0.5  # chance a systematically misheard word is misheard when spoken
    personal_probability: float = 0.6
    nlu_reject_below: float = 0.2  # the assistant says "I didn't understand" below this NLU confidence
    max_attempts: int = 4
    assistant_uses_screen_context: bool = False  # "play X" on a screen device means the video
    assistant_uses_device_context: bool = False  # with the oven on, "what's the temperature" is about the oven
    oven_question_probability: float = 0.3  # an info request while the oven is on asks the oven's temperature

    def __post_init__(self) -> None:
        if self.homes < 1:
            raise InvalidInputError(f"homes: expected at least 1, got {self.homes}")
        if self.first_home < 0:
            raise InvalidInputError(f"first_home: expected 0 or more, got {self.first_home}")
        if self.days < 1:
            raise InvalidInputError(f"days: expected at least 1, got {self.days}")
        for name in (
            "forget_probability",
            "vague_name_probability",
            "accent_probability",
            "systematic_probability",
            "personal_probability",
            "nlu_reject_below",
            "oven_question_probability",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"{name}: expected a probability in [0, 1], got {value}")
        if not 0 <= self.systematic_confusions <= len(SYSTEMATIC_CONFUSIONS):
            raise InvalidInputError(
                f"systematic_confusions: expected 0 to {len(SYSTEMATIC_CONFUSIONS)}, got {self.systematic_confusions}"
            )
        if self.max_attempts < 1:
            raise InvalidInputError(f"max_attempts: expected at least 1, got {self.max_attempts}")
