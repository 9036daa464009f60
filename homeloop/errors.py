"""Errors raised by homeloop.

Every error homeloop raises on purpose derives from :class:`HomeloopError`, and
each leaf also derives from the built-in exception a user would catch anyway::

    HomeloopError
    ├── InvalidInputError (ValueError)          bad data or arguments from the user
    │   ├── SchemaError                          a record does not match its schema
    │   ├── UnsupportedFormatError               a file in a format or version homeloop cannot read
    │   ├── NoDataError                          the input holds nothing usable
    │   ├── UnsupportedLayerError                a layer per-sample gradients (DP-SGD) cannot handle
    │   └── PrivacyBudgetError                   a privacy target that training cannot meet
    ├── MissingInputError (FileNotFoundError)    a file or folder homeloop needs is not there
    ├── NotFittedError (ValueError, AttributeError)  an estimator used before ``fit``
    ├── ArtifactError (ValueError)               a saved model or artefact is missing or corrupt
    ├── DatabaseError (RuntimeError)             the operational database cannot be used
    ├── UpdateGateError (RuntimeError)           the update gate refuses a model promotion
    └── MissingExtraError (ImportError)          an optional dependency is not installed

Messages name the input, what was expected and what was received.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "DatabaseError",
    "HomeloopError",
    "InvalidInputError",
    "MissingExtraError",
    "MissingInputError",
    "NoDataError",
    "NotFittedError",
    "PrivacyBudgetError",
    "SchemaError",
    "UnsupportedLayerError",
    "UnsupportedFormatError",
    "UpdateGateError",
]


class HomeloopError(Exception):
    """Root of every error homeloop raises on purpose."""


class InvalidInputError(HomeloopError, ValueError):
    """Data or arguments given to homeloop are not what it expects."""


class SchemaError(InvalidInputError):
    """A record does not match its schema (a missing field, a wrong type, an unknown field)."""


class UnsupportedFormatError(InvalidInputError):
    """A file is in a format or schema version homeloop cannot read."""


class NoDataError(InvalidInputError):
    """The input holds no usable rows."""


class UnsupportedLayerError(InvalidInputError):
    """A model holds a layer that differentially private training cannot take per-sample gradients of."""


class PrivacyBudgetError(InvalidInputError):
    """A privacy target (epsilon, delta) that the data, batch size and epochs cannot meet."""


class MissingInputError(HomeloopError, FileNotFoundError):
    """A file or folder homeloop needs does not exist."""


class NotFittedError(HomeloopError, ValueError, AttributeError):
    """An estimator was used before ``fit``."""


class ArtifactError(HomeloopError, ValueError):
    """A saved model or artefact is missing, incomplete or of an unknown version."""


class DatabaseError(HomeloopError, RuntimeError):
    """The operational database cannot be reached or is not migrated."""


class UpdateGateError(HomeloopError, RuntimeError):
    """The update gate refuses to promote a model (it regresses, or it was never evaluated)."""


class MissingExtraError(HomeloopError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""
