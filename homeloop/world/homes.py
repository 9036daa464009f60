"""Simulated homes: rooms, devices with names and groups, speakers, residents with schedules."""

from __future__ import annotations

import dataclasses
import zoneinfo
from dataclasses import dataclass, field

from homeloop.world.catalog import ARCHETYPES, PERSONAL_CONFUSIONS, SPEAKERS, Archetype
from homeloop.world.config import WorldConfig
from homeloop.world.rng import stream

__all__ = ["Resident", "SimDevice", "SimHome", "build_homes"]

TIMEZONES = ("Europe/London", "Europe/Amsterdam", "America/New_York", "America/Chicago", "America/Los_Angeles")

# Second instances that dense homes add after one of each archetype: (archetype, room, name suffix)
_EXTRA_INSTANCES = (
    ("bedroom_light", "Guest Room", "Guest"),
    ("bathroom_light", "Upstairs Bathroom", "Upstairs"),
    ("hall_light", "Upstairs Hall", "Upstairs"),
    ("porch_light", "Back Porch", "Back"),
    ("living_lamp", "Living Room", "Corner"),
    ("tv", "Bedroom", "Bedroom"),
    ("kids_lamp", "Kids Room 2", "Second"),
    ("kitchen_light", "Kitchen", "Island"),
    ("office_light", "Office", "Shelf"),
    ("bedroom_fan", "Guest Room", "Guest"),
    ("lamp_plug", "Living Room", "Window"),
    ("garage_light", "Garage", "Side"),
    ("bedroom_light", "Bedroom", "Reading"),
    ("bathroom_light", "Bathroom", "Shower"),
    ("hall_light", "Hallway", "Stairs"),
)


@dataclass(frozen=True)
class SimDevice:
    device_id: str
    home_id: str
    name: str
    archetype: Archetype
    room: str  # the true room
    groups: tuple[str, ...]
    informative: bool  # the name says what or where it is
    spoken_name: str = ""  # what residents call it; often not its configured name when that is vague

    def __post_init__(self) -> None:
        if not self.spoken_name:
            object.__setattr__(self, "spoken_name", self.name)

    @property
    def type(self) -> str:
        return self.archetype.type


@dataclass(frozen=True)
class Speaker:
    device_id: str
    name: str
    room: str
    has_screen: bool


@dataclass(frozen=True)
class Resident:
    resident_id: str
    user_id: str  # pseudonymous id the assistant's logs carry
    works_away: bool  # leaves on weekdays
    wake_weekday: float  # local hours
    wake_weekend: float
    leave: float
    come_back: float
    sleep: float
    confusions: tuple[tuple[str, str], ...]  # personal mishearings (an accent)
    persistence: float  # how readily they rephrase after a failure


@dataclass(frozen=True)
class SimHome:
    home_id: str
    index: int
    timezone: str
    devices: tuple[SimDevice, ...]
    speakers: tuple[Speaker, ...]
    residents: tuple[Resident, ...]
    by_id: dict[str, SimDevice] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_id.update({d.device_id: d for d in self.devices})

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


def _device_slots(n: int, rnd) -> list[tuple[str, str, str]]:
    """Pick ``n`` (archetype, room, suffix) slots: by priority with some shuffling, then extras."""
    base = sorted(ARCHETYPES.values(), key=lambda a: a.priority + rnd.uniform(0, 4))
    slots = [(a.name, a.room, "") for a in base]
    slots += list(_EXTRA_INSTANCES)
    return slots[:n]


def _home_size(rnd) -> int:
    u = rnd.random()
    if u < 0.15:
        return 1  # sparse: one speaker and one bulb
    if u < 0.45:
        return rnd.randint(3, 6)
    if u < 0.8:
        return rnd.randint(7, 14)
    return rnd.randint(15, 30)


def _resident(config: WorldConfig, home_index: int, r: int) -> Resident:
    rnd = stream(config.seed, "resident", home_index, r)
    works = rnd.random() < 0.7
    wake = rnd.uniform(5.75, 7.5)
    accent = rnd.random() < config.accent_probability
    confusions = tuple(rnd.sample(PERSONAL_CONFUSIONS, 3)) if accent else ()
    return Resident(
        resident_id=f"r{config.seed}-{home_index}-{r}",
        user_id=f"u{stream(config.seed, 'user', home_index, r).getrandbits(48):012x}",
        works_away=works,
        wake_weekday=wake,
        wake_weekend=wake + rnd.uniform(0.75, 2.0),
        leave=wake + rnd.uniform(0.75, 1.75),
        come_back=rnd.uniform(16.5, 19.0),
        sleep=rnd.uniform(21.75, 23.75),
        confusions=confusions,
        persistence=rnd.uniform(0.45, 0.9),
    )


def build_homes(config: WorldConfig) -> list[SimHome]:
    homes = []
    for h in range(config.first_home, config.first_home + config.homes):
        rnd = stream(config.seed, "home", h)
        home_id = f"h{config.seed}-{h:05d}"
        n = _home_size(rnd)
        names_used: set[str] = set()
        devices: list[SimDevice] = []
        for i, (arch_name, room, suffix) in enumerate(_device_slots(n, rnd)):
            arch = ARCHETYPES[arch_name]
            informative = rnd.random() >= config.vague_name_probability
            pool = arch.informative_names if informative else arch.vague_names
            name = rnd.choice(pool)
            if suffix and informative:
                name = f"{suffix} {name}"
            if name in names_used:
                informative = True
                name = f"{suffix or room} {rnd.choice(arch.informative_names)}".strip()
            k = 2
            base_name = name
            while name in names_used:
                name = f"{base_name} {k}"
                k += 1
            names_used.add(name)
            # residents of a home often call a vaguely named device by what it is ("the coffee maker" for Plug 1)
            spoken = rnd.choice(arch.informative_names) if not informative and rnd.random() < 0.5 else name
            devices.append(SimDevice(f"{home_id}-d{i:02d}", home_id, name, arch, room, (), informative, spoken))
        # groups: a room group wherever two or more devices share a room, and "Lights" in bigger homes
        by_room: dict[str, list[int]] = {}
        for i, d in enumerate(devices):
            by_room.setdefault(d.room, []).append(i)
        grouped = []
        for d in devices:
            groups = [d.room] if len(by_room[d.room]) > 1 else []
            if len(devices) >= 8 and d.type == "light":
                groups.append("Lights")
            grouped.append(dataclasses.replace(d, groups=tuple(groups)))
        n_speakers = 1 if n <= 2 else rnd.randint(1, 3)
        speakers = tuple(
            Speaker(f"{home_id}-s{j}", name, room, screen)
            for j, (name, room, screen) in enumerate(SPEAKERS[:n_speakers])
        )
        n_res = rnd.choices((1, 2, 3, 4), weights=(0.3, 0.35, 0.2, 0.15))[0]
        residents = tuple(_resident(config, h, r) for r in range(n_res))
        homes.append(SimHome(home_id, h, rnd.choice(TIMEZONES), tuple(grouped), speakers, residents))
    return homes
