"""Adapters: bring real data (interaction logs, smart-home histories) into the lake.

Each adapter reads one kind of source, maps it onto the lake's tables
(:mod:`homeloop.data.schema`) and writes through :meth:`homeloop.data.lake.Lake.ingest`,
so bad rows are quarantined with their line number and ingesting twice adds nothing.
"""

from homeloop.adapters.home_assistant import ingest_home_assistant, read_recorder
from homeloop.adapters.houses import ingest_houses, load_house
from homeloop.adapters.jsonl_logs import ingest_logs

__all__ = ["ingest_home_assistant", "ingest_houses", "ingest_logs", "load_house", "read_recorder"]
