from __future__ import annotations

import pytest

from tests.support.receivers import http_receiver, smtp_server


@pytest.fixture
def smtp(settings):
    """A real SMTP server on 127.0.0.1 that pobsync's email settings point at."""
    with smtp_server() as server:
        # pytest-django swaps in the locmem backend; these tests want real SMTP.
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = server.host
        settings.EMAIL_PORT = server.port
        settings.EMAIL_TIMEOUT = 5
        yield server


@pytest.fixture
def receiver(settings):
    """A real HTTP server on 127.0.0.1 recording webhook and ping requests."""
    settings.POBSYNC_NOTIFY_TIMEOUT = 3
    with http_receiver() as server:
        yield server


# The engine fixture (a host served by the real sshd fixture) for the ping tests.
from tests.engine.conftest import engine  # noqa: E402, F401
