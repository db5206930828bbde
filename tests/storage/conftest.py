from tests.engine.conftest import engine  # noqa: F401  (the configured host + backup root)
from tests.queue.conftest import mariadb_procdb, shared_mariadb  # noqa: F401,E402
