"""Static knowledge of the simulated world: device archetypes, their names, rooms, and
how speech recognition mishears words.

Each :class:`Archetype` describes one recognisable usage pattern (the issue's
examples: bathroom light in short spans by day and longer in the evening, porch
light overnight, living-room lamp in the evening with a plug that follows it,
coffee maker after the alarm, TV at night). Schedules are in local hours.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ARCHETYPES", "Archetype", "PERSONAL_CONFUSIONS", "SPEAKERS", "SYSTEMATIC_CONFUSIONS"]


@dataclass(frozen=True)
class Archetype:
    name: str
    type: str  # a DEVICE_TYPES value
    room: str
    informative_names: tuple[str, ...]
    vague_names: tuple[str, ...]  # names that say nothing about the room or use ("Plug 1", "Lamp")
    on_intent: str  # HWU64 intent a resident's "turn it on" request has
    off_intent: str
    voice_share: float  # share of this device's switching done by voice
    forgettable: bool = False  # residents sometimes leave it on when leaving or going to sleep
    priority: int = 0  # lower is added to a home first


_LIGHT = ("iot_hue_lighton", "iot_hue_lightoff")
_PLUG = ("iot_wemo_on", "iot_wemo_off")

ARCHETYPES: dict[str, Archetype] = {
    a.name: a
    for a in (
        Archetype(
            "living_lamp",
            "light",
            "Living Room",
            ("Living Room Lamp", "Floor Lamp", "Sofa Lamp", "Reading Lamp"),
            ("Lamp", "First Light", "Light 1"),
            *_LIGHT,
            0.45,
            True,
            0,
        ),
        Archetype(
            "porch_light",
            "light",
            "Porch",
            ("Porch Light", "Front Porch", "Outside Light", "Porch Lamp"),
            ("Light 2", "Second Light"),
            *_LIGHT,
            0.35,
            False,
            1,
        ),
        Archetype(
            "kitchen_light",
            "light",
            "Kitchen",
            ("Kitchen Light", "Kitchen Lights", "Kitchen Ceiling"),
            ("Ceiling Light", "Light 3"),
            *_LIGHT,
            0.4,
            True,
            2,
        ),
        Archetype(
            "bathroom_light",
            "light",
            "Bathroom",
            ("Bathroom Light", "Bathroom Mirror", "Bath Light"),
            ("Mirror Light", "Light 4"),
            *_LIGHT,
            0.15,
            True,
            3,
        ),
        Archetype(
            "bedroom_light",
            "light",
            "Bedroom",
            ("Bedroom Light", "Bedside Lamp", "Bedroom Lamp"),
            ("Night Light", "Small Lamp"),
            *_LIGHT,
            0.5,
            False,
            4,
        ),
        Archetype(
            "coffee_maker",
            "coffee_maker",
            "Kitchen",
            ("Coffee Maker", "Coffee Machine", "Espresso Machine"),
            ("Plug 1", "Smart Plug"),
            "iot_coffee",
            "iot_wemo_off",
            0.5,
            False,
            5,
        ),
        Archetype(
            "oven",
            "appliance",
            "Kitchen",
            ("Oven", "Kitchen Oven", "Range"),
            ("Plug 4", "Appliance 1"),
            *_PLUG,
            0.2,
            True,
            6,
        ),
        Archetype(
            "tv", "tv", "Living Room", ("TV", "Living Room TV", "Television"), ("Screen", "Media"), *_PLUG, 0.5, True, 6
        ),
        Archetype(
            "lamp_plug",
            "plug",
            "Living Room",
            ("Lamp Plug", "Corner Lamp Plug"),
            ("Plug 2", "Outlet", "Switch 1"),
            *_PLUG,
            0.2,
            True,
            7,
        ),
        Archetype(
            "hall_light",
            "light",
            "Hallway",
            ("Hall Light", "Hallway Light", "Entry Light"),
            ("Light 5", "Main Light"),
            *_LIGHT,
            0.25,
            True,
            8,
        ),
        Archetype(
            "office_light",
            "light",
            "Office",
            ("Office Light", "Desk Lamp", "Study Lamp"),
            ("Lamp 2", "Light 6"),
            *_LIGHT,
            0.4,
            True,
            9,
        ),
        Archetype(
            "front_door",
            "lock",
            "Hallway",
            ("Front Door", "Front Door Lock", "Door Lock"),
            ("Lock", "Lock 1"),
            "iot_wemo_on",
            "iot_wemo_off",
            0.0,
            True,
            10,
        ),
        Archetype(
            "vacuum",
            "vacuum",
            "Living Room",
            ("Vacuum", "Robot Vacuum", "Roomba"),
            ("Robot", "Cleaner"),
            "iot_cleaning",
            "iot_wemo_off",
            0.6,
            False,
            11,
        ),
        Archetype(
            "bedroom_fan",
            "fan",
            "Bedroom",
            ("Bedroom Fan", "Ceiling Fan", "Fan"),
            ("Plug 3", "Switch 2"),
            *_PLUG,
            0.4,
            True,
            12,
        ),
        Archetype(
            "kids_lamp",
            "light",
            "Kids Room",
            ("Kids Lamp", "Nursery Light", "Kids Room Light"),
            ("Lamp 3", "Light 7"),
            *_LIGHT,
            0.35,
            True,
            13,
        ),
        Archetype(
            "garage_light",
            "light",
            "Garage",
            ("Garage Light", "Garage Lights", "Workshop Light"),
            ("Light 8", "Shop Light"),
            *_LIGHT,
            0.3,
            True,
            14,
        ),
    )
}

# Speaking devices: (name, room, has_screen)
SPEAKERS: tuple[tuple[str, str, bool], ...] = (
    ("Kitchen Speaker", "Kitchen", False),
    ("Living Room Show", "Living Room", True),
    ("Bedroom Speaker", "Bedroom", False),
    ("Office Speaker", "Office", False),
)

# Words every listener mishears the same way (sound-alike pairs). Applied to a
# world-seeded subset, with a high probability each time the word is spoken.
SYSTEMATIC_CONFUSIONS: tuple[tuple[str, str], ...] = (
    ("porch", "torch"),
    ("lamp", "lamb"),
    ("coffee", "toffee"),
    ("kitchen", "chicken"),
    ("fan", "van"),
    ("hall", "hull"),
    ("lock", "look"),
    ("plug", "plog"),
    ("garage", "garbage"),
    ("vacuum", "back um"),
    ("roomba", "rumba"),
    ("espresso", "express oh"),
    ("nursery", "nursing"),
    ("desk", "disk"),
    ("mirror", "mirra"),
    ("bedside", "beside"),
    ("lights", "likes"),
    ("weather", "whether"),
    ("alarm", "a larm"),
    ("beyonce", "beyond say"),
    ("adele", "a dell"),
    ("rihanna", "rihana"),
    ("sofa", "so far"),
    ("outlet", "out let"),
    ("ceiling", "sealing"),
    ("television", "tele vision"),
    ("podcast", "pod cast"),
    ("reminder", "remind her"),
)

# Pool of accent-specific confusions; each accented resident gets a few.
PERSONAL_CONFUSIONS: tuple[tuple[str, str], ...] = (
    ("light", "lied"),
    ("on", "own"),
    ("off", "of"),
    ("turn", "torn"),
    ("the", "da"),
    ("play", "pray"),
    ("music", "mew sick"),
    ("living", "leaving"),
    ("room", "rum"),
    ("lamp", "limp"),
    ("set", "sit"),
    ("bedroom", "bad room"),
    ("switch", "stitch"),
    ("what", "watt"),
    ("tv", "tee bee"),
    ("please", "police"),
    ("kitchen", "keeching"),
    ("three", "tree"),
    ("this", "dis"),
    ("timer", "time her"),
)
