"""The artefact store: every saved model, of every kind, in one layout with one metadata schema.

::

    from homeloop import artifacts

    path = artifacts.save(model, ws.models, metrics=held_out)   # models/<kind>/<name>/v<N>/
    model = artifacts.load(path)                                 # dispatches on the saved format
    serving = artifacts.load(artifacts.in_service(ws, "nlu", "nlu"))

- :mod:`~homeloop.artifacts.store`: version folders, atomic saving, :func:`load`.
- :mod:`~homeloop.artifacts.formats`: :class:`ArtifactFormat`, one per estimator class, registered
  by the module that defines it (``homeloop/<room>/artifacts.py``). Loading never runs code.
- :mod:`~homeloop.artifacts.service`: the model registry's view: :func:`register`, :func:`in_service`.
"""

from homeloop.artifacts.formats import FORMAT_MODULES, ArtifactFormat, format_for, format_named, register_format
from homeloop.artifacts.service import in_service, register
from homeloop.artifacts.store import homeloop_version, latest, load, read_json_object, read_metadata, save, versions

__all__ = [
    "FORMAT_MODULES",
    "ArtifactFormat",
    "format_for",
    "format_named",
    "homeloop_version",
    "in_service",
    "latest",
    "load",
    "read_json_object",
    "read_metadata",
    "register",
    "register_format",
    "save",
    "versions",
]
