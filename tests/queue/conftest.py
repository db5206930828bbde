from __future__ import annotations

import contextlib

import pytest

from tests.queue.procs import ProcDB, process_databases


def _migrated(vendor: str, home, stack: contextlib.ExitStack) -> ProcDB:
    if vendor == "sqlite":
        url = f"sqlite:///{home / 'pobsync.sqlite3'}"
    else:
        from tests.support.mariadb import fresh_database

        url = stack.enter_context(fresh_database("pobsync_q"))
    db = ProcDB(vendor, url, home)
    db.tool("migrate")
    return db


@pytest.fixture(
    scope="session",
    params=[
        pytest.param(name, marks=[pytest.mark.mariadb] if name == "mariadb" else [])
        for name in process_databases()
    ],
)
def shared_db(request, tmp_path_factory):
    """A migrated database for pobsync processes, one per backend per session."""
    home = tmp_path_factory.mktemp(f"procdb-{request.param}")
    with contextlib.ExitStack() as stack:
        yield _migrated(request.param, home, stack)


@pytest.fixture(scope="session")
def shared_mariadb(tmp_path_factory):
    """A migrated MariaDB database whatever the pass's own database is: for the tests
    of MariaDB-only behaviour, so they run (never skip) on every pass."""
    with contextlib.ExitStack() as stack:
        yield _migrated("mariadb", tmp_path_factory.mktemp("procdb-mariadb-only"), stack)


@pytest.fixture
def procdb(shared_db):
    """The shared database, emptied, with every process the test started killed after."""
    shared_db.tool("reset")
    yield shared_db
    shared_db.stop_all()


@pytest.fixture
def mariadb_procdb(shared_mariadb):
    """Like procdb, always on MariaDB."""
    shared_mariadb.tool("reset")
    yield shared_mariadb
    shared_mariadb.stop_all()
