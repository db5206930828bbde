from __future__ import annotations

import contextlib

import pytest

from tests.queue.procs import ProcDB, process_databases


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
        if request.param == "sqlite":
            url = f"sqlite:///{home / 'pobsync.sqlite3'}"
        else:
            from tests.support.mariadb import fresh_database

            url = stack.enter_context(fresh_database("pobsync_q"))
        db = ProcDB(request.param, url, home)
        db.tool("migrate")
        yield db


@pytest.fixture
def procdb(shared_db):
    """The shared database, emptied, with every process the test started killed after."""
    shared_db.tool("reset")
    yield shared_db
    shared_db.stop_all()
