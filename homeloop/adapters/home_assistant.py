"""Device history from a Home Assistant installation: the recorder database and the registries.

Home Assistant keeps what happened in its recorder database (SQLite by default,
``<config>/home-assistant_v2.db``) and what the home looks like (areas, devices,
entities and their names) in JSON registries under ``<config>/.storage``. This module
reads both and writes ``homes``, ``devices`` and ``device_events`` into the lake.

Recorder database
    Schema version 38 or later (Home Assistant 2023.4 and later), where the entity id
    of a state row lives in the ``states_meta`` table. The version is the largest
    ``schema_version`` in ``schema_changes``; an older database raises
    :class:`~homeloop.errors.UnsupportedFormatError` (start Home Assistant once with a
    current release to migrate it). States are read in chunks of ``chunk_size`` rows
    in ``state_id`` order and streamed into the lake, so a recorder of gigabytes never
    sits in memory. For each row:

    - the time is ``COALESCE(last_changed_ts, last_updated_ts)``; a row whose
      ``last_changed_ts`` is set and differs from ``last_updated_ts`` only changed
      attributes (a light's brightness, say) and is skipped;
    - states ``unavailable``, ``unknown`` and ``""`` (entity removed) are skipped;
    - a state that parses as a finite number goes to ``value``, any other to ``state``;
    - the source comes from the row's context: ``"automation"`` when it has a parent
      context (an automation or script caused it), ``"manual"`` when it carries a user
      id (the UI, the app or Assist), otherwise ``"unknown"`` (the device reported it,
      someone used a physical switch).

    Entities of bookkeeping domains that are not devices (:data:`NON_DEVICE_DOMAINS`:
    ``sun``, ``person``, ``automation``, ``update``, ...) are left out unless named in
    ``domains``.

Registries (``<config>/.storage``)
    ``core.area_registry``, ``core.device_registry`` and ``core.entity_registry`` are
    required; ``core.label_registry``, ``core.config`` (home name and time zone) and
    ``core.uuid`` (the installation id) are read when present. Each file is Home
    Assistant's storage envelope ``{"version", "minor_version", "key", "data"}``. By
    default ``storage`` is the ``.storage`` folder next to the database, where Home
    Assistant keeps it. A missing folder or file raises
    :class:`~homeloop.errors.MissingInputError`, a malformed one
    :class:`~homeloop.errors.UnsupportedFormatError`; ``allow_missing_registry=True``
    ingests without registries instead (names from the recorded ``friendly_name``, no
    rooms, no groups) and warns.

Per entity:

- *room*: the name of the entity's own area, else of its device's area (an entity's
  area overrides its device's, as in Home Assistant); ``None`` when neither has one;
- *name*: as Home Assistant composes the friendly name: the registry name the user
  gave, else for an entity with ``has_entity_name`` its device's name (``name_by_user``
  or ``name``) followed by the entity's ``original_name`` (the device name alone when
  that is empty), else ``original_name``, else the last recorded ``friendly_name``
  attribute, else the entity id's object id with spaces;
- *type*: from the entity's domain and device class (:func:`device_type_for_entity`);
- *groups*: the names of the entity's and its device's labels.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sqlite3
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homeloop.data.lake import IngestResult, Lake
from homeloop.errors import InvalidInputError, MissingInputError, UnsupportedFormatError

__all__ = [
    "DOMAIN_TYPES",
    "MIN_SCHEMA_VERSION",
    "NON_DEVICE_DOMAINS",
    "REQUIRED_REGISTRIES",
    "HAEntity",
    "HAInstallation",
    "device_type_for_entity",
    "ingest_home_assistant",
    "ingest_installation",
    "read_recorder",
]

#: The oldest recorder schema this module reads: 38 moved entity ids into ``states_meta``.
MIN_SCHEMA_VERSION = 38

#: Registry files an ingest needs (under ``<config>/.storage``).
REQUIRED_REGISTRIES = ("core.area_registry", "core.device_registry", "core.entity_registry")

# storage major versions this reader understands, per registry
_SUPPORTED_MAJOR = {
    "core.area_registry": (1,),
    "core.device_registry": (1, 2),  # 2 only drops the config_entries list
    "core.entity_registry": (1,),
    "core.label_registry": (1,),
    "core.config": (1,),
    "core.uuid": (1,),
}

#: Entity domain -> device type, before the device-class refinements of :func:`device_type_for_entity`.
DOMAIN_TYPES: dict[str, str] = {
    "light": "light",
    "switch": "switch",
    "lock": "lock",
    "fan": "fan",
    "climate": "thermostat",
    "water_heater": "appliance",
    "humidifier": "appliance",
    "lawn_mower": "appliance",
    "valve": "appliance",
    "vacuum": "vacuum",
    "cover": "cover",
    "media_player": "speaker",  # without a device class: most are speakers and casting devices
    "binary_sensor": "sensor",
    "sensor": "sensor",
    "event": "sensor",
}

#: Domains of bookkeeping entities that are not devices, left out unless asked for.
NON_DEVICE_DOMAINS = frozenset(
    {
        "ai_task", "automation", "calendar", "conversation", "counter", "date", "datetime",
        "device_tracker", "group", "image", "input_boolean", "input_button", "input_datetime",
        "input_number", "input_select", "input_text", "notify", "person", "persistent_notification",
        "schedule", "scene", "script", "stt", "sun", "tag", "text", "time", "timer", "todo", "tts",
        "update", "wake_word", "weather", "zone",
    }
)  # fmt: skip

_SKIPPED_STATES = {"unavailable": "unavailable", "unknown": "unknown", "": "removed"}


def device_type_for_entity(domain: str, device_class: str | None = None, name: str = "") -> str:
    """The lake device type of a Home Assistant entity.

    The domain gives the type (:data:`DOMAIN_TYPES`, ``"other"`` when not listed),
    refined by the device class: a ``switch`` of class ``outlet`` is a ``plug``; a
    ``media_player`` of class ``tv`` a ``tv`` (``speaker``/``receiver`` a ``speaker``);
    a ``cover`` or ``binary_sensor`` of class ``door``/``garage_door``/``garage``/``gate``
    a ``door`` and of class ``window`` a ``window``. A switch or plug whose name
    mentions coffee is a ``coffee_maker``.
    """
    device_class = (device_class or "").lower()
    kind = DOMAIN_TYPES.get(domain, "other")
    if domain == "switch" and device_class == "outlet":
        kind = "plug"
    elif domain == "media_player":
        if device_class == "tv":
            kind = "tv"
    elif domain in ("cover", "binary_sensor"):
        if device_class in ("door", "garage_door", "garage", "gate"):
            kind = "door"
        elif device_class == "window":
            kind = "window"
    if kind in ("switch", "plug") and "coffee" in name.lower():
        kind = "coffee_maker"
    return kind


@dataclass(frozen=True)
class HAEntity:
    """One recorded entity, with what the registries say about it."""

    entity_id: str
    name: str
    type: str
    room: str | None = None
    groups: tuple[str, ...] = ()
    area_id: str | None = None  # the area that gave the room (the entity's own or its device's)
    device_id: str | None = None  # Home Assistant's device registry id
    device_class: str | None = None
    registered: bool = False  # listed in the entity registry

    @property
    def domain(self) -> str:
        return self.entity_id.split(".", 1)[0]


@dataclass
class HAInstallation:
    """A Home Assistant installation opened for reading (see :func:`read_recorder`)."""

    db_path: Path
    storage_dir: Path | None
    schema_version: int
    home: dict[str, Any]
    entities: dict[str, HAEntity]  # recorded entities that are ingested, by entity id
    excluded_entities: tuple[str, ...] = ()  # recorded entities of NON_DEVICE_DOMAINS (or not in ``domains``)
    skipped: Counter = field(default_factory=Counter)  # rows left out by :meth:`state_records`, by reason
    _columns: frozenset[str] = frozenset()

    @property
    def home_id(self) -> str:
        return self.home["home_id"]

    def device_id(self, entity_id: str) -> str:
        """The lake ``device_id`` of an entity: ``<home_id>:<entity_id>``."""
        return f"{self.home_id}:{entity_id}"

    def device_records(self) -> list[dict[str, Any]]:
        """One ``devices`` record per ingested entity."""
        return [
            {
                "device_id": self.device_id(e.entity_id),
                "home_id": self.home_id,
                "name": e.name,
                "type": e.type,
                "room": e.room,
                "groups": list(e.groups),
            }
            for e in self.entities.values()
        ]

    def state_id_range(self) -> tuple[int, int]:
        """The smallest and largest ``state_id`` (``(0, 0)`` when there are none), for progress bars."""
        with contextlib.closing(_connect(self.db_path)) as con:
            low, high = con.execute("SELECT MIN(state_id), MAX(state_id) FROM states").fetchone()
        return (int(low or 0), int(high or 0))

    def state_records(self, *, chunk_size: int = 100_000) -> Iterator[tuple[int, list[tuple[int, dict[str, Any]]]]]:
        """Yield ``(last_state_id, [(state_id, device_events record), ...])`` chunk by chunk.

        Rows that are skipped are counted in :attr:`skipped` by reason
        (``unavailable``, ``unknown``, ``removed``, ``attribute_only``, ``excluded_domain``,
        ``no_entity``).
        """
        if chunk_size < 1:
            raise InvalidInputError(f"chunk_size: expected a positive number of rows, got {chunk_size}")
        cols = self._columns
        entity_expr = "COALESCE(sm.entity_id, s.entity_id)" if "entity_id" in cols else "sm.entity_id"
        changed = "s.last_changed_ts" if "last_changed_ts" in cols else "NULL"
        user = "s.context_user_id_bin" if "context_user_id_bin" in cols else "NULL"
        parent = "s.context_parent_id_bin" if "context_parent_id_bin" in cols else "NULL"
        sql = (
            f"SELECT s.state_id, {entity_expr}, s.state, {changed}, s.last_updated_ts, {user}, {parent} "
            "FROM states AS s LEFT JOIN states_meta AS sm ON sm.metadata_id = s.metadata_id "
            "WHERE s.state_id > ? ORDER BY s.state_id LIMIT ?"
        )
        excluded = set(self.excluded_entities)
        self.skipped.clear()
        last = -1
        with contextlib.closing(_connect(self.db_path)) as con:
            while True:
                rows = con.execute(sql, (last, chunk_size)).fetchall()
                if not rows:
                    return
                chunk: list[tuple[int, dict[str, Any]]] = []
                for state_id, entity_id, state, changed_ts, updated_ts, user_id, parent_id in rows:
                    if entity_id is None or entity_id not in self.entities:
                        self.skipped["excluded_domain" if entity_id in excluded else "no_entity"] += 1
                        continue
                    if state is None or state in _SKIPPED_STATES:
                        self.skipped[_SKIPPED_STATES.get(state or "", "removed")] += 1
                        continue
                    if changed_ts is not None and updated_ts is not None and changed_ts != updated_ts:
                        self.skipped["attribute_only"] += 1
                        continue
                    record: dict[str, Any] = {
                        "device_id": self.device_id(entity_id),
                        "home_id": self.home_id,
                        "time": changed_ts if changed_ts is not None else updated_ts,
                        "source": "automation" if parent_id else "manual" if user_id else "unknown",
                    }
                    number = _number(state)
                    if number is None:
                        record["state"] = state
                    else:
                        record["value"] = number
                    chunk.append((state_id, record))
                last = rows[-1][0]
                yield last, chunk


# --------------------------------------------------------------------------- reading


def _connect(path: Path) -> sqlite3.Connection:
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise UnsupportedFormatError(
            f"Home Assistant recorder {path}: expected a SQLite database, could not read it ({exc})"
        ) from None
    return con


def _number(state: str) -> float | None:
    if not state or state[0] not in "0123456789+-.":  # "on", "off", "nan", "inf": not a reading
        return None
    try:
        number = float(state)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _schema_version(con: sqlite3.Connection, path: Path) -> int:
    tables = _tables(con)
    if "schema_changes" not in tables:
        raise UnsupportedFormatError(
            f"{path}: not a Home Assistant recorder database (it has no 'schema_changes' table); "
            f"tables found: {sorted(tables)[:10]}"
        )
    (version,) = con.execute("SELECT MAX(schema_version) FROM schema_changes").fetchone()
    if version is None:
        raise UnsupportedFormatError(f"{path}: the 'schema_changes' table is empty, so the schema version is unknown")
    version = int(version)
    if version < MIN_SCHEMA_VERSION:
        raise UnsupportedFormatError(
            f"{path}: recorder schema version {version} is too old; version {MIN_SCHEMA_VERSION} or later "
            "(Home Assistant 2023.4+) is required. Start a current Home Assistant on it once to migrate it."
        )
    missing = {"states", "states_meta"} - tables
    if missing:
        raise UnsupportedFormatError(
            f"{path}: recorder schema version {version} but table(s) {sorted(missing)} are missing"
        )
    return version


def _state_columns(con: sqlite3.Connection, path: Path) -> frozenset[str]:
    cols = frozenset(r[1] for r in con.execute("PRAGMA table_info(states)"))
    missing = {"state_id", "state", "last_updated_ts", "metadata_id"} - cols
    if missing:
        raise UnsupportedFormatError(f"{path}: table 'states' lacks column(s) {sorted(missing)}")
    meta_cols = {r[1] for r in con.execute("PRAGMA table_info(states_meta)")}
    if not {"metadata_id", "entity_id"} <= meta_cols:
        raise UnsupportedFormatError(f"{path}: table 'states_meta' lacks 'metadata_id' or 'entity_id'")
    return cols


def _last_attributes(con: sqlite3.Connection, path: Path) -> dict[str, dict[str, Any]]:
    """The last recorded attributes of each entity (for ``friendly_name`` and ``device_class``)."""
    if "state_attributes" not in _tables(con):
        return {}
    sql = (
        "SELECT sm.entity_id, sa.shared_attrs FROM states_meta AS sm "
        "JOIN states AS s ON s.state_id = (SELECT s2.state_id FROM states AS s2 "
        "  WHERE s2.metadata_id = sm.metadata_id AND s2.attributes_id IS NOT NULL "
        "  ORDER BY s2.last_updated_ts DESC LIMIT 1) "
        "JOIN state_attributes AS sa ON sa.attributes_id = s.attributes_id"
    )
    out: dict[str, dict[str, Any]] = {}
    for entity_id, shared in con.execute(sql):
        try:
            attrs = json.loads(shared) if shared else {}
        except (ValueError, TypeError):
            continue  # Home Assistant itself logs and ignores attributes it cannot parse
        if isinstance(attrs, dict):
            out[entity_id] = attrs
    return out


def _load_store(storage_dir: Path, key: str, *, required: bool) -> dict[str, Any] | None:
    """The ``data`` of a Home Assistant storage file, after checking its envelope."""
    path = storage_dir / key
    if not path.is_file():
        if not required:
            return None
        raise MissingInputError(
            f"Home Assistant registry file {path} is missing; expected the '{key}' file that Home Assistant "
            "writes in <config>/.storage (or pass allow_missing_registry=True to ingest without registries)"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UnsupportedFormatError(f"Home Assistant registry {path}: not UTF-8 text ({exc})") from None
    except ValueError as exc:
        raise UnsupportedFormatError(f"Home Assistant registry {path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        raise UnsupportedFormatError(
            f"Home Assistant registry {path}: expected a JSON object with 'version', 'key' and a 'data' object, "
            f"got {type(doc).__name__} with keys {sorted(doc)[:8] if isinstance(doc, dict) else []}"
        )
    if doc.get("key") != key:
        raise UnsupportedFormatError(f"Home Assistant registry {path}: expected key {key!r}, got {doc.get('key')!r}")
    version = doc.get("version")
    if version not in _SUPPORTED_MAJOR[key]:
        raise UnsupportedFormatError(
            f"Home Assistant registry {path}: storage version {version!r}.{doc.get('minor_version')!r} is not "
            f"supported; expected major version {' or '.join(map(str, _SUPPORTED_MAJOR[key]))}"
        )
    return doc["data"]


def _entries(data: dict[str, Any], list_key: str, id_key: str, path: Path) -> list[dict[str, Any]]:
    items = data.get(list_key)
    if not isinstance(items, list):
        raise UnsupportedFormatError(
            f"Home Assistant registry {path}: expected 'data.{list_key}' to be a list, got {type(items).__name__}"
        )
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get(id_key), str) or not item[id_key]:
            raise UnsupportedFormatError(
                f"Home Assistant registry {path}: entry {i} of 'data.{list_key}' has no string {id_key!r}: {item!r:.120}"
            )
    return items


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "home"


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def read_recorder(
    db_path: str | os.PathLike[str],
    storage_dir: str | os.PathLike[str] | None = None,
    *,
    allow_missing_registry: bool = False,
    home_id: str | None = None,
    domains: Collection[str] | None = None,
) -> HAInstallation:
    """Open a recorder database and its registries; read the entities, not yet the states.

    ``storage_dir`` defaults to the ``.storage`` folder next to ``db_path``. ``home_id``
    defaults to ``ha-`` and the start of the installation's ``core.uuid`` (else the
    slug of its location name, else ``home-assistant``). ``domains`` restricts the
    entities to those domains (default: all but :data:`NON_DEVICE_DOMAINS`).
    """
    db = Path(db_path)
    if not db.is_file():
        raise MissingInputError(f"Home Assistant recorder database {db} does not exist")
    with contextlib.closing(_connect(db)) as con:
        version = _schema_version(con, db)
        columns = _state_columns(con, db)
        recorded = [r[0] for r in con.execute("SELECT entity_id FROM states_meta WHERE entity_id IS NOT NULL")]
        attributes = _last_attributes(con, db)

    storage = Path(storage_dir) if storage_dir is not None else db.parent / ".storage"
    registries: dict[str, dict[str, Any] | None] = {}
    if storage.is_dir():
        for key in REQUIRED_REGISTRIES:
            try:
                registries[key] = _load_store(storage, key, required=True)
            except MissingInputError:
                if not allow_missing_registry:
                    raise
                registries[key] = None
        for key in ("core.label_registry", "core.config", "core.uuid"):
            registries[key] = _load_store(storage, key, required=False)
    elif not allow_missing_registry:
        raise MissingInputError(
            f"Home Assistant registry folder {storage} does not exist; expected <config>/.storage with "
            f"{', '.join(REQUIRED_REGISTRIES)} (pass the folder, or allow_missing_registry=True to ingest "
            "without names and areas)"
        )
    missing = [k for k in REQUIRED_REGISTRIES if registries.get(k) is None]
    if missing:
        warnings.warn(
            f"ingesting {db} without the Home Assistant registries {missing} (looked in {storage}): "
            "devices get no rooms or groups and names come from the recorded friendly_name",
            UserWarning,
            stacklevel=2,
        )

    areas = {
        a["id"]: _str_or_none(a.get("name")) or a["id"]
        for a in _entries(
            registries.get("core.area_registry") or {"areas": []}, "areas", "id", storage / REQUIRED_REGISTRIES[0]
        )
    }
    devices = {
        d["id"]: d
        for d in _entries(
            registries.get("core.device_registry") or {"devices": []}, "devices", "id", storage / REQUIRED_REGISTRIES[1]
        )
    }
    registered = {
        e["entity_id"]: e
        for e in _entries(
            registries.get("core.entity_registry") or {"entities": []},
            "entities",
            "entity_id",
            storage / REQUIRED_REGISTRIES[2],
        )
    }
    labels: dict[str, str] = {}
    if registries.get("core.label_registry"):
        path = storage / "core.label_registry"
        labels = {
            lb["label_id"]: _str_or_none(lb.get("name")) or lb["label_id"]
            for lb in _entries(registries["core.label_registry"], "labels", "label_id", path)
        }

    config = registries.get("core.config") or {}
    uuid = (registries.get("core.uuid") or {}).get("uuid")
    location = _str_or_none(config.get("location_name"))
    if home_id is None:
        home_id = (
            f"ha-{uuid[:12]}" if isinstance(uuid, str) and uuid else _slug(location) if location else "home-assistant"
        )
    home = {
        "home_id": home_id,
        "name": location,
        "timezone": _str_or_none(config.get("time_zone")),
        "source": "home-assistant",
    }

    wanted = set(domains) if domains is not None else None
    entities: dict[str, HAEntity] = {}
    excluded: list[str] = []
    for entity_id in recorded:
        domain = entity_id.split(".", 1)[0]
        if (wanted is not None and domain not in wanted) or (wanted is None and domain in NON_DEVICE_DOMAINS):
            excluded.append(entity_id)
            continue
        entities[entity_id] = _entity(entity_id, registered.get(entity_id), devices, areas, labels, attributes)
    return HAInstallation(db, storage, version, home, entities, tuple(excluded), Counter(), columns)


def _entity(
    entity_id: str,
    entry: dict[str, Any] | None,
    devices: dict[str, dict[str, Any]],
    areas: dict[str, str],
    labels: dict[str, str],
    attributes: dict[str, dict[str, Any]],
) -> HAEntity:
    attrs = attributes.get(entity_id, {})
    entry = entry or {}
    device = devices.get(entry.get("device_id") or "") or {}
    # room: the entity's own area overrides its device's
    area_id = _str_or_none(entry.get("area_id")) or _str_or_none(device.get("area_id"))
    room = areas.get(area_id) if area_id else None
    # name: as Home Assistant composes the friendly name
    name = _str_or_none(entry.get("name"))
    if name is None and entry.get("has_entity_name") and device:
        device_name = _str_or_none(device.get("name_by_user")) or _str_or_none(device.get("name"))
        original = _str_or_none(entry.get("original_name"))
        # "<device> <entity>", or the device's name for the device's main entity
        name = " ".join(part for part in (device_name, original) if part) or None
    name = (
        name
        or _str_or_none(entry.get("original_name"))
        or _str_or_none(attrs.get("friendly_name"))
        or entity_id.split(".", 1)[-1].replace("_", " ")
    )
    device_class = (
        _str_or_none(entry.get("device_class"))
        or _str_or_none(entry.get("original_device_class"))
        or _str_or_none(attrs.get("device_class"))
    )
    domain = entity_id.split(".", 1)[0]
    group_ids = [*(entry.get("labels") or []), *(device.get("labels") or [])]
    groups = tuple(dict.fromkeys(labels.get(g, g) for g in group_ids if isinstance(g, str)))
    return HAEntity(
        entity_id=entity_id,
        name=name,
        type=device_type_for_entity(domain, device_class, name),
        room=room,
        groups=groups,
        area_id=area_id if room else None,
        device_id=_str_or_none(entry.get("device_id")),
        device_class=device_class,
        registered=bool(entry),
    )


# --------------------------------------------------------------------------- ingesting


def _add(totals: dict[str, IngestResult], result: IngestResult) -> None:
    old = totals.get(result.table)
    totals[result.table] = result if old is None else old + result


def ingest_installation(
    lake: Lake,
    installation: HAInstallation,
    *,
    dataset: str = "home-assistant",
    chunk_size: int = 100_000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, IngestResult]:
    """Write an opened installation into ``dataset``; ``progress`` gets how many state ids each chunk covered."""
    totals: dict[str, IngestResult] = {}
    source = installation.db_path.name
    _add(totals, lake.ingest(dataset, "homes", [(0, installation.home)], source="core.config"))
    _add(
        totals,
        lake.ingest(dataset, "devices", enumerate(installation.device_records(), 1), source="core.entity_registry"),
    )
    done = installation.state_id_range()[0] - 1
    events = IngestResult("device_events", 0, 0, 0, 0)
    totals["device_events"] = events
    for last, chunk in installation.state_records(chunk_size=chunk_size):
        if chunk:
            _add(totals, lake.ingest(dataset, "device_events", chunk, source=source))
        if progress is not None:
            progress(last - done)
        done = last
    return totals


def ingest_home_assistant(
    lake: Lake,
    db_path: str | os.PathLike[str],
    *,
    storage: str | os.PathLike[str] | None = None,
    dataset: str = "home-assistant",
    home_id: str | None = None,
    allow_missing_registry: bool = False,
    domains: Collection[str] | None = None,
    chunk_size: int = 100_000,
) -> dict[str, IngestResult]:
    """Ingest a Home Assistant recorder database and its registries; one result per lake table.

    See the module documentation for what is read and how. Ingesting the same
    database again adds nothing; a database that grew since adds only its new rows.
    """
    installation = read_recorder(
        db_path, storage, allow_missing_registry=allow_missing_registry, home_id=home_id, domains=domains
    )
    return ingest_installation(lake, installation, dataset=dataset, chunk_size=chunk_size)
