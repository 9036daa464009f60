"""Shared fixtures.

Database tests run on SQLite always and on PostgreSQL when
``HOMELOOP_TEST_POSTGRES_URL`` is set (``.ci/run`` installs and starts a server and
sets it, together with ``HOMELOOP_REQUIRE_POSTGRES=1`` so that a missing server
fails the run instead of skipping).
"""

from __future__ import annotations

import os
import uuid

import pytest

from homeloop.data.lake import Lake
from homeloop.workspace import Workspace


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Workspace:
    monkeypatch.delenv("HOMELOOP_DATABASE_URL", raising=False)
    return Workspace.open(tmp_path / "ws")


@pytest.fixture
def lake(workspace) -> Lake:
    return Lake(workspace.lake)


def _postgres_url() -> str | None:
    url = os.environ.get("HOMELOOP_TEST_POSTGRES_URL")
    if not url and os.environ.get("HOMELOOP_REQUIRE_POSTGRES") == "1":
        pytest.fail("HOMELOOP_REQUIRE_POSTGRES=1 but HOMELOOP_TEST_POSTGRES_URL is not set")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """A fresh, empty database URL: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    base = _postgres_url()
    if not base:
        pytest.skip("set HOMELOOP_TEST_POSTGRES_URL to run the PostgreSQL variant")
    import sqlalchemy as sa

    name = f"homeloop_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as con:
            con.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def fast_nlu():
    """The assistant's real NLU (fast encoder) trained on HWU64's train split, once per test session."""
    import torch

    from homeloop.datasets import load_hwu64
    from homeloop.nlu import IntentSlotModel

    torch.set_num_threads(2)
    return IntentSlotModel(encoder="fast", epochs=3, seed=0).fit(load_hwu64("train"))
